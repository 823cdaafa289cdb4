"""``cvpipe eval``: the full report for a checkpoint on a dataset split.

Single-label: loss, top-1/top-5 accuracy, per-class precision/recall/F1/support, macro and
weighted averages, one-vs-rest ROC AUC, confusion matrix (CSV, raw and normalised PNG), ROC
curves, a gallery of the worst mistakes and, with ``cam=N``, CAM overlays for the N worst.
Multi-label: per-class AP, mAP and F1 at the threshold. Everything lands in ``summary.json``.

    report = cvpipe.evaluate("runs/train/exp/weights/best.pt", data="path/to/test_images", split="all")
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from cvpipe.config import DataConfig, load_config, to_dict
from cvpipe.engine.inference import collect_outputs
from cvpipe.engine.logger import get_logger
from cvpipe.errors import ConfigError, DataError
from cvpipe.tasks.common import Trained, check_at_least, device_for, increment_run_dir, load_trained

SPLITS = ("train", "val", "test", "all")


@dataclass
class EvalResult:
    out_dir: Optional[Path]
    metrics: dict[str, Any]
    classes: list[str]
    logits: torch.Tensor
    targets: torch.Tensor
    paths: list[str]


def evaluate(
    checkpoint: Union[str, Path, Trained],
    overrides: Sequence[str] = (),
    *,
    data: Optional[str] = None,
    split: Optional[str] = None,
    batch_size: int = 64,
    workers: Optional[int] = None,
    device: str = "auto",
    cam: int = 0,
    cam_method: str = "gradcam",
    cam_layer: Optional[str] = None,
    mistakes: int = 16,
    save: bool = True,
    project: Union[str, Path] = "runs/eval",
    name: str = "exp",
    exist_ok: bool = False,
) -> EvalResult:
    """Evaluate on ``split`` of the training data, or of ``data`` (a folder in any layout).

    ``split`` defaults to ``"val"`` on the training data and to ``"all"`` (every image) on
    ``data``. The other dataset's layout is detected afresh (the training run's ``layout``,
    ``images``, ``labels`` and ``names`` do not carry over) and its labels are read as the
    model was trained: single- or multi-label. ``overrides`` are ``data.*`` settings applied
    last (e.g. ``data.labels=test.csv``). ``cam=N`` draws CAM overlays of the N worst
    mistakes with ``cam_method`` at ``cam_layer`` (default: the model's CAM layer).
    """
    from cvpipe.data.datasets import build_splits
    from cvpipe.data.loaders import build_loader

    check_at_least(1, batch=batch_size)
    check_at_least(0, workers=workers or 0, mistakes=mistakes, cam=cam)
    if split is None:
        split = "val" if data is None else "all"
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: use one of {', '.join(SPLITS)}")
    if cam:
        from cvpipe.explain.cam import canonical_method

        cam_method = canonical_method(cam_method)  # a typo fails now, not after the whole evaluation
    trained = checkpoint if isinstance(checkpoint, Trained) else load_trained(checkpoint)
    cfg = _data_config(trained, data, overrides)
    splits = build_splits(cfg.data, trained.in_chans)
    dataset = _pick_split(splits, split)
    dataset = _align_classes(dataset, trained.classes)
    dataset.transform = trained.transform

    log = get_logger()
    log.info(f"evaluating {len(dataset)} images: {split} of {splits.describe()}")
    if splits.skipped:
        path, reason = splits.skipped[0]
        log.warning(f"warning: {len(splits.skipped)} file(s) left out, the first: {path}: {reason} (all in summary.json)")
    data_changed = _data_changed(trained, splits) if data is None else None
    if data_changed:
        log.warning(f"warning: {data_changed}")
    dev = device_for(device)
    model = trained.model.to(dev)
    loader = build_loader(dataset, batch_size, train=False, workers=cfg.data.workers if workers is None else workers, seed=0)
    logits, targets = collect_outputs(model, loader, dev, desc="eval")
    paths = [str(p) for p in dataset.paths]

    out_dir = increment_run_dir(project, name, exist_ok) if save else None
    if trained.multi_label:
        metrics = _multilabel(logits, targets, trained, paths, out_dir)
    else:
        metrics = _single_label(logits, targets, trained, paths, out_dir, mistakes)
    metrics.update({"checkpoint": str(trained.path), "data": cfg.data.root, "split": split, "images": len(dataset)})
    if splits.skipped:
        metrics["skipped_files"] = [[str(p), r] for p, r in splits.skipped]
    if data_changed:
        metrics["data_changed"] = data_changed
    if out_dir is not None:
        if cam and not trained.multi_label:
            try:
                _cam_gallery(trained, dataset, logits, targets, cam, cam_method, out_dir, dev, cam_layer)
            except ConfigError as e:  # e.g. a CAM layer with a 1x1 map: the report stands without it
                why = str(e).replace("layer=NAME", "cam_layer=NAME")  # eval's name for cam's layer= option
                log.warning(f"warning: no CAM gallery: {why}")
        (out_dir / "summary.json").write_text(json.dumps(_jsonable(metrics), indent=1), encoding="utf-8")
        log.info(f"report saved to {out_dir}")
    log.info(_headline(metrics, trained.multi_label))
    return EvalResult(out_dir, metrics, trained.classes, logits, targets, paths)


LAYOUT_KEYS = ("layout", "images", "labels", "names")  # describe one dataset's files


def _data_changed(trained: Trained, splits) -> Optional[str]:
    """On the model's own training data: a sentence when its train/val images (files or labels)
    are no longer those the model was trained with, e.g. photos added to the folder since.
    The split is then drawn afresh, so val may hold images the model was trained on."""
    change = splits.change_since(trained.data_fingerprint)
    if change is None:
        return None
    return (
        f"the data under {splits.root} differs from the data the model was trained on ({change}): the splits are "
        "drawn afresh, so val may hold images the model was trained on and overstate its accuracy; evaluate a fixed "
        "held-out folder with data=FOLDER, or keep train/ and val/ folders"
    )


def _data_config(trained: Trained, data: Optional[str], overrides: Sequence[str]):
    base = to_dict(trained.config)
    items = list(overrides)
    for item in items:
        if not item.startswith("data."):
            raise ConfigError(f"eval override {item!r}: only data.* settings can change at evaluation")
    if data is not None:
        defaults = DataConfig()
        base["data"].update({"root": str(data), **{key: getattr(defaults, key) for key in LAYOUT_KEYS}})
    cfg = load_config(base, items)
    cfg.data.multi_label = trained.multi_label  # read the labels the way the model predicts them
    return cfg


def _pick_split(splits, split: str):
    from cvpipe.data.datasets import ImageDataset

    if split == "all":
        parts = [d for d in (splits.train, splits.val, splits.test) if d is not None and len(d)]
        first = parts[0]
        return ImageDataset(
            [p for d in parts for p in d.paths],
            torch.cat([d.targets for d in parts]),
            first.classes,
            multi_label=first.multi_label,
            mode=first.mode,
        )
    dataset = getattr(splits, split)
    if dataset is None or len(dataset) == 0:
        raise DataError(f"the dataset has no {split} images; use split=all to evaluate every image")
    return dataset


def _align_classes(dataset, classes: list[str]):
    """Re-index targets to the checkpoint's class order, matching classes by name."""
    from cvpipe.data.datasets import ImageDataset

    unknown = [c for c in dataset.classes if c not in classes]
    if unknown:
        shown = ", ".join(unknown[:5]) + ("..." if len(unknown) > 5 else "")
        known = ", ".join(classes[:10]) + ("..." if len(classes) > 10 else "")
        raise DataError(
            f"the data has classes the model was not trained on: {shown}; the model knows {len(classes)}: {known} "
            "(numeric labels are read as class indices only with data.names=FILE listing the names)"
        )
    if list(dataset.classes) == list(classes):
        return dataset
    position = torch.tensor([classes.index(c) for c in dataset.classes])
    if dataset.multi_label:
        targets = torch.zeros((len(dataset), len(classes)), dtype=dataset.targets.dtype)
        targets[:, position] = dataset.targets
    else:
        targets = position[dataset.targets]
    return ImageDataset(dataset.paths, targets, classes, multi_label=dataset.multi_label, mode=dataset.mode)


def _single_label(logits, targets, trained: Trained, paths, out_dir, n_mistakes: int) -> dict[str, Any]:
    from cvpipe.engine.metrics import classification_report

    probs = torch.softmax(logits, dim=1)
    report = classification_report(probs, targets, trained.classes, topk=(1, 5))
    report["loss"] = torch.nn.functional.cross_entropy(logits, targets).item()
    if out_dir is None:
        return report
    from cvpipe.engine.metrics import roc_curves
    from cvpipe.viz.classification import plot_confusion_matrix, plot_roc_curves

    cm = report["confusion_matrix"]
    with (out_dir / "confusion_matrix.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted"] + trained.classes)
        for name, row in zip(trained.classes, cm):
            writer.writerow([name] + [int(v) for v in row])
    plot_confusion_matrix(cm, trained.classes, out_dir / "confusion_matrix.png", normalize=False)
    plot_confusion_matrix(cm, trained.classes, out_dir / "confusion_matrix_normalized.png", normalize=True)
    one_hot = torch.nn.functional.one_hot(targets, len(trained.classes))
    aucs = [report["per_class"][c]["auc"] for c in trained.classes]
    plot_roc_curves(roc_curves(probs, one_hot), trained.classes, out_dir / "roc.png", aucs=aucs)
    _write_per_class(report, trained.classes, out_dir / "per_class.csv")
    pred = probs.argmax(1)
    conf = probs.max(1).values
    with (out_dir / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "true", "predicted", "confidence", "correct"])
        for p, t, y, c in zip(paths, targets.tolist(), pred.tolist(), conf.tolist()):
            writer.writerow([p, trained.classes[t], trained.classes[y], f"{c:.6f}", int(t == y)])
    worst = worst_mistakes(probs, targets, n_mistakes)
    if worst:
        _mistake_gallery(worst, probs, targets, paths, trained, out_dir / "mistakes.png")
    return report


