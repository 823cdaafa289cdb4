"""The NMS family against torchvision and against slow, obvious references written here.

The references work on Python floats, one box and one pair at a time, straight from the papers
and the yolov3 post-processor the notes describe. Inputs are float64 so that the fast code and
the references compute the same IoU; integer coordinates make IoU exact, which lets
hypothesis put boxes exactly on the thresholds.
"""

import math

import pytest
import torch
import torchvision.ops as tvo
from hypothesis import given, settings
from hypothesis import strategies as st

import cvpipe.ops.suppression as suppression
from cvpipe.ops import (
    and_nms,
    batched_nms,
    diou_nms,
    matrix_nms,
    nms,
    non_max_suppression,
    soft_nms,
    weighted_nms,
)

# ------------------------------------------------------------------------------------------
# Slow references
# ------------------------------------------------------------------------------------------


def ref_iou(a, b):
    ax2, ay2, bx2, by2 = max(a[0], a[2]), max(a[1], a[3]), max(b[0], b[2]), max(b[1], b[3])
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    union = (ax2 - a[0]) * (ay2 - a[1]) + (bx2 - b[0]) * (by2 - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_diou(a, b, beta=1.0):
    a = [a[0], a[1], max(a[0], a[2]), max(a[1], a[3])]
    b = [b[0], b[1], max(b[0], b[2]), max(b[1], b[3])]
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    return ref_iou(a, b) - (rho2 / (cw * cw + ch * ch + 1e-7)) ** beta


def unpack(boxes, scores, classes):
    b, s = boxes.tolist(), scores.tolist()
    c = classes.tolist() if classes is not None else [0] * len(b)
    return b, s, c


def by_class(scores, classes, score_threshold=None):
    """Indices of each class, best score first, ties by lower index."""
    groups = {}
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if score_threshold is None or scores[i] > score_threshold:
            groups.setdefault(classes[i], []).append(i)
    return groups.values()


def ranked(results, max_det=None):
    """(index, score, extra) triples sorted by score, ties by lower index, cut to max_det."""
    results = sorted(results, key=lambda r: (-r[1], r[0]))
    return results[:max_det] if max_det is not None else results


def ref_greedy(boxes, scores, thr, classes=None, score_threshold=None, max_det=None, overlap=ref_iou):
    b, s, c = unpack(boxes, scores, classes)
    out = []
    for order in by_class(s, c, score_threshold):
        remaining = list(order)
        while remaining:
            top, remaining = remaining[0], remaining[1:]
            out.append((top, s[top], None))
            remaining = [j for j in remaining if not overlap(b[top], b[j]) > thr]
    return ranked(out, max_det)


def ref_weighted(boxes, scores, thr, classes=None):
    b, s, c = unpack(boxes, scores, classes)
    out = []
    for order in by_class(s, c):
        remaining = list(order)
        while remaining:
            top, remaining = remaining[0], remaining[1:]
            cluster = [top] + [j for j in remaining if ref_iou(b[top], b[j]) > thr]
            total = sum(s[j] for j in cluster)
            merged = [sum(s[j] * b[j][k] for j in cluster) / total for k in range(4)]
            out.append((top, s[top], merged))
            remaining = [j for j in remaining if j not in cluster]
    return ranked(out)


def ref_and(boxes, scores, thr, classes=None, confirm=0.5):
    b, s, c = unpack(boxes, scores, classes)
    out = []
    for order in by_class(s, c):
        remaining = list(order)
        while len(remaining) > 1:  # the last lone box has nobody to confirm it
            top, remaining = remaining[0], remaining[1:]
            if max(ref_iou(b[top], b[j]) for j in remaining) > confirm:
                out.append((top, s[top], None))
            remaining = [j for j in remaining if not ref_iou(b[top], b[j]) > thr]
    return ranked(out)


def ref_soft(boxes, scores, method="gaussian", sigma=0.5, thr=0.3, score_threshold=0.001, classes=None):
    b, s, c = unpack(boxes, scores, classes)
    out = []
    for order in by_class(s, c):
        rank = {i: r for r, i in enumerate(order)}
        current = {i: s[i] for i in order}
        live = [i for i in order if score_threshold is None or current[i] > score_threshold]
        while live:
            top = max(live, key=lambda i: (current[i], -rank[i]))
            out.append((top, current[top], None))
            live.remove(top)
            for j in live:
                iou = ref_iou(b[top], b[j])
                if method == "gaussian":
                    current[j] *= math.exp(-(iou * iou) / sigma)
                elif iou > thr:
                    current[j] *= 1 - iou
            live = [j for j in live if score_threshold is None or current[j] > score_threshold]
    return ranked(out)


def ref_matrix(boxes, scores, kernel="gaussian", sigma=2.0, score_threshold=None, classes=None):
    b, s, c = unpack(boxes, scores, classes)

    def f(x):
        return math.exp(-sigma * x * x) if kernel == "gaussian" else 1 - x

    out = []
    for order in by_class(s, c):
        compensate = [max([ref_iou(b[order[k]], b[order[i]]) for k in range(i)], default=0.0) for i in range(len(order))]
        for j in range(len(order)):
            ratios = [
                f(ref_iou(b[order[i]], b[order[j]])) / f(compensate[i]) for i in range(j) if f(compensate[i]) > 0
            ]
            score = s[order[j]] * min([1.0] + ratios)
            if score_threshold is None or score > score_threshold:
                out.append((order[j], score, None))
    return ranked(out)


def indices(results):
    return [r[0] for r in results]


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------

NOTES_BOXES = torch.tensor([[20, 50, 125, 189.05], [34, 55, 110, 201], [112, 131, 155, 195], [78, 180, 157, 200]])
NOTES_SCORES = torch.tensor([0.5, 0.3, 0.2, 0.4])


def clustered(n, seed, classes=3, dtype=torch.float64):
    """Boxes jittered around a few objects, so there is plenty to suppress."""
    g = torch.Generator().manual_seed(seed)
    objects = max(1, n // 6)
    centre = torch.rand(objects, 2, generator=g, dtype=dtype) * 200
    size = 10 + torch.rand(objects, 2, generator=g, dtype=dtype) * 60
    owner = torch.randint(0, objects, (n,), generator=g)
    c = centre[owner] + torch.randn(n, 2, generator=g, dtype=dtype) * 6
    s = size[owner] * (1 + 0.3 * torch.rand(n, 2, generator=g, dtype=dtype))
    boxes = torch.cat([c - s / 2, c + s / 2], 1)
    scores = torch.rand(n, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    return boxes, scores, labels


@pytest.fixture(params=["matrix", "rows"])
def grid_mode(request, monkeypatch):
    """Run every variant both with overlap matrices and with the row-by-row fallback."""
    if request.param == "rows":
        monkeypatch.setattr(suppression, "_GRID_BUDGET", 7)
    return request.param


# ------------------------------------------------------------------------------------------
# Hard NMS
# ------------------------------------------------------------------------------------------


def test_notes_example_keeps_0_3_2():
    assert nms(NOTES_BOXES, NOTES_SCORES, 0.3).tolist() == [0, 3, 2]
    assert tvo.nms(NOTES_BOXES, NOTES_SCORES, 0.3).tolist() == [0, 3, 2]
    assert indices(ref_greedy(NOTES_BOXES.double(), NOTES_SCORES.double(), 0.3)) == [0, 3, 2]
    assert diou_nms(NOTES_BOXES, NOTES_SCORES, 0.3).tolist() == [0, 3, 2]
    assert weighted_nms(NOTES_BOXES, NOTES_SCORES, 0.3)[0].tolist() == [0, 3, 2]


@pytest.mark.parametrize("seed", range(4))
def test_hard_nms_equals_torchvision(seed):
    boxes, scores, labels = clustered(300, seed, dtype=torch.float32)
    assert torch.equal(nms(boxes, scores, 0.5), tvo.nms(boxes, scores, 0.5))
    ours = batched_nms(boxes, scores, labels, 0.5)
    assert torch.equal(ours, nms(boxes, scores, 0.5, classes=labels))
    theirs = tvo.batched_nms(boxes, scores, labels, 0.5)
    assert torch.equal(ours, theirs)
    assert indices(ref_greedy(boxes.double(), scores.double(), 0.5, labels)) == ours.tolist()


def test_hard_nms_options():
    boxes, scores, labels = clustered(200, 9)
    full = ref_greedy(boxes, scores, 0.4, labels, score_threshold=0.3, max_det=7)
    got = nms(boxes, scores, 0.4, classes=labels, score_threshold=0.3, max_det=7)
    assert got.tolist() == indices(full)
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    assert nms(boxes, scores, 0.5, score_threshold=2.0).shape == (0,)
    assert nms(boxes[:1], scores[:1], 0.5).tolist() == [0]
    # Many classes and tied scores on both class-aware paths (one call <= 3000 boxes, per class above).
    for n in (600, 3500):
        boxes, _, labels = clustered(n, 3, classes=50, dtype=torch.float32)
        scores = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(n)).float() / 4
        got = nms(boxes, scores, 0.5, classes=labels)
        assert got.tolist() == indices(ref_greedy(boxes.double(), scores.double(), 0.5, labels))
    int_boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10]])
    assert nms(int_boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]  # upcast, no error


