"""Pascal VOC evaluation: the notes' worked example, a slow reference, and the edge rules."""

from __future__ import annotations

import numpy as np
import pytest

from cvpipe.detection import Category, DetectionDataset, Detections, ImageInfo, evaluate_coco, evaluate_voc, voc_ap


def dataset(objects, n_images: int, names=("a", "b", "c", "d")) -> DetectionDataset:
    """objects: (image, class index, [x1, y1, x2, y2], difficult)."""
    cats = [Category(k + 1, n) for k, n in enumerate(names)]
    images = [ImageInfo(f"{i:04d}.jpg", 500, 400, i + 1) for i in range(n_images)]
    if not objects:
        return DetectionDataset(images, cats)
    img, cls, boxes, diff = zip(*objects)
    return DetectionDataset(images, cats, img, boxes, [c + 1 for c in cls], diff)


def detections(dets) -> Detections:
    """dets: (image, class index, [x1, y1, x2, y2], score)."""
    img, cls, boxes, scores = zip(*dets)
    return Detections(img, boxes, scores, [c + 1 for c in cls])


def test_notes_worked_example_seven_objects():
    # 7 objects; ranked detections TP TP TP TP FP FP TP (notes: R = .14 .28 .42 .57 .57 .57 .71)
    gt_boxes = [[100.0 * k, 0, 100.0 * k + 50, 50] for k in range(7)]
    gt = dataset([(0, 0, b, False) for b in gt_boxes], 1)
    hits = [gt_boxes[0], gt_boxes[1], gt_boxes[2], gt_boxes[3], [0, 300, 40, 340], [60, 300, 90, 340], gt_boxes[4]]
    dets = detections([(0, 0, b, 1.0 - 0.1 * k) for k, b in enumerate(hits)])
    all_point = evaluate_voc(gt, dets, metric="all-point")
    assert all_point.ap["a"] == pytest.approx(33 / 49, abs=1e-15)  # 4/7 * 1 + 1/7 * 5/7
    assert all_point.mean_ap == pytest.approx(33 / 49, abs=1e-15)  # classes b, c, d have no objects: left out
    assert np.isnan(all_point.ap["b"])
    # 11-point: precision 1 up to recall 0.5, 5/7 at 0.6 and 0.7, 0 above
    assert evaluate_voc(gt, dets, metric="11-point").ap["a"] == pytest.approx((6 + 10 / 7) / 11, abs=1e-15)
    recall, precision = all_point.curves["a"]
    np.testing.assert_allclose(recall, np.array([1, 2, 3, 4, 4, 4, 5]) / 7)
    np.testing.assert_allclose(precision, [1, 1, 1, 1, 4 / 5, 4 / 6, 5 / 7])
    # the notes round the recalls to two decimals and print 0.6694; the same rule on their numbers:
    rounded = voc_ap([0.14, 0.28, 0.42, 0.57, 0.57, 0.57, 0.71], [1, 1, 1, 1, 0.8, 0.66, 0.71])
    assert rounded == pytest.approx(0.6694, abs=5e-5)


