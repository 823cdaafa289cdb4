"""Eval and predict on data other than the training set, and on odd inputs: results are right
or the user gets one clear line. Checkpoints here are built without training (the weights do
not matter for what is checked), so the tests stay fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cvpipe
from cvpipe.cli import main
from cvpipe.config import load_config, to_dict
from cvpipe.data.layouts import list_images
from cvpipe.data.transforms import make_preprocess
from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.tasks.common import build_model

from .synthetic import COLOURS, folder_dataset


def untrained_checkpoint(path: Path, classes: list[str], multi_label: bool = False, **data) -> Path:
    """A cvpipe checkpoint of a LeNet on 24 px RGB input, with ``data.*`` settings as given."""
    overrides = ["model.name=lenet", "data.augment.image_size=24", *(f"data.{k}={v}" for k, v in data.items())]
    cfg = load_config(None, overrides)
    model = build_model(cfg, len(classes))
    preprocess = make_preprocess(cfg.data.augment, 3, [0.5] * 3, [0.25] * 3)
    state = {"model": model.state_dict(), "config": to_dict(cfg), "classes": classes, "preprocess": preprocess,
             "multi_label": multi_label}
    return save_checkpoint(state, path)


def test_eval_on_another_folder_uses_all_its_images_and_its_own_layout(tmp_path):
    # trained on a label-file dataset in imgs/; evaluated on a folder-per-class dataset
    ckpt = untrained_checkpoint(tmp_path / "a.pt", sorted(COLOURS), layout="labelfile", images="imgs", labels="l.csv")
    other = folder_dataset(tmp_path / "other", per_class=3)
    report = cvpipe.evaluate(ckpt, data=str(other), save=False)
    assert report.metrics["split"] == "all" and report.metrics["images"] == 9
    truth = sorted((Path(p).parent.name, report.classes[t]) for p, t in zip(report.paths, report.targets.tolist()))
    assert truth == sorted((c, c) for c in COLOURS for _ in range(3))
    assert cvpipe.evaluate(ckpt, data=str(other), split="val", save=False).metrics["images"] == 3  # 20% per class


def test_eval_reads_other_data_the_way_the_model_predicts(tmp_path):
    # a multi-label model on a folder-per-class dataset: one-hot rows, multi-label metrics
    ckpt = untrained_checkpoint(tmp_path / "ml.pt", sorted(COLOURS), multi_label=True)
    folders = folder_dataset(tmp_path / "folders", per_class=2)
    report = cvpipe.evaluate(ckpt, data=str(folders), save=False)
    assert report.targets.shape == (6, 3) and report.targets.sum(1).tolist() == [1.0] * 6
    assert "mAP" in report.metrics

    # a single-label model on per-image label lists: images with several labels are left out, listed
    single = untrained_checkpoint(tmp_path / "sl.pt", sorted(COLOURS))
    data = folder_dataset(tmp_path / "lists", per_class=2)
    for i, image in enumerate(sorted(data.rglob("*.png"))):
        image.with_suffix(".txt").write_text(image.parent.name + (" red" if i % 3 == 0 else "") + "\n")
    report = cvpipe.evaluate(single, data=str(data), save=False)
    assert report.targets.ndim == 1 and report.metrics["images"] == 4
    reasons = [r for _, r in report.metrics["skipped_files"]]
    assert len(reasons) == 2 and all(r.endswith("2 labels but data.multi_label is false") for r in reasons)


def test_predict_keeps_one_annotated_image_per_input_and_fails_when_nothing_is_readable(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS))
    photos = folder_dataset(tmp_path / "photos", per_class=1)  # blue/blue_0.png, green/green_0.png, ...
    (photos / "red" / "red_0.png").rename(photos / "red" / "blue_0.png")  # same name, other folder
    (photos / "blue" / "blue_0.jpg").write_bytes((photos / "green" / "green_0.png").read_bytes())  # same stem
    (photos / "blue" / "._blue_0.png").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata: hidden, not a photo
    (photos / ".thumbnails").mkdir()  # a hidden cache folder, left out as in training
    (photos / ".thumbnails" / "t.png").write_bytes((photos / "green" / "green_0.png").read_bytes())
    preds = cvpipe.predict(ckpt, photos, project=tmp_path / "p", verbose=False)
    annotated = sorted(str(p.relative_to(tmp_path / "p" / "exp" / "annotated")) for p in (tmp_path / "p" / "exp").rglob("*.png"))
    assert len(preds) == 4
    assert annotated == ["blue/blue_0.jpg.png", "blue/blue_0.png.png", "green/green_0.png", "red/blue_0.png"]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8 not really")
    (broken / "b.png").write_bytes(b"")
    for source, message in ((broken / "a.jpg", "a.jpg: not an image"), (broken, "none of the 2 images could be read")):
        assert main(["predict", str(ckpt), str(source), f"project={tmp_path / 'q'}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())  # no empty result folders

    for option, message in (("topk=0", "topk=0: must be at least 1"), ("batch=0", "batch=0: must be at least 1"),
                            ("device=cuda:7", "device=cuda:7: CUDA is not available"), ("threshold=2", "threshold=2.0")):
        if option.startswith("device") and torch.cuda.is_available():
            continue
        assert main(["predict", str(ckpt), str(photos), option, "save=false"]) == 2
        assert message in capsys.readouterr().err


def test_a_glob_through_symlinked_folders_lists_each_image_once(tmp_path):
    # "**" follows folder links: a link back up the tree listed one photo 41 times (up to the
    # system's link depth), and a linked folder inside the tree listed its photos twice
    ckpt = untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS))
    photos = folder_dataset(tmp_path / "photos", per_class=1)
    (photos / "red" / "back").symlink_to("..")  # a loop
    (photos / "also_green").symlink_to(photos / "green")  # the same folder again
    (photos / "green" / "link.png").symlink_to(photos / "blue" / "blue_0.png")  # a file link is a file of its own
    preds = cvpipe.predict(ckpt, str(photos / "**" / "*.png"), save=False, verbose=False)
    found = [str(Path(p.source).relative_to(photos)) for p in preds]
    # as a folder is listed: green/ once, under its first name in natural order
    assert found == ["also_green/green_0.png", "also_green/link.png", "blue/blue_0.png", "red/red_0.png"]
    assert found == [str(p.relative_to(photos)) for p in list_images(photos)]


def test_a_file_named_like_a_video_that_is_not_one_is_one_line(tmp_path):
    # a fresh process, as a user runs it: FFmpeg reads its log level once per process
    ckpt = untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS))
    (tmp_path / "clip.mp4").write_text("not a video")
    command = [sys.executable, "-m", "cvpipe", "predict", str(ckpt), str(tmp_path / "clip.mp4"), "save=false"]
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "clip.mp4: cannot open the video" in done.stderr, done.stderr


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS))
    photos = folder_dataset(tmp_path / "photos", per_class=1)
    (tmp_path / "taken").write_text("a file where the output folder should go")
    for argv in (["predict", str(ckpt), str(photos), f"project={tmp_path / 'taken'}"],
                 ["eval", str(ckpt), f"data={photos}", f"project={tmp_path / 'taken' / 'sub'}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot create the output folder" in err and "taken" in err, err


def test_no_validation_images_says_why(tmp_path, capsys):
    tiny = folder_dataset(tmp_path / "tiny", per_class=2)  # round(2 x 0.2) = 0 per class
    base = ["train", f"data.root={tiny}", "model.name=lenet", "data.workers=0", f"train.project={tmp_path / 'runs'}"]
    assert main(base) == 2
    assert "round(images x data.val_split=0.2) to validation, which is 0 for every class" in capsys.readouterr().err
    assert main([*base, "data.val_split=0"]) == 2
    assert "no val/ folder or val label file and data.val_split is 0" in capsys.readouterr().err
    assert not any((tmp_path / "runs").iterdir())


def test_settings_that_cannot_work_fail_in_one_line_before_training(tmp_path, capsys):
    data = folder_dataset(tmp_path / "data", per_class=5)
    base = ["train", f"data.root={data}", "data.workers=0", f"train.project={tmp_path / 'runs'}", "train.epochs=1"]
    # VGG-11 pools 32x: a 16 px image leaves nothing for the last pooling layer
    assert main([*base, "model.name=vgg11", "data.augment.image_size=16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vgg11 cannot run on a 3x16x16" in err and "data.augment.image_size" in err, err
    assert not (tmp_path / "runs" / "exp").exists()  # the run that never started leaves no folder
    # a missing pretrained file is found before a run folder is made
    assert main([*base, "model.name=lenet", f"model.pretrained={tmp_path / 'absent.pt'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.pretrained=" in err and "no such file" in err, err
    assert not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-0.1", "optim.lr must be > 0"),
        ("optim.name=adm", "did you mean adam?"),
        ("data.root=nope", "data.root nope: no such folder"),
        ("model.name=tv:resnet_18", "did you mean resnet18"),
        ("model.name=tx:resnet18", "unknown prefix 'tx'"),
        ("train.batch_size=0", "train.batch_size=0: must be at least 1"),
        ("schedule.name=cosin", "did you mean cosine?"),
        ("schedule.warmup_factor=2", "schedule.warmup_factor must be in [0, 1]"),
        ("loss.name=focall", "did you mean focal?"),
        ("loss.class_weights=balance", "loss.class_weights 'balance': use balanced"),
        ("loss.class_weights=[1,-1,1]", "loss.class_weights must be non-negative"),
        ("data.augment.mean=[0.5,0.5]", "data.augment.mean has 2 values but model.in_chans is 3"),
        ("data.augment.std=[0.2,0,0.2]", "data.augment.std [0.2, 0.0, 0.2]: every value must be positive"),
        ("data.augment.std=median", "data.augment.std 'median': use imagenet, auto"),
    ],
)
def test_a_setting_no_data_could_fix_fails_before_a_run_folder_exists(tmp_path, capsys, override, message):
    data = folder_dataset(tmp_path / "data", per_class=2)
    runs = tmp_path / "runs"
    assert main(["train", f"data.root={data}", "model.name=lenet", f"train.project={runs}", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not runs.exists() or not any(runs.iterdir())


def test_a_run_stopped_before_its_first_validation_does_not_point_at_a_missing_best_pt(tmp_path, capsys):
    from cvpipe.engine.logger import RunLogger
    from cvpipe.engine.trainer import TrainResult
    from cvpipe.tasks.train import _finish

    logger = RunLogger(tmp_path / "run", tensorboard=False)
    _finish(TrainResult(tmp_path / "run", None, -1, "val/acc", 0, stopped="interrupted"), tmp_path / "run", logger)
    logger.close()
    out = capsys.readouterr().out
    assert "resume=" in out and "no best.pt yet" in out and "best.pt;" not in out and "n/a" not in out


def test_an_unknown_cam_method_fails_before_evaluating(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS))
    assert main(["eval", str(ckpt), "cam=2", "cam_method=gradkam", f"project={tmp_path / 'ev'}"]) == 2
    assert "unknown CAM method 'gradkam'" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_a_closed_pipe_ends_quietly():
    done = subprocess.run(f"{sys.executable} -m cvpipe models | head -1", shell=True, capture_output=True, text=True)
    assert done.stdout.startswith("model") and done.stderr == "", done.stderr


def test_a_run_trained_on_a_relative_path_evaluates_from_any_folder(tmp_path, monkeypatch):
    folder_dataset(tmp_path / "work" / "photos", per_class=6)
    monkeypatch.chdir(tmp_path / "work")
    result = cvpipe.train(None, ["data.root=photos", "model.name=lenet", "data.augment.image_size=24", "data.workers=0",
                                 "train.epochs=1", "train.batch_size=8"])
    assert load_config(str(result.run_dir / "config.yaml")).data.root == str(tmp_path / "work" / "photos")
    monkeypatch.chdir(tmp_path)
    report = cvpipe.evaluate(tmp_path / "work" / result.run_dir / "weights" / "best.pt", save=False)
    assert report.metrics["images"] == len(COLOURS) * 6 - len(COLOURS) * 5  # the val split: 1 of 6 per class


def test_an_image_that_breaks_during_training_in_a_worker_is_one_line(tmp_path, monkeypatch, capsys):
    # the file passed the check, then became unreadable: the worker's error reaches the user
    # as its own message, not as the worker's traceback that PyTorch wraps around it
    from cvpipe.data import datasets
    from cvpipe.errors import DataError

    def vanished(path, mode):
        raise DataError(f"{path}: no such file")

    photos = folder_dataset(tmp_path / "photos", per_class=6)
    monkeypatch.setattr(datasets, "read_image", vanished)  # forked workers inherit it
    argv = ["train", f"data.root={photos}", "model.name=lenet", "data.augment.image_size=24", "data.workers=1",
            "train.epochs=1", "train.batch_size=8", f"train.project={tmp_path / 'runs'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvpipe train: error: ") and err.count("\n") == 1 and ".png: no such file" in err, err


def test_eval_on_data_with_other_class_names_lists_what_the_model_knows(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path / "a.pt", sorted(COLOURS))
    data = folder_dataset(tmp_path / "data", per_class=2)
    (data / "red").rename(data / "0")  # numeric folder name, as when labels are class ids
    assert main(["eval", str(ckpt), f"data={data}", f"project={tmp_path / 'ev'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not trained on: 0;" in err and "knows 3: blue, green, red" in err, err


def test_sigterm_during_the_file_check_removes_the_new_run_folder(tmp_path, monkeypatch, capsys):
    import signal

    import cvpipe.data.datasets as datasets

    def killed_midway(paths, desc=""):
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` or a scheduler sends
        raise AssertionError("SIGTERM should have interrupted the check")

    monkeypatch.setattr(datasets, "check_images", killed_midway)
    before = signal.getsignal(signal.SIGTERM)
    data = folder_dataset(tmp_path / "data", per_class=5)
    runs = tmp_path / "runs"
    assert main(["train", f"data.root={data}", "model.name=lenet", f"train.project={runs}"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored


def test_eval_with_a_cam_layer_too_small_to_explain_still_writes_the_report(tmp_path, capsys):
    # ResNet-18 on 32 px images: layer4 (the CAM layer) is 1x1, so no overlay can be drawn
    cfg = load_config(None, ["model.name=resnet18", "data.augment.image_size=32"])
    classes = sorted(COLOURS)
    model = build_model(cfg, len(classes))
    preprocess = make_preprocess(cfg.data.augment, 3, [0.5] * 3, [0.25] * 3)
    ckpt = save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg), "classes": classes,
                            "preprocess": preprocess, "multi_label": False}, tmp_path / "r.pt")
    data = folder_dataset(tmp_path / "data", per_class=3)
    assert main(["eval", str(ckpt), f"data={data}", "split=all", "cam=4", f"project={tmp_path / 'ev'}"]) == 0
    out = capsys.readouterr().out
    assert "no CAM gallery: layer 'layer4' gives a 1x1 map" in out, out
    report = tmp_path / "ev" / "exp"
    assert (report / "summary.json").is_file() and (report / "predictions.csv").is_file()
    assert not (report / "mistakes_cam.png").exists()
    # the hint names the option eval takes, and following it draws the gallery
    assert "cam_layer=NAME" in out and " layer=NAME" not in out, out
    assert main(["eval", str(ckpt), f"data={data}", "cam=4", "cam_layer=layer3", f"project={tmp_path / 'ev'}"]) == 0
    assert "no CAM gallery" not in capsys.readouterr().out
    assert (tmp_path / "ev" / "exp2" / "mistakes_cam.png").is_file()


def test_a_model_name_or_bare_weights_where_a_checkpoint_is_needed_say_what_to_give(tmp_path, capsys):
    from safetensors.torch import save_file

    assert main(["cam", "resnet18", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resnet18 is a model name" in err and "weights/best.pt" in err, err
    weights = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(weights))
    assert main(["profile", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"model.pretrained={weights}" in err, err


def test_training_on_a_single_class_is_refused_without_leaving_a_run_folder(tmp_path, capsys):
    # one class folder: the loss is always 0 and "val/acc 1.0" would mean nothing
    data = folder_dataset(tmp_path / "data", per_class=3)
    for extra in sorted(p for p in data.iterdir() if p.is_dir())[1:]:
        for f in extra.iterdir():
            f.unlink()
        extra.rmdir()
    runs = tmp_path / "runs"
    assert main(["train", f"data.root={data}", "model.name=lenet", f"train.project={runs}", "data.workers=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only one class" in err and "at least 2 classes" in err, err
    assert not runs.exists() or not any(runs.iterdir())
    # evaluating a model on data holding one of its classes stays possible
    ckpt = untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS))
    assert cvpipe.evaluate(ckpt, data=str(data), save=False).metrics["images"] == 3


def test_eval_warns_when_the_training_data_changed_since_training(tmp_path, capsys):
    # photos added to the folder after training redraw the seeded split: val then holds images
    # the model was trained on, and its accuracy is overstated; eval must say so
    from cvpipe.config import DataConfig
    from cvpipe.data.datasets import build_splits

    photos = folder_dataset(tmp_path / "photos", per_class=10)
    data = {"root": str(photos), "augment.image_size": 24}
    trained_on = build_splits(DataConfig(root=str(photos)), check=False)
    ckpt = torch.load(untrained_checkpoint(tmp_path / "m.pt", sorted(COLOURS), **data), weights_only=True)
    ckpt["data"] = trained_on.fingerprint()
    ckpt_path = save_checkpoint(ckpt, tmp_path / "m.pt")

    report = cvpipe.evaluate(ckpt_path, save=False)
    assert "data_changed" not in report.metrics and "differs from the data" not in capsys.readouterr().out

    folder_dataset(tmp_path / "extra", per_class=2, seed=5)
    for image in (tmp_path / "extra").rglob("*.png"):
        image.rename(photos / image.parent.name / f"new_{image.name}")
    report = cvpipe.evaluate(ckpt_path, save=False)
    leaked = set(map(str, trained_on.train.paths)) & set(report.paths)
    assert leaked  # what the warning is about: the new val split holds training images
    out = capsys.readouterr().out
    assert "differs from the data the model was trained on (train 24 -> 30, val 6 -> 6 images" in out
    assert report.metrics["data_changed"] in out
    assert cvpipe.evaluate(ckpt_path, data=str(photos), save=False).metrics.get("data_changed") is None  # data= given
