"""End to end: train -> eval -> predict through the CLI and the Python API, on the embedded
digits and on generated folders in each layout."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score

import cvpipe
from cvpipe.cli import main
from cvpipe.engine.checkpoint import load_checkpoint

from .synthetic import folder_dataset, labelfile_dataset, multilabel_dataset


def fast(tmp_path, **extra) -> list[str]:
    """Overrides for a small, quick run on 24 px RGB images."""
    settings = {
        "model.name": "lenet",
        "model.in_chans": 3,
        "data.augment.image_size": 24,
        "data.augment.crop_pct": 1.0,
        "data.augment.random_resized_crop": "false",
        "data.augment.hflip": 0,
        "data.augment.mean": "[0.5,0.5,0.5]",
        "data.augment.std": "[0.25,0.25,0.25]",
        "data.workers": 0,
        "optim.name": "adamw",
        "optim.lr": 0.005,
        "optim.weight_decay": 0.0,
        "schedule.name": "constant",
        "train.batch_size": 16,
        "train.epochs": 4,
        "train.project": str(tmp_path / "runs"),
    }
    settings.update(extra)
    return [f"{k}={v}" for k, v in settings.items()]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_digits_default_train_eval_predict(tmp_path, capsys):
    project = tmp_path / "runs"
    assert main(["train", "train.epochs=2", f"train.project={project}"]) == 0
    run = project / "exp"
    for name in ("config.yaml", "train.log", "metrics.csv", "classes.txt", "curves.png", "weights/last.pt", "weights/best.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    out = capsys.readouterr().out
    assert f"run folder: {run}" in out and "best val/acc" in out
    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    best_acc = max(float(r["val/acc"]) for r in rows)
    assert best_acc > 0.75  # learning happened (the full default run reaches >= 0.98)

    best = run / "weights" / "best.pt"
    ckpt = load_checkpoint(best)
    assert ckpt["classes"] == [str(i) for i in range(10)] and ckpt["config"]["model"]["name"] == "lenet_digits"
    assert "optimizer" not in ckpt  # best.pt keeps what prediction needs

    # eval on the same validation split reproduces the accuracy training recorded for best.pt
    assert main(["eval", str(best), f"project={tmp_path / 'eval'}", "cam=4"]) == 0
    report_dir = tmp_path / "eval" / "exp"
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["top1"] == pytest.approx(best_acc, abs=1e-4)
    assert summary["images"] == 359
    preds = read_csv(report_dir / "predictions.csv")
    truth = [r["true"] for r in preds]
    predicted = [r["predicted"] for r in preds]
    assert accuracy_score(truth, predicted) == pytest.approx(summary["top1"])
    with open(report_dir / "confusion_matrix.csv") as f:
        cm = np.array([row[1:] for row in list(csv.reader(f))[1:]], dtype=int)
    assert cm.sum() == 359 and np.trace(cm) == round(summary["top1"] * 359)
    for png in ("confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "mistakes.png", "mistakes_cam.png"):
        assert Image.open(report_dir / png).size[0] > 100

    # predict a few validation images through the API: same labels as eval's predictions
    sample = preds[:5]
    results = cvpipe.predict(best, sample[0]["path"], project=tmp_path / "pred", topk=3)
    assert results[0].labels[0] == sample[0]["predicted"]
    assert abs(results[0].probs[0] - float(sample[0]["confidence"])) < 1e-4
    assert (tmp_path / "pred" / "exp" / "predictions.csv").is_file()
    assert len(list((tmp_path / "pred" / "exp" / "annotated").glob("*.png"))) == 1


def test_folder_layout_with_broken_files(tmp_path):
    data = folder_dataset(tmp_path / "shapes")
    (data / "red" / "truncated.png").write_bytes((data / "red" / "red_0.png").read_bytes()[:60])
    (data / "green" / "empty.jpg").write_bytes(b"")
    (data / "blue" / "notes.png").write_text("not an image")
    result = cvpipe.train(None, fast(tmp_path, **{"data.root": data}))
    assert result.best >= 0.9  # colours are easy to tell apart
    report = read_csv(result.run_dir / "skipped_files.csv")
    assert sorted(r["path"].split("/")[-1] for r in report) == ["empty.jpg", "notes.png", "truncated.png"]
    assert all(r["reason"] for r in report)

    # the CLI predicts a whole folder; a broken file is reported, not fatal
    best = result.run_dir / "weights" / "best.pt"
    assert main(["predict", str(best), str(data / "red"), f"project={tmp_path / 'p'}", "topk=1"]) == 0
    rows = read_csv(tmp_path / "p" / "exp" / "predictions.csv")
    assert len(rows) == 24 and sum(r["label"] == "red" for r in rows) >= 22


def test_labelfile_layout_and_eval_on_all_images(tmp_path):
    data = labelfile_dataset(tmp_path / "lf")
    overrides = fast(tmp_path, **{"data.root": data, "data.layout": "labelfile", "data.images": "images", "data.labels": "labels.csv"})
    result = cvpipe.train(None, overrides)
    assert result.best >= 0.9
    report = cvpipe.evaluate(result.run_dir / "weights" / "best.pt", split="all", project=tmp_path / "ev")
    assert report.metrics["images"] == 72
    assert report.classes == ["blue", "green", "red"]
    pred = report.logits.argmax(1).numpy()
    assert report.metrics["top1"] == pytest.approx(accuracy_score(report.targets.numpy(), pred))


def test_multilabel_per_image_txt(tmp_path):
    data = multilabel_dataset(tmp_path / "ml")
    result = cvpipe.train(None, fast(tmp_path, **{"data.root": data, "train.epochs": 6}))
    assert result.metric == "val/mAP"
    assert result.best > 0.8
    ckpt = load_checkpoint(result.run_dir / "weights" / "best.pt")
    assert ckpt["multi_label"] is True
    report = cvpipe.evaluate(result.run_dir / "weights" / "best.pt", project=tmp_path / "ev")
    probs = torch.sigmoid(report.logits).numpy()
    targets = report.targets.numpy()
    expected = np.mean([average_precision_score(targets[:, c], probs[:, c]) for c in range(3)])
    assert report.metrics["mAP"] == pytest.approx(expected, abs=1e-9)
    assert (report.out_dir / "pr_curves.png").is_file()
    with (report.out_dir / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == report.paths
    for row, t, p in zip(rows, targets, probs):
        assert row["true"] == ";".join(c for c, flag in zip(report.classes, t) if flag)
        assert row["predicted"] == ";".join(c for c, v in zip(report.classes, p) if v >= 0.5)
        assert [float(row[f"p({c})"]) for c in report.classes] == pytest.approx(p.tolist(), abs=1e-6)
    exact = np.mean([int(r["exact_match"]) for r in rows])
    assert exact == pytest.approx(np.mean(((probs >= 0.5) == (targets > 0.5)).all(1)))
    preds = cvpipe.predict(result.run_dir / "weights" / "best.pt", data, save=False, verbose=False)
    assert len(preds) == 96 and all(0.5 <= p <= 1.0 for pred in preds for p in pred.probs)


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "train.epoch=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "cvpipe train: error: unknown config key train.epoch; did you mean train.epochs?"
    assert main(["train", "data.root=" + str(tmp_path / "nowhere"), f"train.project={tmp_path}"]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: no such checkpoint file" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["predict", str(bad), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.pt" in err
    assert main(["eval", str(bad), "splt=val"]) == 2
    assert "did you mean split?" in capsys.readouterr().err
