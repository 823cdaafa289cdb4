"""Training options that change the loop: accumulation, precision, early stop, periodic saves;
and prediction on video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import cvpipe
from cvpipe.engine.checkpoint import load_checkpoint

from .synthetic import COLOURS, folder_dataset, shape_image
from .test_classify_e2e import fast, read_csv


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    # 60 images -> 48 train, 12 val: batches of 8 and of 16 both cover the 48 exactly.
    return folder_dataset(tmp_path_factory.mktemp("shapes") / "data", per_class=20)


def test_gradient_accumulation_equals_the_big_batch(shapes, tmp_path):
    common = {"data.root": shapes, "train.epochs": 2, "optim.name": "sgd", "optim.lr": 0.05, "data.augment.rotation": 10}
    big = cvpipe.train(None, fast(tmp_path, **common, **{"train.batch_size": 16, "train.name": "big"}))
    small = cvpipe.train(None, fast(tmp_path, **common, **{"train.batch_size": 8, "train.grad_accum": 2, "train.name": "acc"}))
    a = load_checkpoint(big.run_dir / "weights" / "last.pt")
    b = load_checkpoint(small.run_dir / "weights" / "last.pt")
    assert a["step"] == b["step"] == 6
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=1e-5, atol=1e-6)


def test_short_last_accumulation_group_is_averaged_over_its_own_batches(shapes, tmp_path):
    # 48 images in batches of 16 with grad_accum=2: groups of 2, 2, then 1 batch -> 2 steps.
    run = cvpipe.train(None, fast(tmp_path, **{"data.root": shapes, "train.epochs": 1, "train.grad_accum": 2}))
    assert load_checkpoint(run.run_dir / "weights" / "last.pt")["step"] == 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(shapes, tmp_path, precision):
    run = cvpipe.train(None, fast(tmp_path, **{"data.root": shapes, "train.epochs": 2, "train.precision": precision,
                                               "train.channels_last": "true"}))
    assert run.stopped == ""
    rows = read_csv(run.run_dir / "metrics.csv")
    assert all(np.isfinite(float(r["train/loss"])) for r in rows)
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])
    ckpt = load_checkpoint(run.run_dir / "weights" / "last.pt")
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())  # master weights fp32
    assert (ckpt["scaler"] is not None) == (precision == "fp16")
    # fp16 on the CPU is usually many times slower: the user is told, bf16 passes quietly
    warned = "fp16 on the CPU is usually many times slower" in (run.run_dir / "train.log").read_text()
    assert warned == (precision == "fp16")


def test_early_stopping_periodic_checkpoints_and_run_numbering(shapes, tmp_path):
    args = fast(tmp_path, **{"data.root": shapes, "train.epochs": 6, "optim.lr": 1e-12, "train.patience": 2,
                             "train.save_period": 1, "train.metric": "acc"})
    first = cvpipe.train(None, args)
    assert first.stopped == "early-stop"
    assert first.epochs_done == 3  # a vanishing lr: epoch 1 sets the best accuracy, 2 and 3 only tie it
    assert sorted(p.name for p in (first.run_dir / "weights").iterdir()) == [
        "best.pt", "epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "last.pt"]
    second = cvpipe.train(None, args + ["train.epochs=1"])
    assert (first.run_dir.name, second.run_dir.name) == ("exp", "exp2")


def test_predict_video_writes_annotated_copy_and_per_frame_results(shapes, tmp_path):
    run = cvpipe.train(None, fast(tmp_path, **{"data.root": shapes, "train.epochs": 3}))
    rng = np.random.default_rng(0)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (48, 48))
    labels = list(COLOURS) * 3
    for label in labels:  # nine frames: red, green, blue, red, ...
        frame = np.asarray(shape_image(label, rng, size=48))[..., ::-1]
        writer.write(np.ascontiguousarray(frame))
    writer.release()

    preds = cvpipe.predict(run.run_dir / "weights" / "best.pt", video, project=tmp_path / "pred", topk=1, batch_size=4)
    assert [p.source for p in preds] == [f"{video}#frame={i}" for i in range(9)]
    assert sum(p.labels[0] == truth for p, truth in zip(preds, labels)) >= 7  # mp4 compression blurs colours a bit
    out = tmp_path / "pred" / "exp"
    capture = cv2.VideoCapture(str(out / "clip_annotated.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames == 9
    assert len(read_csv(out / "predictions.csv")) == 9


def test_a_cached_run_trains_exactly_like_one_that_reads_the_files(shapes, tmp_path):
    common = {"data.root": shapes, "train.epochs": 2, "data.augment.rotation": 10, "data.workers": 1}
    plain = cvpipe.train(None, fast(tmp_path, **common, **{"train.name": "plain"}))
    cached = cvpipe.train(None, fast(tmp_path, **common, **{"train.name": "cached", "data.cache": "true"}))
    assert "60 decoded images held in RAM" in (cached.run_dir / "train.log").read_text()
    a = load_checkpoint(plain.run_dir / "weights" / "last.pt")["model"]
    b = load_checkpoint(cached.run_dir / "weights" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_csv(plain.run_dir / "metrics.csv") == read_csv(cached.run_dir / "metrics.csv")


def test_unfreeze_epoch_n_trains_n_epochs_frozen_then_everything(shapes, tmp_path):
    # model.unfreeze_epoch=2: epochs 1 and 2 train the head only (frozen BatchNorm keeps its
    # statistics), epoch 3 trains every layer; the log names the epoch where that changes.
    run = cvpipe.train(None, fast(tmp_path, **{"data.root": shapes, "model.name": "resnet18", "train.epochs": 3,
                                               "train.save_period": 1, "model.freeze": "[backbone]",
                                               "model.unfreeze_epoch": 2}))
    weights = [load_checkpoint(run.run_dir / "weights" / f"epoch_{e}.pt")["model"] for e in (1, 2, 3)]
    backbone = [k for k in weights[0] if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    assert any(k.endswith("running_mean") for k in backbone)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in backbone)
    assert not torch.equal(weights[0]["fc.weight"], weights[1]["fc.weight"])
    changed = [k for k in backbone if not torch.equal(weights[1][k], weights[2][k])]
    assert len(changed) == len(backbone)
    log = (run.run_dir / "train.log").read_text()
    assert "epoch 3: trainable parameters changed; optimiser rebuilt" in log
    assert "epoch 2: trainable" not in log


def test_frozen_parameters_the_pretrained_file_lacks_are_named(shapes, tmp_path):
    # CBAM blocks inserted into a pretrained ResNet start random; freezing the backbone froze
    # them there for good, without a word. The run now says which ones and until when.
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    common = {"data.root": shapes, "model.name": "resnet18", "model.pretrained": weights, "model.freeze": "[backbone]",
              "train.epochs": 1}
    run = cvpipe.train(None, fast(tmp_path, **common, **{"model.attention": "cbam", "model.unfreeze_epoch": 3}))
    attn = [n for n, _ in cvpipe.models.create_model("resnet18", num_classes=3, attention="cbam").named_parameters()
            if ".attn." in n]
    log = (run.run_dir / "train.log").read_text()
    assert f"{len(attn)} frozen parameters are not in {weights} and stay at their random initialisation until epoch 4: {attn[0]}" in log
    ckpt = load_checkpoint(run.run_dir / "weights" / "last.pt")["model"]
    plain = cvpipe.train(None, fast(tmp_path, **common))  # every backbone tensor came from the file: nothing to say
    assert "random initialisation" not in (plain.run_dir / "train.log").read_text()
    assert all(k in ckpt for k in attn)
