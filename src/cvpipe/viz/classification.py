"""Plots for classifier evaluation and training: confusion matrices, ROC / PR curves, and the
loss / accuracy / learning-rate curves of a run. Every function writes one PNG and returns its
path.

Curves are computed elsewhere (``cvpipe.engine.metrics.roc_curves`` / ``pr_curves``); this
module only draws, so it depends on NumPy and matplotlib alone.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from cvpipe.viz.figures import new_figure, save_figure

PathLike = Union[str, Path]
Curve = Optional[tuple[np.ndarray, np.ndarray]]

MAX_ANNOTATED = 30  # classes up to which cells carry their numbers
MAX_TICK_LABELS = 60  # classes up to which axes name every class
MAX_LEGEND = 20  # curves up to which the legend lists every class


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (recall per true class); empty rows stay 0."""
    cm = np.asarray(cm, dtype=np.float64)
    sums = cm.sum(1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def plot_confusion_matrix(
    cm: Union[np.ndarray, Sequence[Sequence[int]]],
    class_names: Sequence[str],
    out_png: PathLike,
    normalize: bool = False,
    title: Optional[str] = None,
) -> Path:
    """Draw a (C, C) confusion matrix, rows = true class, columns = predicted class.

    With ``normalize`` each row is divided by its count, so the diagonal reads as per-class
    recall. Cells are annotated up to 30 classes; class names label the axes up to 60.
    """
    counts = np.asarray(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(class_names):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {len(class_names)} classes")
    values = normalize_rows(counts) if normalize else counts.astype(np.float64)
    c = len(class_names)
    side = min(max(4.0, 0.45 * c + 2.5), 16.0)
    fig, ax = new_figure(size=(side + 1.2, side))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(values.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    if c <= MAX_TICK_LABELS:
        rotation, align = (90, "center") if c > 8 else (45, "right")
        ax.set_xticks(range(c), labels=[str(n) for n in class_names], rotation=rotation, ha=align)
        ax.set_yticks(range(c), labels=[str(n) for n in class_names])
    if c <= MAX_ANNOTATED:
        threshold = values.max() / 2.0
        rows, cols = np.indices(values.shape)
        for i, j, v in zip(rows.ravel(), cols.ravel(), values.ravel()):
            text = f"{v:.2f}" if normalize else f"{int(v)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if v > threshold else "black")
    return save_figure(fig, out_png)


def _plot_curves(
    curves: Sequence[Curve],
    class_names: Sequence[str],
    scores: Optional[Sequence[float]],
    score_name: str,
    out_png: PathLike,
    xlabel: str,
    ylabel: str,
    title: str,
    chance_diagonal: bool,
) -> Path:
    if len(curves) != len(class_names):
        raise ValueError(f"{len(curves)} curves for {len(class_names)} class names")
    fig, ax = new_figure(size=(6.4, 5.6))
    drawn = 0
    for c, curve in enumerate(curves):
        if curve is None:  # undefined for this class (no positives, or no negatives)
            continue
        x, y = np.asarray(curve[0]), np.asarray(curve[1])
        if not chance_diagonal:  # PR: keep the points where recall rises; they bound the AP area
            keep = np.r_[True, x[1:] > x[:-1]]
            x, y = x[keep], y[keep]
        label = str(class_names[c])
        if scores is not None and not math.isnan(scores[c]):
            label += f" ({score_name} {scores[c]:.3f})"
        # PR: precision P_n holds over the recall interval (R_{n-1}, R_n], hence steps-pre
        ax.plot(x, y, lw=1.2, label=label, drawstyle="default" if chance_diagonal else "steps-pre")
        drawn += 1
    if chance_diagonal:
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    valid = [s for s in (scores or []) if not math.isnan(s)]
    ax.set_title(f"{title} (mean {score_name} {np.mean(valid):.3f})" if valid else title)
    if 0 < drawn <= MAX_LEGEND:
        ax.legend(fontsize=7, loc="lower right" if chance_diagonal else "lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, out_png)


def plot_roc_curves(
    curves: Sequence[Curve],
    class_names: Sequence[str],
    out_png: PathLike,
    aucs: Optional[Sequence[float]] = None,
) -> Path:
    """One-vs-rest ROC curves, one line per class; ``curves[c]`` is ``(fpr, tpr)`` or None.

    ``aucs`` (per class, NaN allowed) go into the legend and title.
    """
    return _plot_curves(curves, class_names, aucs, "AUC", out_png, "false positive rate", "true positive rate",
                        "ROC (one-vs-rest)", chance_diagonal=True)


def plot_pr_curves(
    curves: Sequence[Curve],
    class_names: Sequence[str],
    out_png: PathLike,
    aps: Optional[Sequence[float]] = None,
) -> Path:
    """Precision-recall curves per class (multi-label); ``curves[c]`` is ``(recall, precision)``."""
    return _plot_curves(curves, class_names, aps, "AP", out_png, "recall", "precision",
                        "precision-recall", chance_diagonal=False)


# --------------------------------------------------------------------------- training curves


def read_metrics_csv(path: PathLike) -> dict[str, np.ndarray]:
    """Columns of a ``metrics.csv`` as float arrays; blank or non-numeric cells become NaN."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    columns: dict[str, np.ndarray] = {}
    for name in rows[0]:
        values = []
        for row in rows:
            try:
                values.append(float(row.get(name) or "nan"))
            except ValueError:
                values.append(float("nan"))
        columns[name] = np.array(values)
    return columns


def _panels(columns: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Which columns go together: losses, accuracies and mAP-like scores, learning rates."""
    loss = [c for c in columns if c.endswith("/loss") or c == "loss"]
    score = [c for c in columns if ("/acc" in c or c.startswith("acc") or "map" in c.lower()) and c not in loss]
    lr = [c for c in columns if c == "lr" or c.startswith("lr/") or c.endswith("/lr")]
    return [(title, cols) for title, cols in (("loss", loss), ("accuracy / mAP", score), ("learning rate", lr)) if cols]


def plot_training_curves(metrics_csv_path: PathLike, out_png: PathLike) -> Path:
    """Loss, accuracy (and mAP) and learning rate per epoch from a run's ``metrics.csv``.

    Uses every ``*/loss`` column in one panel, every ``*/acc*`` and ``*mAP*`` column in a second
    and ``lr`` in a third (log scale when it spans over two decades); the x axis is the
    ``epoch`` column, or the row number without one. Panels without columns are left out.
    """
    data = read_metrics_csv(metrics_csv_path)
    if not data:
        raise ValueError(f"{metrics_csv_path}: no rows to plot")
    n = len(next(iter(data.values())))
    x = data["epoch"] if "epoch" in data else np.arange(1, n + 1, dtype=np.float64)
    panels = _panels([c for c in data if c != "epoch"])
    if not panels:
        raise ValueError(f"{metrics_csv_path}: no loss, accuracy, mAP or lr columns")
    fig, axes = new_figure(1, len(panels), size=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (title, cols) in zip(axes[0], panels):
        for col in cols:
            y = data[col]
            ok = ~np.isnan(y)
            if ok.any():
                ax.plot(x[ok], y[ok], marker="o" if ok.sum() <= 30 else None, ms=3, lw=1.4, label=col)
        if title == "learning rate":
            positive = np.concatenate([data[c][data[c] > 0] for c in cols])
            if positive.size and positive.max() / positive.min() > 100:
                ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, out_png)
