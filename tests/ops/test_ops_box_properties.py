"""Property tests (hypothesis) for box formats and the IoU family."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvpipe.ops import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    denormalize_boxes,
    distance_box_iou,
    generalized_box_iou,
    normalize_boxes,
)

# Integer coordinates up to 2**20 keep every conversion exact in float64, so round trips must
# be bit-exact; the real-valued strategy checks the bounds on arbitrary floats.
coordinate = st.integers(min_value=-(2**20), max_value=2**20)
real = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=64)


@st.composite
def box_sets(draw, values=real, min_size=1, max_size=8):
    n = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(n):
        x1, x2 = sorted((draw(values), draw(values)))
        y1, y2 = sorted((draw(values), draw(values)))
        rows.append([x1, y1, x2, y2])
    return torch.tensor(rows, dtype=torch.float64)


FAST = settings(max_examples=40, deadline=None)


@FAST
@given(box_sets(), box_sets())
def test_iou_family_symmetric_and_bounded(a, b):
    iou = box_iou(a, b)
    giou = generalized_box_iou(a, b)
    diou = distance_box_iou(a, b)
    ciou = complete_box_iou(a, b)
    assert torch.equal(iou, box_iou(b, a).T)
    assert torch.allclose(giou, generalized_box_iou(b, a).T, atol=1e-12)
    assert torch.allclose(diou, distance_box_iou(b, a).T, atol=1e-12)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert ((giou >= -1 - 1e-12) & (giou <= iou + 1e-12)).all()  # GIoU is a lower bound of IoU
    assert ((diou > -1) & (diou <= iou + 1e-12)).all()
    assert ((ciou >= -1.5) & (ciou <= diou + 1e-12)).all()
    for value in (iou, giou, diou, ciou):
        assert torch.isfinite(value).all()


@FAST
@given(box_sets())
def test_self_iou_is_one_for_boxes_with_area(a):
    has_area = box_area(a) > 0
    diag = box_iou(a, a).diagonal()
    assert torch.allclose(diag[has_area], torch.ones_like(diag[has_area]))
    assert (diag[~has_area] == 0).all()


@FAST
@given(box_sets(values=coordinate), st.sampled_from(BOX_FORMATS), st.sampled_from(BOX_FORMATS))
def test_format_round_trip_is_exact(boxes, fmt_a, fmt_b):
    there = box_convert(box_convert(boxes, "xyxy", fmt_a), fmt_a, fmt_b)
    back = box_convert(box_convert(there, fmt_b, fmt_a), fmt_a, "xyxy")
    assert torch.equal(back, boxes)


@FAST
@given(box_sets(values=st.integers(0, 4096)), st.sampled_from([(480, 640), (512, 512), (1024, 768)]))
def test_normalise_round_trip_is_exact(boxes, size):
    # Dividing and multiplying by a power of two is exact; others within one ulp.
    back = denormalize_boxes(normalize_boxes(boxes, size), size)
    assert torch.allclose(back, boxes, rtol=1e-15, atol=0)
    if size == (512, 512):
        assert torch.equal(back, boxes)


@FAST
@given(box_sets(values=st.integers(-1000, 1000)), st.floats(0.1, 10), st.floats(-100, 100), st.floats(-100, 100))
def test_iou_is_invariant_to_translation_and_scale(boxes, scale, dx, dy):
    moved = boxes * scale + torch.tensor([dx, dy, dx, dy], dtype=torch.float64)
    assert torch.allclose(box_iou(moved, moved), box_iou(boxes, boxes), atol=1e-6)
