"""Classification plots: real PNG files of the expected size with non-constant content."""

import numpy as np
import pytest
from PIL import Image

from cvpipe.engine.metrics import classification_report, multilabel_report, pr_curves, roc_curves
from cvpipe.viz.classification import (
    normalize_rows,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_roc_curves,
    plot_training_curves,
    read_metrics_csv,
)


def _check_png(path, min_w=300, min_h=250):
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        pixels = np.asarray(im.convert("RGB"))
    assert w >= min_w and h >= min_h
    assert pixels.std() > 5  # something was drawn
    return pixels


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    n, c = 120, 4
    targets = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[targets]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, targets, ["cat", "dog", "bird", "fish"]


def test_confusion_matrices_raw_and_normalised(tmp_path, predictions):
    probs, targets, names = predictions
    cm = np.array(classification_report(probs, targets, names)["confusion_matrix"])
    raw = _check_png(plot_confusion_matrix(cm, names, tmp_path / "cm.png"))
    norm = _check_png(plot_confusion_matrix(cm, names, tmp_path / "cm_norm.png", normalize=True))
    assert raw.shape == norm.shape and not np.array_equal(raw, norm)  # different numbers drawn


def test_normalize_rows_keeps_empty_rows_zero():
    out = normalize_rows(np.array([[2, 2], [0, 0]]))
    np.testing.assert_array_equal(out, [[0.5, 0.5], [0.0, 0.0]])


def test_many_classes_and_mismatch(tmp_path):
    c = 40
    cm = np.random.default_rng(1).integers(0, 5, (c, c))
    _check_png(plot_confusion_matrix(cm, [f"c{i}" for i in range(c)], tmp_path / "big.png"))
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion_matrix(cm, ["a"], tmp_path / "bad.png")


def test_roc_curves_png(tmp_path, predictions):
    probs, targets, names = predictions
    report = classification_report(probs, targets, names)
    aucs = [report["per_class"][n]["auc"] for n in names]
    curves = roc_curves(probs, np.eye(len(names))[targets])
    _check_png(plot_roc_curves(curves, names, tmp_path / "roc.png", aucs=aucs))


def test_pr_curves_png_with_an_undefined_class(tmp_path):
    rng = np.random.default_rng(2)
    probs = rng.random((60, 3))
    targets = (rng.random((60, 3)) < 0.4).astype(int)
    targets[:, 1] = 0
    names = ["a", "b", "c"]
    report = multilabel_report(probs, targets, names)
    aps = [report["per_class"][n]["ap"] for n in names]
    _check_png(plot_pr_curves(pr_curves(probs, targets), names, tmp_path / "pr.png", aps=aps))


def test_training_curves_from_metrics_csv(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    lines = ["epoch,train/loss,train/acc,val/loss,val/acc,val/acc5,val/mAP,lr,time"]
    for e in range(1, 9):
        val = "" if e == 3 else f"{1.0 / e + 0.1:.4f}"  # a missing value must not break the plot
        lines.append(f"{e},{2.0 / e:.4f},{1 - 1 / (e + 1):.4f},{val},{0.5 + e / 20:.4f},"
                     f"{0.8 + e / 50:.4f},{0.3 + e / 30:.4f},{0.1 * 0.5 ** e:.6f},12.5")
    csv_path.write_text("\n".join(lines) + "\n")
    data = read_metrics_csv(csv_path)
    assert np.isnan(data["val/loss"][2]) and data["epoch"].tolist() == list(range(1, 9))
    out = plot_training_curves(csv_path, tmp_path / "curves.png")
    pixels = _check_png(out, min_w=1200)  # three panels side by side
    # only loss and lr present: two panels, narrower figure
    small = tmp_path / "small.csv"
    small.write_text("epoch,train/loss,lr\n1,1.0,0.1\n2,0.5,0.05\n")
    assert _check_png(plot_training_curves(small, tmp_path / "small.png")).shape[1] < pixels.shape[1]


def test_training_curves_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,train/loss\n")
    with pytest.raises(ValueError, match="no rows"):
        plot_training_curves(empty, tmp_path / "x.png")
    other = tmp_path / "other.csv"
    other.write_text("epoch,time\n1,2\n")
    with pytest.raises(ValueError, match="no loss"):
        plot_training_curves(other, tmp_path / "x.png")
