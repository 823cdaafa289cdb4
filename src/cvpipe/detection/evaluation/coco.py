"""COCO box evaluation: the 12 standard numbers, computed as pycocotools computes them.

Definitions followed exactly (pycocotools ``COCOeval`` with ``iouType='bbox'``):

* IoU of a detection with a *crowd* ground truth is intersection over the detection's own
  area (a crowd region may contain any number of detections); otherwise the usual IoU.
* Per image and category, detections are sorted by score (stable, so file order breaks
  ties) and only the first ``max(max_dets)`` are kept. For each IoU threshold ``t`` the
  detections are matched greedily in that order: a detection takes the best-overlapping
  (IoU >= t, ties to the later ground truth) still-unmatched regular ground truth; only
  when none qualifies may it take an *ignored* one (crowd, or outside the area range);
  crowd regions can be matched repeatedly. A detection matched to an ignored ground truth,
  or unmatched and outside the area range, is ignored.
* Ground-truth area is the annotation's ``area`` (a mask area for segmented objects), the
  detection's area its box area; area ranges are inclusive at both ends.
* Per category, area range and max-dets, the detections of all images are ranked by score
  (ties: image id, then the per-image rank), precision is made monotone from the right and
  sampled at 101 recall thresholds (the first detection reaching each recall); categories
  without regular ground truth get -1 and are left out of the means.

What is vectorised: IoUs for all (detection, ground truth) pairs of all images at once; the
greedy matching runs as one loop over the detection *rank* (at most 100 steps) that updates
all images, categories, area ranges and IoU thresholds together, and only detections
overlapping some ground truth at the lowest threshold take part (the rest can never match);
the accumulation is one cumulative sum per category. pycocotools loops in Python over
images x categories x area ranges x thresholds x detections x ground truths.

One deliberate difference: pycocotools stores the matched ground truth's *id* and tests it
for non-zero, so a ground truth with annotation id 0 counts as unmatched; cvpipe matches by
position and has no such special id. (COCO's own files start ids at 1.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from cvpipe.detection.annotations import Category, DetectionDataset, Detections

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

# pycocotools' parameters, built the same way (np.linspace, not arange, for exact values)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {"all": (0.0**2, 1e5**2), "small": (0.0**2, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
MAX_DETS = (1, 10, 100)


@dataclass
class CocoEvaluation:
    """Result of :func:`evaluate_coco`.

    ``precision``: ``(T, R, K, A, M)``; ``recall``: ``(T, K, A, M)``; ``scores``: the score
    at each precision sample; -1 where a category has no regular ground truth. Axes: IoU
    thresholds, recall thresholds, categories (sorted by id), area ranges, max-dets.
    ``issues``: ground-truth files, lines or objects that could not be read and are therefore
    not part of the numbers.
    """

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    categories: list[Category]
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    area_labels: list[str]
    max_dets: list[int]
    num_gt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (K,) regular GT, area all
    num_dets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (K,) detections kept
    issues: list = field(default_factory=list)  # problems met reading the ground truth (what was left out)

    def as_dict(self) -> dict:
        return {name: float(v) for name, v in zip(STAT_NAMES, self.stats)}

    def _mean(self, values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    def per_class(self) -> list[dict]:
        """One row per category: AP@[.5:.95], AP50, AP75 (area all, max-dets last), AR."""
        rows = []
        t50 = np.flatnonzero(np.isclose(self.iou_thresholds, 0.5))
        t75 = np.flatnonzero(np.isclose(self.iou_thresholds, 0.75))
        for k, c in enumerate(self.categories):
            p = self.precision[:, :, k, 0, -1]
            rows.append({
                "id": c.id, "name": c.name, "gt": int(self.num_gt[k]) if len(self.num_gt) else 0,
                "dets": int(self.num_dets[k]) if len(self.num_dets) else 0,
                "AP": self._mean(p), "AP50": self._mean(p[t50]) if len(t50) else -1.0,
                "AP75": self._mean(p[t75]) if len(t75) else -1.0, "AR": self._mean(self.recall[:, k, 0, -1]),
            })
        return rows

    def stat_labels(self) -> list[str]:
        """pycocotools' line for each of the 12 numbers, with the IoU range and max-dets that
        :func:`summarize` used (they differ from the usual text when those were changed)."""
        t = self.iou_thresholds
        full = f"{t[0]:0.2f}:{t[-1]:0.2f}" if len(t) else "-"
        m = self.max_dets
        rows = [(True, full, "all", m[-1]), (True, "0.50", "all", m[-1]), (True, "0.75", "all", m[-1]),
                (True, full, "small", m[-1]), (True, full, "medium", m[-1]), (True, full, "large", m[-1]),
                (False, full, "all", m[0]), (False, full, "all", m[1] if len(m) > 1 else m[-1]),
                (False, full, "all", m[-1]), (False, full, "small", m[-1]), (False, full, "medium", m[-1]),
                (False, full, "large", m[-1])]
        return [f"{'Average Precision' if ap else 'Average Recall':<18} {'(AP)' if ap else '(AR)'} @[ IoU={iou:<9} | "
                f"area={area:>6s} | maxDets={md:>3d} ]" for ap, iou, area, md in rows]

    def summary(self) -> str:
        """The 12 numbers in pycocotools' layout, then the per-class table."""
        lines = [f" {label} = {v:0.3f}" for label, v in zip(self.stat_labels(), self.stats)]
        lines.append("")
        lines.append(f"{'class':<20} {'id':>5} {'gt':>7} {'dets':>7} {'AP':>7} {'AP50':>7} {'AP75':>7} {'AR':>7}")
        for r in self.per_class():
            fmt = lambda v: f"{v:7.3f}" if v > -1 else f"{'-':>7}"  # noqa: E731
            lines.append(f"{r['name'][:20]:<20} {r['id']:>5} {r['gt']:>7} {r['dets']:>7} "
                         f"{fmt(r['AP'])} {fmt(r['AP50'])} {fmt(r['AP75'])} {fmt(r['AR'])}")
        return "\n".join(lines)