def test_class_aware_hard_nms_with_any_labels_and_negative_coordinates():
    # torchvision's batched_nms offsets boxes by label * (max + 1) in float32: a label of 10**6
    # (or image * num_classes + label over a batch) puts the boxes where float32 spacing is
    # whole pixels, and negative coordinates let a box reach another class's range.
    boxes = torch.tensor([[600.0, 600, 602, 602], [600.5, 600, 602.5, 602]])  # IoU 0.6
    scores = torch.tensor([0.9, 0.8])
    for label in (0, 7, 10**5, 10**7, -3):
        assert nms(boxes, scores, 0.55, classes=torch.tensor([label, label])).tolist() == [0]
        assert nms(boxes, scores, 0.65, classes=torch.tensor([label, label])).tolist() == [0, 1]
    apart = torch.tensor([[0.0, 0, 10, 10], [-11, -11, -1, -1]])  # disjoint, different classes
    assert nms(apart, scores, 0.5, classes=torch.tensor([0, 1])).tolist() == [0, 1]
    assert batched_nms(apart, scores, torch.tensor([5, 2]), 0.5).tolist() == [0, 1]
    # Random scenes with sparse labels and shifted coordinates: same as the slow reference.
    for seed in range(3):
        boxes, scores, labels = clustered(300, seed, classes=20, dtype=torch.float32)
        boxes, labels = boxes - 300, labels * 100003
        got = nms(boxes, scores, 0.5, classes=labels)
        assert got.tolist() == indices(ref_greedy(boxes.double(), scores.double(), 0.5, labels))


