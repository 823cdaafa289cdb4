"""Resume equals an uninterrupted run; Ctrl-C and non-finite losses stop cleanly."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import torch

import cvpipe
from cvpipe.engine.checkpoint import load_checkpoint
from cvpipe.engine.trainer import Trainer

from .synthetic import folder_dataset
from .test_classify_e2e import fast, read_csv


def settings(tmp_path, data, **extra):
    base = {
        "data.root": data,
        "train.deterministic": "true",
        "model.drop_rate": 0.3,  # dropout draws from the main process's RNG: resume must restore it
        "data.augment.hflip": 0.5,  # augmentation draws are seeded per sample
        "data.augment.rotation": 10,
        "train.ema": "true",
        "train.ema_decay": 0.9,
        "schedule.name": "cosine",
        "schedule.warmup_epochs": 1,
    }
    base.update(extra)
    return fast(tmp_path, **base)


def final_weights(run_dir):
    ckpt = load_checkpoint(run_dir / "weights" / "last.pt")
    return ckpt


def assert_same_state(a, b):
    for key in ("model",):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), name
    for name, value in a["ema"]["module"].items():
        assert torch.equal(value, b["ema"]["module"][name]), f"ema {name}"
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for k in sa:
        for buf in sa[k]:
            if torch.is_tensor(sa[k][buf]):
                assert torch.equal(sa[k][buf], sb[k][buf])


def test_resume_with_more_epochs_equals_one_run(tmp_path):
    data = folder_dataset(tmp_path / "shapes")
    whole = cvpipe.train(None, settings(tmp_path, data, **{"train.epochs": 3, "train.name": "whole", "schedule.name": "constant", "schedule.warmup_epochs": 0}))
    part = cvpipe.train(None, settings(tmp_path, data, **{"train.epochs": 2, "train.name": "part", "schedule.name": "constant", "schedule.warmup_epochs": 0}))
    last = part.run_dir / "weights" / "last.pt"
    resumed = cvpipe.train(None, [f"resume={last}", "train.epochs=3"])
    assert resumed.run_dir == part.run_dir  # same run folder, continued
    assert_same_state(final_weights(whole.run_dir), final_weights(part.run_dir))
    rows = read_csv(part.run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows == read_csv(whole.run_dir / "metrics.csv")


def test_sigint_mid_epoch_saves_and_resumes_exactly(tmp_path, monkeypatch):
    data = folder_dataset(tmp_path / "shapes")
    whole = cvpipe.train(None, settings(tmp_path, data, **{"train.epochs": 2, "train.name": "whole"}))

    real_step = Trainer._optimizer_step

    def step_then_interrupt(self):
        real_step(self)
        if self.state.step == 4:  # mid-way through epoch 2 (3 batches per epoch)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled by the trainer

    monkeypatch.setattr(Trainer, "_optimizer_step", step_then_interrupt)
    broken = cvpipe.train(None, settings(tmp_path, data, **{"train.epochs": 2, "train.name": "broken"}))
    assert broken.stopped == "interrupted"
    ckpt = load_checkpoint(broken.run_dir / "weights" / "last.pt")
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["step"]) == (1, 1, 4)
    monkeypatch.setattr(Trainer, "_optimizer_step", real_step)

    resumed = cvpipe.train(None, [f"resume={broken.run_dir / 'weights' / 'last.pt'}"])
    assert resumed.stopped == ""
    assert_same_state(final_weights(whole.run_dir), final_weights(broken.run_dir))
    # the interrupted epoch's train/loss and train/acc cover all its batches, not only the resumed ones
    assert read_csv(broken.run_dir / "metrics.csv") == read_csv(whole.run_dir / "metrics.csv")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    data = folder_dataset(tmp_path / "shapes")
    module = tmp_path / "exploding_loss.py"
    module.write_text(textwrap.dedent("""
        import torch
        import torch.nn.functional as F

        class ExplodingLoss(torch.nn.Module):
            calls = 0

            def forward(self, logits, target):
                ExplodingLoss.calls += 1
                loss = F.cross_entropy(logits, target)
                return loss * float("nan") if ExplodingLoss.calls > 6 else loss
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("exploding_loss", None)
    result = cvpipe.train(None, settings(tmp_path, data, **{"loss.name": "exploding_loss.ExplodingLoss", "train.epochs": 3}))
    assert result.stopped == "non-finite"
    ckpt = load_checkpoint(result.run_dir / "weights" / "last.pt")
    assert ckpt["epoch"] == 1  # written after epoch 1; epoch 2 hit the NaN and was not saved
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert "loss became nan" in (result.run_dir / "train.log").read_text()