def worst_mistakes(probs: torch.Tensor, targets: torch.Tensor, n: int) -> list[int]:
    """Indices of wrong predictions, most confident first."""
    wrong = (probs.argmax(1) != targets).nonzero().flatten()
    order = probs[wrong].max(1).values.argsort(descending=True)
    return wrong[order][:n].tolist()


def _mistake_gallery(indices, probs, targets, paths, trained: Trained, path: Path) -> None:
    from cvpipe.data.image_io import read_image
    from cvpipe.viz import save_image_grid

    images, titles = [], []
    for i in indices:
        images.append(read_image(paths[i], mode=trained.image_mode))
        p = int(probs[i].argmax())
        titles.append(f"{trained.classes[int(targets[i])]} -> {trained.classes[p]} {float(probs[i, p]):.2f}")
    save_image_grid(images, path, titles=titles, suptitle="worst mistakes (true -> predicted, confidence)")


def _cam_gallery(trained: Trained, dataset, logits, targets, n: int, method: str, out_dir: Path, device,
                 layer: Optional[str] = None) -> None:
    """CAM overlays (for the predicted class) of the ``n`` most confident mistakes."""
    from cvpipe.data.image_io import read_image
    from cvpipe.data.transforms import denormalize
    from cvpipe.explain import cam_gallery
    from cvpipe.tasks.explain import check_has_layers

    check_has_layers(trained)

    probs = torch.softmax(logits, dim=1)
    indices = worst_mistakes(probs, targets, n)
    if not indices:
        return
    inputs = torch.stack([trained.transform(read_image(dataset.paths[i], mode=trained.image_mode)) for i in indices])
    titles = []
    for i in indices:
        p = int(probs[i].argmax())
        titles.append(f"{trained.classes[int(targets[i])]} -> {trained.classes[p]} {float(probs[i, p]):.2f}")
    cam_gallery(
        trained.model.to(device), inputs, out_dir / "mistakes_cam.png", display=denormalize(inputs, trained.preprocess),
        titles=titles, class_names=trained.classes, method=method, layers=layer or None,
    )