# ------------------------------------------------------------------------------------------
# Every variant against its reference on random clustered boxes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("classes", [True, False])
def test_greedy_variants_match_references(seed, classes, grid_mode):
    boxes, scores, labels = clustered(120, seed)
    labels = labels if classes else None
    for thr in (0.3, 0.6):
        assert diou_nms(boxes, scores, thr, classes=labels).tolist() == indices(
            ref_greedy(boxes, scores, thr, labels, overlap=ref_diou)
        )
        assert diou_nms(boxes, scores, thr, beta=0.6, classes=labels).tolist() == indices(
            ref_greedy(boxes, scores, thr, labels, overlap=lambda a, b: ref_diou(a, b, 0.6))
        )
        keep, merged = weighted_nms(boxes, scores, thr, classes=labels)
        expected = ref_weighted(boxes, scores, thr, labels)
        assert keep.tolist() == indices(expected)
        assert torch.allclose(merged, torch.tensor([r[2] for r in expected], dtype=torch.float64))
        assert and_nms(boxes, scores, thr, classes=labels).tolist() == indices(ref_and(boxes, scores, thr, labels))
        assert and_nms(boxes, scores, thr, confirm_threshold=0.7, classes=labels).tolist() == indices(
            ref_and(boxes, scores, thr, labels, confirm=0.7)
        )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_soft_nms_matches_reference(seed, method, grid_mode):
    boxes, scores, labels = clustered(100, seed)
    for labels_or_none in (labels, None):
        for score_threshold in (0.001, 0.2, None):
            keep, decayed = soft_nms(
                boxes, scores, method=method, classes=labels_or_none, score_threshold=score_threshold
            )
            expected = ref_soft(boxes, scores, method, classes=labels_or_none, score_threshold=score_threshold)
            assert keep.tolist() == indices(expected)
            assert torch.allclose(decayed, torch.tensor([r[1] for r in expected], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
def test_matrix_nms_matches_reference(seed, kernel, monkeypatch):
    boxes, scores, labels = clustered(90, seed)
    boxes[5] = boxes[4]  # a perfect duplicate: f(compensate) = 0 for the linear kernel
    for budget in (suppression._GRID_BUDGET, 50):  # one block, then many column blocks
        monkeypatch.setattr(suppression, "_GRID_BUDGET", budget)
        for labels_or_none in (labels, None):
            keep, decayed = matrix_nms(boxes, scores, kernel=kernel, classes=labels_or_none, score_threshold=0.1)
            expected = ref_matrix(boxes, scores, kernel, classes=labels_or_none, score_threshold=0.1)
            assert keep.tolist() == indices(expected)
            assert torch.allclose(decayed, torch.tensor([r[1] for r in expected], dtype=torch.float64), atol=1e-12)


# ------------------------------------------------------------------------------------------
# Thresholds, ties, empty input, one box
# ------------------------------------------------------------------------------------------

# Concentric boxes: IoU = 4 / 16 = 0.25 exactly, and DIoU = IoU (same centre).
CONCENTRIC = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
TWO_SCORES = torch.tensor([0.9, 0.8], dtype=torch.float64)


def test_boxes_exactly_at_the_threshold_survive(grid_mode):
    below = math.nextafter(0.25, 0)
    for fn in (nms, diou_nms, lambda b, s, t: weighted_nms(b, s, t)[0]):
        assert fn(CONCENTRIC, TWO_SCORES, 0.25).tolist() == [0, 1]
        assert fn(CONCENTRIC, TWO_SCORES, below).tolist() == [0]
    keep, merged = weighted_nms(CONCENTRIC, TWO_SCORES, below)
    assert torch.allclose(merged, ((0.9 * CONCENTRIC[0] + 0.8 * CONCENTRIC[1]) / 1.7)[None])
    # "and": confirmation also needs strictly more than its threshold.
    assert and_nms(CONCENTRIC, TWO_SCORES, 0.5, confirm_threshold=0.25).tolist() == []
    assert and_nms(CONCENTRIC, TWO_SCORES, 0.5, confirm_threshold=below).tolist() == [0]
    # Linear soft-NMS decays only above N_t.
    _, decayed = soft_nms(CONCENTRIC, TWO_SCORES, method="linear", iou_threshold=0.25)
    assert decayed.tolist() == [0.9, 0.8]
    _, decayed = soft_nms(CONCENTRIC, TWO_SCORES, method="linear", iou_threshold=below)
    assert decayed.tolist() == [0.9, 0.8 * 0.75]
    # The score threshold is strict too.
    assert nms(CONCENTRIC, TWO_SCORES, 0.5, score_threshold=0.8).tolist() == [0]
    assert diou_nms(CONCENTRIC, TWO_SCORES, 0.5, score_threshold=0.8).tolist() == [0]


def test_ties_prefer_the_lower_index(grid_mode):
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3 + [[50.0, 50, 60, 60]] * 2)
    scores = torch.tensor([0.5, 0.7, 0.7, 0.7, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [1, 3]
    assert tvo.nms(boxes, scores, 0.5).tolist() == [1, 3]
    assert diou_nms(boxes, scores, 0.5).tolist() == [1, 3]
    assert weighted_nms(boxes, scores, 0.5)[0].tolist() == [1, 3]
    assert and_nms(boxes, scores, 0.5).tolist() == [1, 3]
    keep, decayed = soft_nms(boxes, scores)
    assert keep.tolist() == indices(ref_soft(boxes.double(), scores.double()))
    assert keep[:2].tolist() == [1, 3]
    keep, _ = matrix_nms(boxes, scores)
    assert keep[:2].tolist() == [1, 3]


ALL_VARIANTS = {
    "nms": lambda b, s, **k: nms(b, s, 0.5, **k),
    "diou": lambda b, s, **k: diou_nms(b, s, 0.5, **k),
    "weighted": lambda b, s, **k: weighted_nms(b, s, 0.5, **k)[0],
    "and": lambda b, s, **k: and_nms(b, s, 0.5, **k),
    "soft": lambda b, s, **k: soft_nms(b, s, **k)[0],
    "matrix": lambda b, s, **k: matrix_nms(b, s, **k)[0],
}


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_empty_and_single_box(name):
    fn = ALL_VARIANTS[name]
    for classes in (None, torch.zeros(0, dtype=torch.long)):
        out = fn(torch.zeros(0, 4), torch.zeros(0), classes=classes)
        assert out.shape == (0,) and out.dtype == torch.int64
    one = fn(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([0.9]), classes=torch.tensor([3]))
    assert one.tolist() == ([] if name == "and" else [0])  # "and" needs a second box to confirm


def test_empty_outputs_of_tuple_variants():
    keep, merged = weighted_nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert merged.shape == (0, 4)
    for fn in (soft_nms, matrix_nms):
        keep, decayed = fn(torch.zeros(0, 4), torch.zeros(0))
        assert keep.shape == decayed.shape == (0,)


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_max_det_and_class_awareness(name):
    fn = ALL_VARIANTS[name]
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.5, 0, 10, 10], [0.0, 0.5, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    aware = fn(boxes, scores, classes=torch.tensor([0, 1, 1]))
    if name in ("nms", "diou", "weighted"):
        assert aware.tolist() == [0, 1]  # class 0's box cannot suppress class 1's
        assert fn(boxes, scores).tolist() == [0]
    assert fn(boxes, scores, classes=torch.tensor([0, 1, 2]), max_det=2).numel() <= 2


def test_argument_errors():
    boxes, scores = NOTES_BOXES, NOTES_SCORES
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        nms(boxes[:, :3], scores, 0.5)
    with pytest.raises(ValueError, match="scores"):
        diou_nms(boxes, scores[:2], 0.5)
    with pytest.raises(ValueError, match="classes"):
        weighted_nms(boxes, scores, 0.5, classes=torch.zeros(2))
    with pytest.raises(ValueError, match="soft-NMS method"):
        soft_nms(boxes, scores, method="cubic")
    with pytest.raises(ValueError, match="kernel"):
        matrix_nms(boxes, scores, kernel="box")
    for sigma in (0.0, -2.0, float("nan")):  # matrix NMS used to accept these silently
        with pytest.raises(ValueError, match="sigma"):
            matrix_nms(boxes, scores, sigma=sigma)
        with pytest.raises(ValueError, match="sigma"):
            soft_nms(boxes, scores, sigma=sigma)
    with pytest.raises(ValueError, match="iou_threshold"):
        and_nms(boxes, scores, float("nan"))
    with pytest.raises(ValueError, match="max_det"):
        diou_nms(boxes, scores, 0.5, max_det=-1)
    for fn in ALL_VARIANTS.values():  # a float used to escape as a TypeError from slicing
        with pytest.raises(ValueError, match="max_det"):
            fn(boxes, scores, max_det=2.0)


# ------------------------------------------------------------------------------------------
# Hypothesis: small integer scenes full of exact ties and threshold hits
# ------------------------------------------------------------------------------------------


@st.composite
def scenes(draw):
    n = draw(st.integers(0, 9))
    rows = []
    for _ in range(n):
        x, y = draw(st.integers(0, 8)), draw(st.integers(0, 8))
        rows.append([x, y, x + draw(st.integers(0, 6)), y + draw(st.integers(0, 6))])
    boxes = torch.tensor(rows, dtype=torch.float64).reshape(n, 4)
    scores = torch.tensor([draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])) for _ in range(n)], dtype=torch.float64)
    labels = torch.tensor([draw(st.integers(0, 1)) for _ in range(n)], dtype=torch.long)
    thr = draw(st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 2 / 3]))
    return boxes, scores, labels, thr