def coco_pair_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of aligned pairs with COCO's crowd rule.

    det, gt: ``(P, 4)`` float64 ``xyxy``; crowd: ``(P,)`` bool, the ground truth is a crowd
    region. Returns ``(P,)``: intersection / union, or intersection / detection area for crowd
    ground truth; 0 where the boxes do not overlap (no division by zero for empty boxes).
    The formula is pycocotools' ``bbIou``; the intersection is bit-identical (``x + w`` is the
    stored ``x2``), the areas can differ in the last bits because pycocotools multiplies the
    stored width and height where cvpipe takes ``x2 - x1`` (a few 1e-16, relative).
    """
    iw = np.minimum(det[:, 2], gt[:, 2]) - np.maximum(det[:, 0], gt[:, 0])
    ih = np.minimum(det[:, 3], gt[:, 3]) - np.maximum(det[:, 1], gt[:, 1])
    inter = iw * ih
    det_area = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
    gt_area = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    union = np.where(crowd, det_area, det_area + gt_area - inter)
    overlap = (iw > 0) & (ih > 0)
    return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def _group_starts(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For segments of the given lengths: (segment of each element, position inside it)."""
    seg = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return seg, np.arange(int(counts.sum())) - starts[seg]


def _match(pair_iou, pair_det, pair_local, det_group, relevant, g_start, g_count, g_crowd, g_ignore,
           thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching for every (image/category group, area range, threshold) at once.

    Args:
        pair_iou: ``(P,)`` IoU of each (detection, ground truth) pair of the same group;
            pair_det: ``(P,)`` its detection; pair_local: ``(P,)`` its ground truth's position
            inside the group.
        det_group: ``(D,)`` dense group id of each detection; detections are sorted by group,
            then by score, so each group's detections are contiguous and in matching order.
        relevant: ``(D,)`` bool, the detection reaches the lowest threshold with some ground
            truth (no other detection can match anything).
        g_start, g_count: ``(G,)`` where each group's ground truths start and how many.
        g_crowd: ``(N,)`` bool; g_ignore: ``(N, A)`` bool, per area range (crowd or out of range).
        thresholds: ``(T,)`` IoU thresholds.

    Returns:
        matched, matched_ignored: ``(D, A, T)`` bool.
    """
    D, A, T = len(det_group), g_ignore.shape[1], len(thresholds)
    matched = np.zeros((D, A, T), dtype=bool)
    matched_ign = np.zeros((D, A, T), dtype=bool)
    rel = np.flatnonzero(relevant)
    if len(rel) == 0:
        return matched, matched_ign
    groups, first, count = np.unique(det_group[rel], return_index=True, return_counts=True)
    group_of_rel = np.repeat(np.arange(len(groups)), count)  # dense index into `groups`
    rank = np.arange(len(rel)) - first[group_of_rel]  # matching step of each relevant detection
    rel_pos = np.full(D, -1, dtype=np.int64)
    rel_pos[rel] = np.arange(len(rel))
    keep = rel_pos[pair_det] >= 0
    p_rel, p_local, p_iou = rel_pos[pair_det[keep]], pair_local[keep], pair_iou[keep]
    n_gt = g_count[groups]
    # Buckets of groups with similar ground-truth counts (powers of two) keep the padding small.
    bucket = np.ceil(np.log2(np.maximum(n_gt, 1))).astype(np.int64)
    thr = thresholds[None, None, :, None]
    for b in np.unique(bucket):
        members = np.flatnonzero(bucket == b)
        members = members[np.argsort(-count[members], kind="stable")]  # busiest groups first
        B, Gp, steps = len(members), int(n_gt[members].max()), int(count[members].max())
        slot = np.full(len(groups), -1, dtype=np.int64)
        slot[members] = np.arange(B)
        rel_slot = slot[group_of_rel]
        mine = rel_slot >= 0
        dets_at = np.full((B, steps), -1, dtype=np.int64)
        dets_at[rel_slot[mine], rank[mine]] = rel[mine]
        ious = np.full((B, steps, Gp), -1.0)  # -1: no such detection or ground truth
        ps = rel_slot[p_rel]
        pm = ps >= 0
        ious[ps[pm], rank[p_rel[pm]], p_local[pm]] = p_iou[pm]
        seg, local = _segments(n_gt[members])
        gt_index = g_start[groups[members]][seg] + local
        crowd = np.zeros((B, Gp), dtype=bool)
        crowd[seg, local] = g_crowd[gt_index]
        ignore = np.zeros((B, A, Gp), dtype=bool)
        ignore[seg, :, local] = g_ignore[gt_index]
        taken = np.zeros((B, A, T, Gp), dtype=bool)
        active_counts = count[members]
        for r in range(steps):
            n = int(np.sum(active_counts > r))  # groups still having an r-th detection (a prefix)
            iou = ious[:n, r, None, None, :]  # (n, 1, 1, Gp)
            ok = (iou >= thr) & (~taken[:n] | crowd[:n, None, None, :])  # (n, A, T, Gp)
            ign = ignore[:n, :, None, :]
            regular = ok & ~ign
            # a regular ground truth wins over any ignored one; among either, the best IoU
            use = np.where(regular.any(-1, keepdims=True), regular, ok & ign)
            vals = np.where(use, iou, -1.0)
            best = Gp - 1 - np.argmax(vals[..., ::-1], axis=-1)  # ties -> the later ground truth
            i, a, t = np.nonzero(use.any(-1))
            g = best[i, a, t]
            taken[i, a, t, g] = True
            det = dets_at[i, r]
            matched[det, a, t] = True
            matched_ign[det, a, t] = ignore[i, a, g]
    return matched, matched_ign


def evaluate_arrays(
    gt: DetectionDataset,
    dets: Detections,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
    area_ranges: Optional[dict] = None,
) -> CocoEvaluation:
    """COCO evaluation of ``dets`` against every image and category of ``gt``."""
    area_ranges = dict(area_ranges or AREA_RANGES)
    area_labels = list(area_ranges)
    area_lo = np.array([area_ranges[k][0] for k in area_labels], dtype=np.float64)
    area_hi = np.array([area_ranges[k][1] for k in area_labels], dtype=np.float64)
    iou_thr = np.asarray(iou_thresholds, dtype=np.float64)
    max_dets = sorted(int(m) for m in max_dets)
    T, R, A, M = len(iou_thr), len(RECALL_THRESHOLDS), len(area_labels), len(max_dets)

    # images ranked by id (pycocotools' imgIds order), categories sorted by id
    n_img = len(gt.images)
    img_ids = np.array([im.id for im in gt.images], dtype=np.int64)
    img_rank = np.empty(n_img, dtype=np.int64)
    img_rank[np.lexsort((np.arange(n_img), img_ids))] = np.arange(n_img)
    categories = sorted(gt.categories, key=lambda c: c.id)
    cat_ids = np.array([c.id for c in categories], dtype=np.int64)
    K = len(categories)

    def cat_pos(ids: np.ndarray) -> np.ndarray:
        """Index of each category id in ``cat_ids``; -1 for ids the ground truth does not have."""
        if K == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(cat_ids, ids).clip(0, K - 1)
        return np.where(cat_ids[pos] == ids, pos, -1)

    # ground truth grouped by (image rank, category), file order inside a group
    g_k = cat_pos(gt.category_id)
    g_keep = np.flatnonzero(g_k >= 0)
    g_key = img_rank[gt.image_index[g_keep]] * K + g_k[g_keep]
    by_group = np.argsort(g_key, kind="stable")
    g_order, g_key = g_keep[by_group], g_key[by_group]
    g_boxes, g_area, g_crowd = gt.boxes[g_order], gt.area[g_order], gt.ignore[g_order]
    g_cat = g_k[g_order]
    g_out = (g_area[:, None] < area_lo) | (g_area[:, None] > area_hi)  # (G, A)
    g_ignore = g_crowd[:, None] | g_out
    num_regular = np.stack([np.bincount(g_cat[~g_ignore[:, a]], minlength=K) for a in range(A)], axis=1).reshape(K, A)

    # detections: known categories, sorted by group then score (stable), first max_dets kept
    d_k = cat_pos(dets.category_id)
    d_keep = np.flatnonzero(d_k >= 0)
    d_key = img_rank[dets.image_index[d_keep]] * K + d_k[d_keep]
    order = np.lexsort((np.arange(len(d_keep)), -dets.scores[d_keep], d_key))
    d_idx, d_key = d_keep[order], d_key[order]
    d_first = np.searchsorted(d_key, d_key, "left")
    d_rank = np.arange(len(d_key)) - d_first
    top = d_rank < max_dets[-1]
    d_idx, d_key, d_rank = d_idx[top], d_key[top], d_rank[top]
    d_boxes, d_scores, d_cat = dets.boxes[d_idx], dets.scores[d_idx], d_k[d_idx]
    d_img_rank = img_rank[dets.image_index[d_idx]]
    d_area = (d_boxes[:, 2] - d_boxes[:, 0]) * (d_boxes[:, 3] - d_boxes[:, 1])
    D = len(d_idx)

    # all (detection, ground truth) pairs of the same image and category
    gs, ge = _group_starts(g_key, d_key)
    pair_det, pair_local = _segments(ge - gs)
    pair_gt = gs[pair_det] + pair_local
    ious = coco_pair_iou(d_boxes[pair_det], g_boxes[pair_gt], g_crowd[pair_gt])
    thresholds = np.minimum(iou_thr, 1 - 1e-10)  # pycocotools' cap: IoU 1 still matches 0.95+
    has_gt = ge > gs
    best = np.zeros(D)
    if len(ious):  # pairs are contiguous per detection: one reduceat gives each one's best IoU
        best[has_gt] = np.maximum.reduceat(ious, (np.cumsum(ge - gs) - (ge - gs))[has_gt])
    relevant = has_gt & (best >= thresholds.min()) if T else np.zeros(D, bool)

    # dense group ids over the ground-truth groups; detections without ground truth are never relevant
    group_keys, g_start, g_count = np.unique(g_key, return_index=True, return_counts=True)
    det_group = np.searchsorted(group_keys, d_key)
    matched, matched_ign = _match(ious, pair_det, pair_local, det_group, relevant, g_start, g_count,
                                  g_crowd, g_ignore, thresholds)

    d_out = (d_area[:, None] < area_lo) | (d_area[:, None] > area_hi)  # (D, A)
    tps = matched & ~matched_ign
    fps = ~matched & ~d_out[:, :, None]

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    # rank every category's detections: score, then image id, then per-image rank
    acc = np.lexsort((d_rank, d_img_rank, -d_scores, d_cat))
    cat_sorted = d_cat[acc]
    starts = np.searchsorted(cat_sorted, np.arange(K + 1))
    eps = np.spacing(1)
    for k in range(K):
        seg = acc[starts[k]:starts[k + 1]]
        for m, max_det in enumerate(max_dets):
            sel = seg[d_rank[seg] < max_det]
            nd = len(sel)
            tp_sum = np.cumsum(tps[sel], axis=0).astype(float)  # (nd, A, T)
            fp_sum = np.cumsum(fps[sel], axis=0).astype(float)
            sorted_scores = d_scores[sel]
            for a in range(A):
                npig = num_regular[k, a]
                if npig == 0:
                    continue
                tp, fp = tp_sum[:, a, :], fp_sum[:, a, :]  # (nd, T)
                rc = tp / npig
                pr = tp / (fp + tp + eps)
                recall[:, k, a, m] = rc[-1] if nd else 0
                if nd == 0:
                    precision[:, :, k, a, m] = 0
                    scores[:, :, k, a, m] = 0
                    continue
                pr = np.maximum.accumulate(pr[::-1], axis=0)[::-1]  # precision envelope
                for t in range(T):
                    inds = np.searchsorted(rc[:, t], RECALL_THRESHOLDS, side="left")
                    ok = inds < nd
                    q = np.zeros(R)
                    ss = np.zeros(R)
                    q[ok] = pr[inds[ok], t]
                    ss[ok] = sorted_scores[inds[ok]]
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss

    stats = summarize(precision, recall, iou_thr, area_labels, max_dets)
    num_dets = np.bincount(d_cat, minlength=K) if D else np.zeros(K, np.int64)
    return CocoEvaluation(stats, precision, recall, scores, categories, iou_thr, RECALL_THRESHOLDS.copy(),
                          area_labels, max_dets, num_regular[:, 0].copy() if A else np.zeros(K, np.int64), num_dets)


def summarize(precision, recall, iou_thr, area_labels, max_dets) -> np.ndarray:
    """pycocotools' ``summarize()`` for boxes: means over entries > -1, -1 when none.

    AR@1 and AR@10 use the first two max-dets, every other number the largest. With the
    default ``(1, 10, 100)`` that is pycocotools exactly; with other values pycocotools mixes
    a hard-coded 100 (the first number, -1 when 100 is not listed) with the third value
    (an error when fewer than three are given), where cvpipe stays consistent.
    """

    def one(ap: bool, iou: Optional[float] = None, area: str = "all", max_det: int = 100) -> float:
        if area not in area_labels or max_det not in max_dets:
            return -1.0
        a, m = area_labels.index(area), max_dets.index(max_det)
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == iou_thr)[0]]
        s = s[..., a, m]
        valid = s[s > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    last = max_dets[-1]
    return np.array([
        one(True, max_det=last), one(True, 0.5, max_det=last), one(True, 0.75, max_det=last),
        one(True, area="small", max_det=last), one(True, area="medium", max_det=last),
        one(True, area="large", max_det=last),
        one(False, max_det=max_dets[0]), one(False, max_det=max_dets[1] if len(max_dets) > 1 else last),
        one(False, max_det=last), one(False, area="small", max_det=last),
        one(False, area="medium", max_det=last), one(False, area="large", max_det=last),
    ])
