"""PNG plots for detection datasets (lint statistics) and evaluations (precision-recall curves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvpipe.detection.annotations import DetectionDataset
from cvpipe.viz import new_figure, save_figure


def plot_dataset_statistics(ds: DetectionDataset, out_dir) -> list[Path]:
    """Write ``objects_per_class.png``, ``box_sizes.png``, ``aspect_ratios.png`` and
    ``boxes_per_image.png`` (non-ignored objects with a positive size) to ``out_dir``."""
    out = Path(out_dir)
    paths = []
    regular = ~ds.ignore
    idx = ds.category_index()
    counts = [int(np.sum((idx == k) & regular)) for k in range(len(ds.categories))]
    fig, ax = new_figure(size=(max(6.4, 0.35 * len(counts) + 2), 4.8))
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.set_xticks(range(len(counts)))
    ax.set_xticklabels(ds.class_names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("objects")
    ax.set_title(f"objects per class ({int(regular.sum())} objects, {int(ds.ignore.sum())} ignored not shown)")
    paths.append(save_figure(fig, out / "objects_per_class.png"))

    b = ds.boxes[regular]
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    good = (w > 0) & (h > 0) & np.isfinite(w) & np.isfinite(h)
    w, h = w[good], h[good]
    fig, axes = new_figure(1, 2, size=(10, 4))
    if len(w):
        bins = np.logspace(np.log10(max(min(w.min(), h.min()), 1e-3)), np.log10(max(w.max(), h.max()) * 1.01), 30)
        axes[0].hist(w, bins=bins, alpha=0.6, label="width")
        axes[0].hist(h, bins=bins, alpha=0.6, label="height")
        axes[0].set_xscale("log")
        axes[0].legend()
        axes[1].scatter(w, h, s=4, alpha=0.4)
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        for side in (32, 96):  # COCO's small/medium/large limits (for square boxes)
            axes[1].axvline(side, color="grey", lw=0.8, ls="--")
    axes[0].set_xlabel("pixels")
    axes[0].set_title("box width and height")
    axes[1].set_xlabel("width (px)")
    axes[1].set_ylabel("height (px)")
    axes[1].set_title("box sizes (dashed: 32 and 96 px)")
    paths.append(save_figure(fig, out / "box_sizes.png"))

    fig, ax = new_figure()
    if len(w):
        ax.hist(np.log2(w / h), bins=40, color="tab:green")
    ax.set_xlabel("log2(width / height)")
    ax.set_ylabel("objects")
    ax.set_title("box aspect ratios")
    paths.append(save_figure(fig, out / "aspect_ratios.png"))

    fig, ax = new_figure()
    per_image = ds.objects_per_image()
    ax.hist(per_image, bins=np.arange(per_image.max(initial=0) + 2) - 0.5, color="tab:orange")
    ax.set_xlabel("objects in the image")
    ax.set_ylabel("images")
    ax.set_title(f"boxes per image ({int(np.sum(per_image == 0))} images without objects)")
    paths.append(save_figure(fig, out / "boxes_per_image.png"))
    return paths


def plot_coco_pr_curves(result, path, max_classes: int = 20) -> Path:
    """Left: precision vs recall averaged over classes at IoU 0.5, 0.75 and over 0.5:0.95
    (area all, largest max-dets). Right: per-class curves at IoU 0.5 for the ``max_classes``
    classes with most ground truth."""
    rec = result.recall_thresholds
    p = result.precision[:, :, :, 0, -1]  # (T, R, K)
    fig, axes = new_figure(1, 2, size=(11, 4.6))

    def mean_curve(values):  # values (..., R, K): mean over valid classes per recall
        valid = values > -1
        total = np.where(valid, values, 0).sum(-1)
        n = valid.sum(-1)
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    for label, sel in (("IoU=0.50", np.isclose(result.iou_thresholds, 0.5)),
                       ("IoU=0.75", np.isclose(result.iou_thresholds, 0.75)),
                       ("IoU=0.50:0.95", np.ones(len(result.iou_thresholds), bool))):
        if sel.any():
            curve = np.nanmean(mean_curve(p[sel]), axis=0)  # (t, R) -> (R,)
            axes[0].plot(rec, curve, label=label)
    axes[0].set_title(f"mean over classes (AP={result.stats[0]:.3f}, AP50={result.stats[1]:.3f})")
    t50 = np.flatnonzero(np.isclose(result.iou_thresholds, 0.5))
    order = np.argsort(-result.num_gt, kind="stable")[:max_classes] if len(result.num_gt) else []
    for k in order:
        if len(t50) and (p[t50[0], :, k] > -1).any():
            axes[1].plot(rec, p[t50[0], :, k], lw=1, label=result.categories[k].name)
    axes[1].set_title("per class, IoU=0.50")
    for ax in axes:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left")
    if len(order):
        axes[1].legend(loc="lower left", fontsize=6, ncol=2)
    return save_figure(fig, path)


def plot_voc_pr_curves(result, path, max_classes: int = 20) -> Path:
    """Per-class precision-recall curves (the ranked detections) with their AP in the legend."""
    fig, ax = new_figure(size=(7, 5))
    names = sorted(result.curves, key=lambda n: -result.num_gt.get(n, 0))[:max_classes]
    for name in names:
        recall, precision = result.curves[name]
        ax.plot(recall, precision, lw=1, label=f"{name} ({result.ap[name]:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{result.metric} AP, IoU={result.iou_threshold:g}: mAP={result.mean_ap:.4f}")
    if names:
        ax.legend(loc="lower left", fontsize=6, ncol=2)
    return save_figure(fig, path)