def _multilabel(logits, targets, trained: Trained, paths, out_dir) -> dict[str, Any]:
    from cvpipe.engine.metrics import multilabel_report

    probs = torch.sigmoid(logits)
    threshold = trained.config.data.threshold
    report = multilabel_report(probs, targets, trained.classes, threshold=threshold)
    report["loss"] = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets.float()).item()
    if out_dir is not None:
        from cvpipe.engine.metrics import pr_curves
        from cvpipe.viz.classification import plot_pr_curves

        aps = [report["per_class"][c]["ap"] for c in trained.classes]
        plot_pr_curves(pr_curves(probs, targets), trained.classes, out_dir / "pr_curves.png", aps=aps)
        _write_per_class(report, trained.classes, out_dir / "per_class.csv")
        _write_multilabel_predictions(probs, targets, threshold, trained.classes, paths, out_dir / "predictions.csv")
    return report


def _write_multilabel_predictions(probs, targets, threshold: float, classes: list[str], paths, path: Path) -> None:
    """One row per image: true and predicted label sets (``;``-joined), whether they match
    exactly, and every class probability, so any threshold can be re-applied later."""
    predicted = probs >= threshold
    truth = targets > 0.5
    exact = (predicted == truth).all(1)

    def names(flags: list[bool]) -> str:
        return ";".join(c for c, flag in zip(classes, flags) if flag)

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "true", "predicted", "exact_match"] + [f"p({c})" for c in classes])
        for p, t, y, e, row in zip(paths, truth.tolist(), predicted.tolist(), exact.tolist(), probs.tolist()):
            writer.writerow([p, names(t), names(y), int(e)] + [f"{v:.6f}" for v in row])


def _write_per_class(report: dict[str, Any], classes: list[str], path: Path) -> None:
    per_class = report.get("per_class", {})
    keys = sorted({k for row in per_class.values() for k in row})
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["class"] + keys)
        for name in classes:
            row = per_class.get(name, {})
            writer.writerow([name] + [row.get(k, "") for k in keys])


def _headline(metrics: dict[str, Any], multi_label: bool) -> str:
    n = metrics["images"]
    if multi_label:
        return f"{n} images: mAP {metrics['mAP']:.4f}, macro F1 {metrics['macro']['f1']:.4f}, loss {metrics['loss']:.4f}"
    top5 = f", top-5 {metrics['top5']:.4f}" if "top5" in metrics else ""
    return f"{n} images: top-1 {metrics['top1']:.4f}{top5}, macro F1 {metrics['macro']['f1']:.4f}, loss {metrics['loss']:.4f}"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if hasattr(obj, "tolist"):  # numpy
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


__all__ = ["EvalResult", "evaluate", "worst_mistakes"]