@settings(max_examples=80, deadline=None)
@given(scenes(), st.booleans())
def test_variants_on_exact_scenes(scene, use_classes):
    boxes, scores, labels, thr = scene
    labels = labels if use_classes else None
    assert nms(boxes, scores, thr, classes=labels).tolist() == indices(ref_greedy(boxes, scores, thr, labels))
    assert diou_nms(boxes, scores, thr, classes=labels).tolist() == indices(
        ref_greedy(boxes, scores, thr, labels, overlap=ref_diou)
    )
    keep, merged = weighted_nms(boxes, scores, thr, classes=labels)
    expected = ref_weighted(boxes, scores, thr, labels)
    assert keep.tolist() == indices(expected)
    assert torch.allclose(merged, torch.tensor([r[2] for r in expected], dtype=torch.float64).reshape(-1, 4))
    assert and_nms(boxes, scores, thr, confirm_threshold=thr, classes=labels).tolist() == indices(
        ref_and(boxes, scores, thr, labels, confirm=thr)
    )
    # Linear soft-NMS multiplies by exact dyadic factors here, so ties stay ties on both sides.
    keep, decayed = soft_nms(boxes, scores, method="linear", iou_threshold=thr, score_threshold=0.1, classes=labels)
    expected = ref_soft(boxes, scores, "linear", thr=thr, score_threshold=0.1, classes=labels)
    assert keep.tolist() == indices(expected)
    assert decayed.tolist() == [r[1] for r in expected]


