"""Pascal VOC box evaluation: per-class AP at IoU 0.5 and its mean.

The protocol of the VOC devkit (and of the ``voc_eval`` port used by most detectors):

* detections of a class, from all images, are ranked by score (stable: file order breaks ties);
* each takes the ground truth of its image and class with the highest IoU (the first one on
  ties); it is a true positive when that IoU is *above* the threshold (``>``, not ``>=``),
  the ground truth is not difficult and no better-ranked detection took it; a detection
  whose best ground truth is difficult is neither true nor false positive; every other
  detection is a false positive (including a second detection of an already-found object,
  even if another object it overlaps is still free);
* recall = TP / (non-difficult ground truths), precision = TP / (TP + FP);
* AP: ``"all-point"`` (VOC 2010+) is the area under the precision envelope (precision made
  monotone from the right) at every recall step; ``"11-point"`` (VOC 2007) averages the best
  precision at recall >= 0, 0.1, ..., 1.0. The thresholds are exactly ``k / 10`` (the common
  Python port uses ``np.arange(0, 1.1, 0.1)``, whose 0.30000000000000004, 0.6000000000000001
  and 0.7000000000000001 differ from 0.3, 0.6 and 0.7 when a recall is exactly one of them).

Classes without any non-difficult ground truth have no AP (NaN) and are left out of the
mean, as COCO leaves out its -1 entries.

Vectorised: the greedy loop of ``voc_eval`` has a closed form. A detection only competes
with detections whose best ground truth is the same object, so "first in score order among
those" is one ``np.unique(..., return_index=True)`` over the ranked detections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cvpipe.detection.annotations import Category, DetectionDataset, Detections


@dataclass
class VocEvaluation:
    """Per-class AP (NaN for classes without ground truth), their mean, and the PR curves
    (``curves[name] = (recall, precision)`` over the ranked detections). ``issues``: ground-truth
    files, lines or objects that could not be read and are therefore not part of the numbers."""

    ap: dict
    mean_ap: float
    metric: str
    iou_threshold: float
    categories: list[Category]
    num_gt: dict = field(default_factory=dict)
    num_dets: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    issues: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"mAP": self.mean_ap, **{f"AP/{k}": v for k, v in self.ap.items()}}

    def summary(self) -> str:
        lines = [f"{'class':<20} {'gt':>7} {'dets':>7} {'AP':>7}"]
        for c in self.categories:
            ap = self.ap[c.name]
            text = f"{ap:7.4f}" if np.isfinite(ap) else f"{'-':>7}"
            lines.append(f"{c.name[:20]:<20} {self.num_gt[c.name]:>7} {self.num_dets[c.name]:>7} {text}")
        lines.append(f"mAP@{self.iou_threshold:g} ({self.metric}) = {self.mean_ap:.4f}")
        return "\n".join(lines)


def voc_ap(recall: np.ndarray, precision: np.ndarray, metric: str = "all-point") -> float:
    """Average precision from a PR curve over ranked detections.

    recall, precision: ``(n,)`` arrays in rank order (recall non-decreasing).
    metric: ``"all-point"`` (area under the monotone envelope) or ``"11-point"``.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if metric == "11-point":
        points = np.arange(11) / 10.0
        # best precision at recall >= t; 0 when the curve never reaches t
        reach = recall[None, :] >= points[:, None]
        best = np.where(reach, precision[None, :], 0.0).max(axis=1, initial=0.0)
        return float(np.sum(best) / 11.0)
    if metric != "all-point":
        raise ValueError(f"unknown AP metric {metric!r}; expected 'all-point' or '11-point'")
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_pair_iou(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of aligned pairs of ``xyxy`` boxes ``(P, 4)`` -> ``(P,)``; 0 without overlap.

    With cvpipe's continuous boxes (``x1 = xmin - 1``) this is the devkit's ``+1`` formula."""
    iw = np.maximum(np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0]), 0.0)
    ih = np.maximum(np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1]), 0.0)
    inter = iw * ih
    union = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]) + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) - inter
    return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_class(gt_image, gt_boxes, gt_difficult, det_image, det_boxes, det_scores, iou_threshold=0.5):
    """True/false positives of one class's detections, in rank order.

    gt_*: ``(G,)`` image ids, ``(G, 4)`` boxes, ``(G,)`` difficult flags; det_*: ``(D,)``,
    ``(D, 4)``, ``(D,)``. Returns ``(tp, fp)`` bool ``(D,)`` over detections ranked by score.
    """
    order = np.argsort(-np.asarray(det_scores, dtype=np.float64), kind="stable")
    det_image, det_boxes = np.asarray(det_image)[order], np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)[order]
    D = len(order)
    g_order = np.argsort(gt_image, kind="stable")  # ground truths of each image, file order kept
    g_sorted = np.asarray(gt_image)[g_order]
    start = np.searchsorted(g_sorted, det_image, "left")
    count = np.searchsorted(g_sorted, det_image, "right") - start
    pair_det = np.repeat(np.arange(D), count)
    offsets = np.cumsum(count) - count
    pair_gt = g_order[start[pair_det] + np.arange(len(pair_det)) - offsets[pair_det]]
    ious = voc_pair_iou(det_boxes[pair_det], np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)[pair_gt])
    has = count > 0
    best = np.full(D, -1.0)
    best_gt = np.full(D, -1, dtype=np.int64)
    if len(ious):
        best[has] = np.maximum.reduceat(ious, offsets[has])
        # first ground truth reaching the best IoU (np.argmax's tie rule in voc_eval)
        at_best = np.where(ious == best[pair_det], np.arange(len(ious)), len(ious))
        best_gt[has] = pair_gt[np.minimum.reduceat(at_best, offsets[has])]
    hit = best > iou_threshold
    difficult = np.zeros(D, dtype=bool)
    difficult[hit] = np.asarray(gt_difficult, dtype=bool)[best_gt[hit]]
    candidates = np.flatnonzero(hit & ~difficult)
    _, first = np.unique(best_gt[candidates], return_index=True)  # earliest-ranked claim wins
    tp = np.zeros(D, dtype=bool)
    tp[candidates[first]] = True
    fp = ~tp & ~(hit & difficult)
    return tp, fp


def evaluate_arrays(gt: DetectionDataset, dets: Detections, metric: str = "all-point",
                    iou_threshold: float = 0.5) -> VocEvaluation:
    """VOC evaluation of ``dets`` against ``gt`` (``gt.ignore`` = difficult)."""
    ap, num_gt, num_dets, curves = {}, {}, {}, {}
    for c in gt.categories:
        g = gt.category_id == c.id
        d = dets.category_id == c.id
        tp, fp = match_class(gt.image_index[g], gt.boxes[g], gt.ignore[g], dets.image_index[d], dets.boxes[d],
                             dets.scores[d], iou_threshold)
        npos = int(np.sum(~gt.ignore[g]))
        num_gt[c.name], num_dets[c.name] = npos, int(d.sum())
        tp_sum, fp_sum = np.cumsum(tp).astype(float), np.cumsum(fp).astype(float)
        if npos == 0:
            ap[c.name] = float("nan")
            continue
        recall = tp_sum / npos
        precision = tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(np.float64).eps)
        curves[c.name] = (recall, precision)
        ap[c.name] = voc_ap(recall, precision, metric)
    valid = [v for v in ap.values() if np.isfinite(v)]
    mean_ap = float(np.mean(valid)) if valid else float("nan")
    return VocEvaluation(ap, mean_ap, metric, iou_threshold, list(gt.categories), num_gt, num_dets, curves)