def test_resume_refuses_settings_the_checkpoint_cannot_load_in_one_line(tmp_path, capsys):
    # another architecture or optimiser cannot load last.pt: one line before anything is touched,
    # not a state-dict traceback after the run's config.yaml was already rewritten
    from cvpipe.cli import main

    data = folder_dataset(tmp_path / "shapes", per_class=4)
    run = cvpipe.train(None, fast(tmp_path, **{"data.root": data, "train.epochs": 1}))
    last = run.run_dir / "weights" / "last.pt"
    config_before = (run.run_dir / "config.yaml").read_text()
    capsys.readouterr()
    for override, key in [("model.name=resnet18", "model.name"), ("optim.name=sgd", "optim.name"),
                          ("model.in_chans=1", "model.in_chans"), ("model.freeze=[features]", "model.freeze")]:
        assert main(["train", f"resume={last}", override]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{key} cannot change when resuming" in err, err
    assert (run.run_dir / "config.yaml").read_text() == config_before
    # settings that do not touch the weights' structure still resume
    assert cvpipe.train(None, [f"resume={last}", "train.epochs=2", "optim.lr=0.001"]).epochs_done == 2


def test_resume_on_changed_data_says_so_and_on_the_same_data_stays_quiet(tmp_path):
    data = folder_dataset(tmp_path / "shapes", per_class=10)
    part = cvpipe.train(None, fast(tmp_path, **{"data.root": data, "train.epochs": 1}))
    last = part.run_dir / "weights" / "last.pt"
    assert load_checkpoint(last)["data"]["train"] == 24
    moved = data.rename(tmp_path / "moved")  # the same files somewhere else: nothing to say
    cvpipe.train(None, [f"resume={last}", "train.epochs=2", f"data.root={moved}"])
    assert "resume: the images differ" not in (part.run_dir / "train.log").read_text()
    (moved / "red" / "red_0.png").rename(moved / "green" / "red_0.png")  # same counts, one label changed
    cvpipe.train(None, [f"resume={last}", "train.epochs=3", f"data.root={moved}"])
    log = (part.run_dir / "train.log").read_text()
    assert "resume: the images differ from the run's (train 24 -> 24, val 6 -> 6 images" in log


def test_resume_with_mixup_cutmix_and_randaugment_equals_one_run(tmp_path):
    # batch mixing draws from the main process's generator: resuming must restore it
    data = folder_dataset(tmp_path / "shapes", per_class=10)
    mix = {"data.augment.mixup": 0.4, "data.augment.cutmix": 1.0, "data.augment.auto_augment": "randaugment"}
    whole = cvpipe.train(None, settings(tmp_path, data, **mix, **{"train.epochs": 2, "train.name": "whole"}))
    part = cvpipe.train(None, settings(tmp_path, data, **mix, **{"train.epochs": 1, "train.name": "part"}))
    cvpipe.train(None, [f"resume={part.run_dir / 'weights' / 'last.pt'}", "train.epochs=2"])
    assert_same_state(final_weights(whole.run_dir), final_weights(part.run_dir))
    rows = read_csv(whole.run_dir / "metrics.csv")
    assert rows == read_csv(part.run_dir / "metrics.csv")
    assert all(0.0 <= float(r["train/acc"]) <= 1.0 for r in rows)  # still measured against each image's label


def test_mixing_settings_that_cannot_work_fail_in_one_line(tmp_path, capsys, monkeypatch):
    import cvpipe.data.cache
    from cvpipe.cli import main

    def no_caching(*args, **kwargs):
        raise AssertionError("images decoded into the cache before a setting that refuses the run was checked")

    monkeypatch.setattr(cvpipe.data.cache, "cache_datasets", no_caching)

    data = folder_dataset(tmp_path / "shapes", per_class=5)
    for image in sorted(data.rglob("*.png")):  # per-image label lists: multi-label
        image.with_suffix(".txt").write_text(f"{image.parent.name} red\n")
    base = ["train", f"data.root={data}", "model.name=lenet", "data.workers=0", f"train.project={tmp_path / 'runs'}"]
    assert main([*base, "data.augment.mixup=0.2", "loss.name=triplet"]) == 2
    assert "loss.name=triplet cannot take" in capsys.readouterr().err
    assert main([*base, "data.augment.cutmix=1.0", "data.layout=pertxt", "data.cache=true"]) == 2
    assert "this data is multi-label" in capsys.readouterr().err
    assert main([*base, "data.layout=pertxt", "data.cache=true", "model.name=alexnet_half", "data.augment.image_size=32"]) == 2
    assert "data.augment.image_size" in capsys.readouterr().err
