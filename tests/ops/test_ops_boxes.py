"""Box formats and the IoU family against torchvision.ops, plus edge cases and errors."""

import math

import pytest
import torch
import torchvision.ops as tvo

from cvpipe.ops import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    complete_box_iou,
    denormalize_boxes,
    distance_box_iou,
    generalized_box_iou,
    normalize_boxes,
    remove_small_boxes,
)

PAIRWISE = [
    (box_iou, tvo.box_iou),
    (generalized_box_iou, tvo.generalized_box_iou),
    (distance_box_iou, tvo.distance_box_iou),
    (complete_box_iou, tvo.complete_box_iou),
]


def random_boxes(n, seed, scale=100.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale / 2 + 0.5
    return torch.cat([xy, xy + wh], 1).to(dtype)


def edge_boxes():
    """Identical, nested, touching, disjoint, far apart, thin and zero-width boxes."""
    return torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],  # identical
            [2.0, 2.0, 8.0, 8.0],  # nested
            [10.0, 0.0, 20.0, 10.0],  # touching the first on an edge
            [10.0, 10.0, 12.0, 12.0],  # touching at a corner
            [50.0, 50.0, 60.0, 70.0],  # disjoint
            [1000.0, 1000.0, 1001.0, 1400.0],  # far and thin
            [5.0, 0.0, 5.0, 10.0],  # zero width
        ]
    )


def with_edges(n, seed):
    return torch.cat([edge_boxes(), random_boxes(n, seed)])


@pytest.mark.parametrize("ours, theirs", PAIRWISE, ids=lambda f: getattr(f, "__name__", ""))
def test_pairwise_parity_with_torchvision(ours, theirs):
    a, b = with_edges(40, 0), with_edges(30, 1)
    expected = theirs(a, b)
    got = ours(a, b)
    assert got.shape == (a.shape[0], b.shape[0])
    # torchvision gives NaN for a zero-area box against itself (0 / 0); cvpipe defines it as 0.
    finite = torch.isfinite(expected)
    assert (~finite).sum() <= 2
    assert (got[finite] - expected[finite]).abs().max() <= 1e-6
    assert torch.isfinite(got).all()


@pytest.mark.parametrize("ours, theirs", PAIRWISE, ids=lambda f: getattr(f, "__name__", ""))
def test_aligned_matches_pairwise_diagonal(ours, theirs):
    a, b = random_boxes(50, 2), random_boxes(50, 3)
    assert (ours(a, b, aligned=True) - theirs(a, b).diagonal()).abs().max() <= 1e-6
    # Aligned works on any leading shape.
    assert ours(a.view(5, 10, 4), b.view(5, 10, 4), aligned=True).shape == (5, 10)


def test_known_values():
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor([[2.0, 0.0, 6.0, 4.0], [8.0, 0.0, 12.0, 4.0]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([8 / 24, 0.0])
    # Enclosing box of a and b[1] is 12 x 4 = 48, union 32: GIoU = 0 - 16 / 48.
    assert generalized_box_iou(a, b)[0, 1].item() == pytest.approx(-1 / 3)
    # Centres 8 apart, enclosing diagonal^2 = 144 + 16: DIoU = -64 / 160.
    assert distance_box_iou(a, b)[0, 1].item() == pytest.approx(-0.4, abs=1e-6)
    # Same aspect ratio: CIoU equals DIoU.
    assert complete_box_iou(a, b)[0, 1].item() == pytest.approx(-0.4, abs=1e-6)


def test_ciou_aspect_term_matches_formula():
    a = torch.tensor([[0.0, 0.0, 2.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 0.0, 4.0, 2.0]], dtype=torch.float64)
    iou = 4 / 12
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(0.5)) ** 2
    alpha = v / (1 - iou + v + 1e-7)
    rho2_over_c2 = 2 / (32 + 1e-7)  # centres (1, 2) and (2, 1); enclosing box 4 x 4
    assert complete_box_iou(a, b).item() == pytest.approx(iou - rho2_over_c2 - alpha * v, abs=1e-12)


def test_degenerate_boxes_are_empty():
    inverted = torch.tensor([[5.0, 5.0, 2.0, 2.0]])
    normal = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert box_area(inverted).item() == 0
    assert box_iou(inverted, normal).item() == 0
    assert box_iou(inverted, inverted).item() == 0
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    for fn in (box_iou, generalized_box_iou, distance_box_iou, complete_box_iou):
        assert fn(point, point).item() == 0  # no 0 / 0


@pytest.mark.parametrize("fn", [box_iou, generalized_box_iou, distance_box_iou, complete_box_iou])
def test_empty_inputs(fn):
    b = random_boxes(3, 0)
    assert fn(torch.zeros(0, 4), b).shape == (0, 3)
    assert fn(b, torch.zeros(0, 4)).shape == (3, 0)
    assert fn(torch.zeros(0, 4), torch.zeros(0, 4), aligned=True).shape == (0,)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.float16, torch.bfloat16])
def test_integer_and_half_inputs_are_upcast(dtype):
    boxes = torch.tensor([[0, 0, 300, 300], [100, 100, 400, 400]]).to(dtype)
    assert box_area(boxes).dtype == torch.float32
    assert box_area(boxes).tolist() == [90000.0, 90000.0]  # 90000 overflows float16
    iou = box_iou(boxes, boxes)
    assert iou.dtype == torch.float32
    assert iou[0, 1].item() == pytest.approx(40000 / 140000)


