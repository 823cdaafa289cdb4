"""Detection evaluation: the COCO protocol (12 numbers, pycocotools-identical) and the Pascal VOC
protocol (per-class AP, 11-point or all-point, IoU 0.5), from paths or in-memory data."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from cvpipe.detection.annotations import DetectionDataset, Detections, Issue, output_folder
from cvpipe.detection.evaluation.coco import (
    AREA_RANGES,
    IOU_THRESHOLDS,
    MAX_DETS,
    STAT_NAMES,
    CocoEvaluation,
    coco_pair_iou,
)
from cvpipe.detection.evaluation.coco import evaluate_arrays as _coco_arrays
from cvpipe.detection.evaluation.predictions import PREDICTION_FORMATS, read_predictions
from cvpipe.detection.evaluation.voc import VocEvaluation, match_class, voc_ap
from cvpipe.detection.evaluation.voc import evaluate_arrays as _voc_arrays
from cvpipe.detection.formats import read_dataset
from cvpipe.detection.names import PROTOCOLS
from cvpipe.errors import DataError


def load_for_evaluation(gt, predictions, gt_format=None, pred_format=None, split=None, classes=None):
    """Ground truth (optionally one split) and the predictions for its images.

    With ``split``, predictions made for the whole dataset are accepted: those for images of
    the other splits are left out, and a warning says how many. Predictions for images the
    dataset does not have at all are still an error."""
    ds = gt if isinstance(gt, DetectionDataset) else read_dataset(gt, gt_format, classes=classes)
    full, keep = ds, None
    if split is not None:
        keep = np.array([im.split == split for im in ds.images], dtype=bool)
        if not keep.any():
            raise DataError(f"{gt}: no images in split {split!r}; splits: {', '.join(s or '(none)' for s in ds.splits)}")
        ds = ds.select_images(keep)
    if not ds.images:
        errors = [i for i in ds.issues if i.level == "error"]
        raise DataError(f"{gt}: the ground truth has no images" + (f" ({errors[0]})" if errors else ""))
    if isinstance(predictions, Detections):
        return ds, predictions
    try:
        dets = read_predictions(predictions, ds, pred_format)
    except DataError as error:
        if keep is None or keep.all():
            raise
        try:  # made for the whole dataset? then keep those of this split
            every = read_predictions(predictions, full, pred_format)
        except DataError as whole:
            # images the whole dataset lacks too: name only those; any other problem as for the split
            raise (whole if "not in the ground truth" in str(whole) else error) from None
        new_index = np.cumsum(keep) - 1
        mine = keep[every.image_index]
        dets = Detections(new_index[every.image_index[mine]], every.boxes[mine], every.scores[mine],
                          every.category_id[mine])
        ds.issues = list(ds.issues) + [Issue(str(predictions), f"{int((~mine).sum())} of {len(every)} detections are "
                                             f"for images of other splits than {split!r}; they are left out",
                                             level="warning")]
    if ds.numbered_ids and (pred_format or ("coco" if Path(predictions).is_file() else "")) == "coco":
        # ids that only cvpipe's numbering gives: results made for another file's ids match silently wrong images
        ds.issues = list(ds.issues) + [Issue(str(predictions), f"COCO results are matched to images by image_id, but "
                                             f"this {ds.format} ground truth stores no image ids (cvpipe numbers its "
                                             f"images 1..N in file order): unless the results were made for those "
                                             "numbers, evaluate against the COCO file they were made for, or give "
                                             "them as YOLO or VOC txt files, which are matched by file name",
                                             level="warning")]
    return ds, dets


def unknown_category_warning(gt: DetectionDataset, dets: Detections, source) -> list[Issue]:
    """A warning when detections carry category ids the ground truth lacks: they are not
    evaluated (as in pycocotools), which is usually 0-based indices against 1-based ids."""
    known = np.array([c.id for c in gt.categories], dtype=np.int64)
    unknown = ~np.isin(dets.category_id, known)
    if not unknown.any():
        return []
    ids = np.unique(dets.category_id[unknown])
    shown = ", ".join(str(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
    where = "predictions" if isinstance(source, Detections) else str(source)
    return [Issue(where, f"{int(unknown.sum())} of {len(dets)} detections have category ids the ground truth lacks "
                         f"({shown}; it has {', '.join(str(i) for i in known[:5])}{', ...' if len(known) > 5 else ''}): "
                         "they are not evaluated", level="warning")]


def evaluate_coco(
    gt: Union[str, Path, DetectionDataset],
    predictions: Union[str, Path, Detections],
    *,
    gt_format: Optional[str] = None,
    pred_format: Optional[str] = None,
    split: Optional[str] = None,
    classes=None,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
    area_ranges: Optional[dict] = None,
    out_dir=None,
) -> CocoEvaluation:
    """COCO evaluation (AP@[.5:.95], AP50, AP75, AP S/M/L, AR@1/10/100, AR S/M/L).

    Args:
        gt: ground-truth dataset (any format cvpipe reads) or a :class:`DetectionDataset`.
        predictions: COCO results JSON, YOLO txt folder or VOC per-class folder, or
            :class:`Detections`.
        gt_format, pred_format: detected when None. split: evaluate one split of ``gt``.
        classes: class list for ground-truth formats that store indices only.
        iou_thresholds, max_dets, area_ranges: pycocotools' defaults. With other max-dets the
            AP numbers use the largest value (see :func:`~.coco.summarize`).
        out_dir: also write ``summary.json``, ``per_class.csv`` and ``pr_curves.png`` there.

    Returns:
        :class:`CocoEvaluation` (``.stats`` in pycocotools' order, ``.summary()``); its
        ``issues`` list the ground-truth files, lines or objects that could not be read and
        were left out.
    """
    out = output_folder(out_dir) if out_dir is not None else None  # before the work: a bad path fails fast
    ds, dets = load_for_evaluation(gt, predictions, gt_format, pred_format, split, classes)
    result = _coco_arrays(ds, dets, iou_thresholds, max_dets, area_ranges)
    result.issues = list(ds.issues) + unknown_category_warning(ds, dets, predictions)
    if out is not None:
        from cvpipe.detection.plots import plot_coco_pr_curves

        (out / "summary.json").write_text(json.dumps({"protocol": "coco", **result.as_dict()}, indent=2))
        _write_csv(out / "per_class.csv", result.per_class())
        plot_coco_pr_curves(result, out / "pr_curves.png")
    return result


def evaluate_voc(
    gt: Union[str, Path, DetectionDataset],
    predictions: Union[str, Path, Detections],
    *,
    metric: str = "all-point",
    iou_threshold: float = 0.5,
    gt_format: Optional[str] = None,
    pred_format: Optional[str] = None,
    split: Optional[str] = None,
    classes=None,
    out_dir=None,
) -> VocEvaluation:
    """Pascal VOC evaluation: per-class AP at ``iou_threshold`` and mAP; difficult (ignored)
    objects neither count nor punish. ``metric``: ``"all-point"`` (VOC 2010+) or
    ``"11-point"`` (VOC 2007). Other arguments as :func:`evaluate_coco`."""
    if metric not in ("all-point", "11-point"):
        raise DataError(f"unknown VOC metric {metric!r}; expected all-point or 11-point")
    if not 0.0 <= iou_threshold < 1.0:  # a match needs IoU > threshold: 1 or more matches nothing
        raise DataError(f"IoU threshold {iou_threshold} must be in [0, 1)")
    out = output_folder(out_dir) if out_dir is not None else None
    ds, dets = load_for_evaluation(gt, predictions, gt_format, pred_format, split, classes)
    result = _voc_arrays(ds, dets, metric, iou_threshold)
    result.issues = list(ds.issues) + unknown_category_warning(ds, dets, predictions)
    if out is not None:
        from cvpipe.detection.plots import plot_voc_pr_curves

        (out / "summary.json").write_text(json.dumps(
            {"protocol": "voc07" if metric == "11-point" else "voc", "metric": metric,
             "mAP": _json_float(result.mean_ap), "AP": {k: _json_float(v) for k, v in result.ap.items()}}, indent=2))
        _write_csv(out / "per_class.csv", [{"name": c.name, "gt": result.num_gt[c.name], "dets": result.num_dets[c.name],
                                            "AP": result.ap[c.name]} for c in result.categories])
        plot_voc_pr_curves(result, out / "pr_curves.png")
    return result


def _json_float(v: float):
    return None if not np.isfinite(v) else float(v)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


__all__ = [
    "AREA_RANGES", "IOU_THRESHOLDS", "MAX_DETS", "PREDICTION_FORMATS", "PROTOCOLS", "STAT_NAMES",
    "CocoEvaluation", "VocEvaluation", "coco_pair_iou", "evaluate_coco", "evaluate_voc", "load_for_evaluation",
    "match_class", "read_predictions", "voc_ap",
]