# ------------------------------------------------------------------------------------------
# YOLO-style post-processing
# ------------------------------------------------------------------------------------------


def ref_yolo(pred, conf, iou, method, classes=None, multi_label=False, agnostic=False, max_det=300):
    """Per image, per row, in plain Python; then the reference NMS of ``method``."""
    out = []
    for image in pred.tolist():
        boxes, scores, labels = [], [], []
        for cx, cy, w, h, obj, *cls in image:
            if not obj > conf:
                continue
            candidates = [(obj * p, k) for k, p in enumerate(cls)]
            if not multi_label:
                best = max(p for p, _ in candidates)
                candidates = [next((p, k) for p, k in candidates if p == best)]
            for p, k in candidates:
                if p > conf and (classes is None or k in classes):
                    boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                    scores.append(p)
                    labels.append(k)
        b = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
        s = torch.tensor(scores, dtype=torch.float64)
        groups = None if agnostic else torch.tensor(labels, dtype=torch.long)
        if method == "hard":
            kept = ref_greedy(b, s, iou, groups)
        elif method == "weighted":
            kept = ref_weighted(b, s, iou, groups)
        elif method == "soft":
            kept = ref_soft(b, s, score_threshold=conf, classes=groups)
        else:
            kept = ref_matrix(b, s, score_threshold=conf, classes=groups)
        rows = [
            (r[2] if r[2] is not None else boxes[r[0]]) + [r[1], float(labels[r[0]])] for r in kept[:max_det]
        ]
        out.append(torch.tensor(rows, dtype=torch.float64).reshape(-1, 6))
    return out