def test_float64_is_kept():
    boxes = random_boxes(4, 0, dtype=torch.float64)
    assert box_iou(boxes, boxes).dtype == torch.float64
    assert box_area(boxes).dtype == torch.float64


@pytest.mark.parametrize("in_fmt", BOX_FORMATS)
@pytest.mark.parametrize("out_fmt", BOX_FORMATS)
def test_box_convert_parity(in_fmt, out_fmt):
    boxes = with_edges(30, 4)
    assert (box_convert(boxes, in_fmt, out_fmt) - tvo.box_convert(boxes, in_fmt, out_fmt)).abs().max() <= 1e-6
    assert box_convert(torch.zeros(0, 4), in_fmt, out_fmt).shape == (0, 4)


def test_box_convert_batched_and_integer():
    boxes = torch.tensor([[[10, 20, 30, 60]]])
    assert box_convert(boxes, "xyxy", "xywh").tolist() == [[[10, 20, 20, 40]]]
    assert box_convert(boxes, "xyxy", "xywh").dtype == torch.int64
    assert box_convert(boxes, "xyxy", "cxcywh").tolist() == [[[20.0, 40.0, 20.0, 40.0]]]


def test_box_convert_errors():
    with pytest.raises(ValueError, match="unknown box format 'yxyx'"):
        box_convert(torch.zeros(1, 4), "yxyx", "xyxy")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        box_convert(torch.zeros(2, 5), "xyxy", "xywh")
    with pytest.raises(ValueError, match="torch.Tensor"):
        box_area([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="pairwise"):
        box_iou(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        box_iou(torch.zeros(2, 4), torch.zeros(3, 4), aligned=True)


def test_area_clip_remove_small_match_torchvision():
    boxes = random_boxes(100, 5, scale=200) - 30
    assert torch.equal(box_area(boxes), tvo.box_area(boxes))
    assert torch.equal(clip_boxes(boxes, (120, 90)), tvo.clip_boxes_to_image(boxes, (120, 90)))
    assert torch.equal(remove_small_boxes(boxes, 20.0), tvo.remove_small_boxes(boxes, 20.0))
    assert remove_small_boxes(torch.zeros(0, 4), 1.0).shape == (0,)
    assert remove_small_boxes(torch.tensor([[5.0, 5.0, 2.0, 9.0]]), 0.5).numel() == 0  # degenerate


def test_clip_keeps_dtype_and_batch_shape():
    boxes = torch.tensor([[[-5, 3, 700, 900]]])
    clipped = clip_boxes(boxes, (480, 640))
    assert clipped.tolist() == [[[0, 3, 640, 480]]]
    assert clipped.dtype == torch.int64
    with pytest.raises(ValueError, match="image_size"):
        clip_boxes(boxes, (480,))
    with pytest.raises(ValueError, match="positive"):
        clip_boxes(boxes, (0, 640))


def test_normalize_denormalize():
    boxes = torch.tensor([[64.0, 48.0, 320.0, 240.0]])
    norm = normalize_boxes(boxes, (480, 640))
    assert norm[0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert torch.allclose(denormalize_boxes(norm, (480, 640)), boxes)
    # Integer boxes become floating; every format scales the same way.
    xywh = box_convert(boxes, "xyxy", "xywh")
    assert torch.allclose(box_convert(normalize_boxes(xywh, (480, 640)), "xywh", "xyxy"), norm)
    assert normalize_boxes(torch.tensor([[0, 0, 32, 24]]), (48, 64)).dtype == torch.get_default_dtype()
    assert normalize_boxes(torch.zeros(0, 4), (2, 2)).shape == (0, 4)


@pytest.mark.parametrize("ours, theirs", PAIRWISE, ids=lambda f: getattr(f, "__name__", ""))
def test_nan_boxes_propagate_nan_like_torchvision(ours, theirs):
    # A diverged regression head must show up as NaN, not as a plausible IoU of 0.
    boxes = torch.tensor([[0.0, 0.0, float("nan"), 10.0], [0.0, 0.0, 10.0, 10.0]])
    got, expected = ours(boxes, boxes), theirs(boxes, boxes)
    assert torch.equal(got.isnan(), expected.isnan())
    assert got[1, 1].item() == pytest.approx(1.0)


def test_remove_small_boxes_drops_degenerate_unsigned_boxes():
    # x2 - x1 wraps around in uint8 (5 - 10 = 251): a degenerate box must not look wide.
    boxes = torch.tensor([[10, 10, 5, 5], [0, 0, 4, 4], [3, 3, 9, 1]], dtype=torch.uint8)
    assert remove_small_boxes(boxes, 1).tolist() == [1]


@pytest.mark.parametrize("image_size", [480, "ab", (480, "w"), None, (1, 2, 3)])
def test_bad_image_size_is_a_value_error(image_size):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    for fn in (clip_boxes, normalize_boxes, denormalize_boxes):
        with pytest.raises(ValueError, match="image_size"):
            fn(boxes, image_size)


def test_normalize_half_boxes_on_a_huge_image():
    # 100000 is inf in float16; the scale must not be built in the boxes' dtype.
    boxes = torch.tensor([[0.0, 0.0, 50000.0, 10.0]], dtype=torch.float16)
    norm = normalize_boxes(boxes, (100, 100000))
    assert norm.dtype == torch.float16
    assert norm[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.1], rel=1e-3)