def slow_voc_eval(gt_objects, dets, class_index: int, threshold: float, eleven_point: bool) -> float:
    """The devkit's procedure written out with loops on VOC's 1-based inclusive integers
    (``+1`` in widths), independent of cvpipe's continuous-box arithmetic."""
    records = {}
    for img, cls, (x1, y1, x2, y2), difficult in gt_objects:
        if cls == class_index:
            r = records.setdefault(img, {"box": [], "difficult": [], "found": []})
            r["box"].append((x1 + 1, y1 + 1, x2, y2))  # back to VOC's xmin, ymin, xmax, ymax
            r["difficult"].append(difficult)
            r["found"].append(False)
    npos = sum(not d for r in records.values() for d in r["difficult"])
    mine = sorted([d for d in dets if d[1] == class_index], key=lambda d: -d[3])  # stable
    tp, fp = [], []
    for img, _, (x1, y1, x2, y2), _ in mine:
        bb = (x1 + 1, y1 + 1, x2, y2)
        best, best_j = -np.inf, -1
        r = records.get(img)
        for j, g in enumerate(r["box"] if r else []):
            iw = max(min(bb[2], g[2]) - max(bb[0], g[0]) + 1.0, 0.0)
            ih = max(min(bb[3], g[3]) - max(bb[1], g[1]) + 1.0, 0.0)
            inter = iw * ih
            union = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (g[2] - g[0] + 1.0) * (g[3] - g[1] + 1.0) - inter
            if inter / union > best:
                best, best_j = inter / union, j
        if best > threshold:
            if r["difficult"][best_j]:
                tp.append(0), fp.append(0)
            elif not r["found"][best_j]:
                r["found"][best_j] = True
                tp.append(1), fp.append(0)
            else:
                tp.append(0), fp.append(1)
        else:
            tp.append(0), fp.append(1)
    if npos == 0:
        return float("nan")
    ctp = cfp = 0
    rec, prec = [], []
    for t, f in zip(tp, fp):
        ctp, cfp = ctp + t, cfp + f
        rec.append(ctp / npos)
        prec.append(ctp / max(ctp + cfp, np.finfo(float).eps))
    if eleven_point:
        return sum(max([p for r_, p in zip(rec, prec) if r_ >= k / 10] or [0.0]) for k in range(11)) / 11
    mrec, mpre = [0.0] + rec + [1.0], [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_slow_reference(seed):
    rng = np.random.default_rng(seed)
    n_images, objects, dets = 25, [], []
    for img in range(n_images):
        for _ in range(int(rng.integers(0, 6))):
            x, y = rng.integers(0, 400), rng.integers(0, 300)
            box = [float(x), float(y), float(x + rng.integers(5, 100)), float(y + rng.integers(5, 100))]
            cls = int(rng.integers(0, 4))
            objects.append((img, cls, box, bool(rng.random() < 0.15)))
            for _ in range(int(rng.integers(0, 3))):  # duplicates and near misses
                jitter = rng.integers(-12, 13, 4)
                b = [box[0] + jitter[0], box[1] + jitter[1], max(box[2] + jitter[2], box[0] + jitter[0] + 1),
                     max(box[3] + jitter[3], box[1] + jitter[1] + 1)]
                dets.append((img, cls if rng.random() < 0.85 else int(rng.integers(0, 4)), b, float(rng.random())))
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.integers(0, 400), rng.integers(0, 300)
            dets.append((img, int(rng.integers(0, 4)), [float(x), float(y), float(x + 30), float(y + 30)],
                         float(rng.random())))
    gt, pred = dataset(objects, n_images), detections(dets)
    for metric, eleven in (("all-point", False), ("11-point", True)):
        result = evaluate_voc(gt, pred, metric=metric)
        for k, name in enumerate("abcd"):
            expected = slow_voc_eval(objects, dets, k, 0.5, eleven)
            assert result.ap[name] == pytest.approx(expected, abs=1e-12, nan_ok=True)


def test_threshold_is_strict_and_difficult_objects_neither_count_nor_punish():
    gt = dataset([(0, 0, [0, 0, 10, 10], False), (0, 0, [100, 100, 150, 150], True)], 1)
    half = detections([(0, 0, [0, 0, 10, 20], 0.9)])  # IoU exactly 0.5
    assert evaluate_voc(gt, half).ap["a"] == 0.0  # VOC: IoU must exceed 0.5
    assert evaluate_coco(gt, half).precision[0, :, 0, 0, 2].max() == pytest.approx(1.0)  # COCO: IoU >= 0.5 matches
    on_difficult = detections([(0, 0, [100, 100, 150, 150], 0.95), (0, 0, [0, 0, 10, 10], 0.9)])
    result = evaluate_voc(gt, on_difficult)
    assert result.ap["a"] == 1.0 and result.num_gt["a"] == 1
    np.testing.assert_array_equal(result.curves["a"][1], [0.0, 1.0])  # the first one is neither TP nor FP


def test_eleven_point_thresholds_are_exactly_k_over_10_unlike_np_arange():
    # 3 of 10 objects found at precision 1: recall is exactly 0.3, which np.arange's
    # 0.30000000000000004 misses (py-faster-rcnn gives 3/11); the thresholds k/10 count it
    recall, precision = np.array([0.1, 0.2, 0.3]), np.ones(3)
    assert voc_ap(recall, precision, "11-point") == pytest.approx(4 / 11)
    arange = sum(precision[recall >= t].max(initial=0.0) for t in np.arange(0, 1.1, 0.1)) / 11
    assert arange == pytest.approx(3 / 11)