def raw_predictions(batch=3, n=60, num_classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(batch, n, 5 + num_classes, generator=g, dtype=torch.float64)
    pred[..., :2] = pred[..., :2] * 40  # centres
    pred[..., 2:4] = 4 + pred[..., 2:4] * 20  # sizes
    pred[1, :, 4] = 0.01  # an image where nothing clears the threshold
    return pred


@pytest.mark.parametrize("method", ["hard", "weighted", "soft", "matrix"])
@pytest.mark.parametrize("options", [{}, {"multi_label": True}, {"agnostic": True}, {"classes": [1, 3], "max_det": 5}])
def test_non_max_suppression_matches_reference(method, options):
    pred = raw_predictions()
    got = non_max_suppression(pred, 0.3, 0.45, method=method, **options)
    expected = ref_yolo(pred, 0.3, 0.45, method, **options)
    assert len(got) == 3
    assert got[1].shape == (0, 6)
    for g_, e in zip(got, expected):
        assert g_.shape == e.shape
        assert torch.allclose(g_, e, atol=1e-9)


def test_non_max_suppression_details():
    pred = raw_predictions(seed=1).float()
    out = non_max_suppression(pred, 0.25, 0.5, method="and", max_det=3)
    assert all(o.dtype == torch.float32 and o.shape[1] == 6 and o.shape[0] <= 3 for o in out)
    for method in ("diou", "merge"):
        assert len(non_max_suppression(pred, 0.25, 0.5, method=method)) == 3
    # The candidate cap keeps the best predictions only.
    capped = non_max_suppression(pred, 0.25, 0.99, max_candidates=4, max_det=100)
    assert all(o.shape[0] <= 4 for o in capped)
    bad = pred.clone()
    bad[0, :, 0] = float("nan")  # non-finite rows are dropped, not propagated
    assert non_max_suppression(bad, 0.25, 0.5)[0].shape == (0, 6)
    with pytest.raises(ValueError, match="method"):
        non_max_suppression(pred, method="fast")
    with pytest.raises(ValueError, match="5 \\+ C"):
        non_max_suppression(pred[..., :5])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    boxes, scores, labels = clustered(400, 0, dtype=torch.float32)
    for name, fn in ALL_VARIANTS.items():
        cpu = fn(boxes, scores, classes=labels)
        gpu = fn(boxes.cuda(), scores.cuda(), classes=labels.cuda())
        assert gpu.device.type == "cuda"
        assert torch.equal(cpu, gpu.cpu()), name
    pred = raw_predictions().float()
    for a, b in zip(non_max_suppression(pred), non_max_suppression(pred.cuda())):
        assert torch.allclose(a, b.cpu(), atol=1e-5)


@pytest.mark.parametrize("name", ALL_VARIANTS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_and_boxes_are_refused(name, bad):
    # NaN never compares greater than anything, so left in, it was kept by some variants and
    # dropped by others, and a NaN box poisoned whole rows of the matrix passes.
    fn = ALL_VARIANTS[name]
    scores = NOTES_SCORES.clone()
    scores[1] = bad
    with pytest.raises(ValueError, match="scores contain NaN or infinity"):
        fn(NOTES_BOXES, scores)
    boxes = NOTES_BOXES.clone()
    boxes[2, 2] = bad
    with pytest.raises(ValueError, match="boxes contain NaN or infinity"):
        fn(boxes, NOTES_SCORES, classes=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="score_threshold"):
        fn(NOTES_BOXES, NOTES_SCORES, score_threshold=float("nan"))


def test_non_max_suppression_size_limits_and_argument_errors():
    # Four far-apart boxes of one class; sides 2, 3, 4095 and 4096: the notes' yolov3 code
    # keeps sizes strictly between 2 and 4096.
    sides = [2.0, 3.0, 4095.0, 4096.0]
    pred = torch.tensor([[[10000.0 * i, 0.0, w, w, 0.9, 1.0] for i, w in enumerate(sides)]])
    assert non_max_suppression(pred, 0.5, 0.5)[0].shape == (4, 6)
    kept = non_max_suppression(pred, 0.5, 0.5, min_wh=2, max_wh=4096)[0]
    assert sorted((kept[:, 2] - kept[:, 0]).tolist()) == [3.0, 4095.0]
    assert non_max_suppression(pred, 0.5, 0.5, min_wh=3)[0].shape == (2, 6)
    # Bad limits used to return empty results silently.
    for kwargs, match in [
        ({"conf_thres": float("nan")}, "conf_thres"),
        ({"iou_thres": float("nan"), "method": "matrix"}, "iou_thres"),
        ({"max_det": -1}, "max_det"),
        ({"max_candidates": -5}, "max_candidates"),
    ]:
        with pytest.raises(ValueError, match=match):
            non_max_suppression(pred, **kwargs)
