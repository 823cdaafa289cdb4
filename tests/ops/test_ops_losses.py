"""IoU-family, L1 and smooth-L1 box losses against torchvision.ops and torch.nn.functional."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tvo

from cvpipe.ops import (
    box_l1_loss,
    box_smooth_l1_loss,
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    iou_loss,
)

PARITY = [
    (generalized_box_iou_loss, tvo.generalized_box_iou_loss),
    (distance_box_iou_loss, tvo.distance_box_iou_loss),
    (complete_box_iou_loss, tvo.complete_box_iou_loss),
]


def pairs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 60 + 1
    pred = torch.cat([xy, xy + wh], 1)
    # Targets: half jittered copies of the predictions (overlapping), half unrelated boxes.
    target = pred + torch.randn(n, 4, generator=g) * 8
    target = torch.cat([target[:, :2], torch.maximum(target[:, 2:], target[:, :2] + 1)], 1)
    target[n // 2 :] += 200  # far away: no overlap
    return pred, target


@pytest.mark.parametrize("ours, theirs", PARITY, ids=lambda f: getattr(f, "__name__", ""))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_parity_values_and_gradients(ours, theirs, reduction):
    pred, target = pairs()
    p1 = pred.clone().requires_grad_()
    p2 = pred.clone().requires_grad_()
    a, b = ours(p1, target, reduction=reduction), theirs(p2, target, reduction=reduction)
    scale = 1.0 if reduction != "sum" else pred.shape[0]
    assert (a - b).abs().max() <= 1e-6 * scale
    a.sum().backward()
    b.sum().backward()
    # The same gradient, including CIoU's alpha being a constant of the graph.
    assert (p1.grad - p2.grad).abs().max() <= 1e-6


def test_iou_loss_modes():
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 2.0], [10.0, 10.0, 12.0, 12.0]])
    assert iou_loss(a, b).tolist() == [0.0, 0.5, 1.0]
    log = iou_loss(a, b, mode="log", eps=1e-7)
    assert log[:2].tolist() == pytest.approx([0.0, math.log(2)])
    assert log[2].item() == pytest.approx(-math.log(1e-7))  # finite for disjoint boxes
    assert iou_loss(a, b, reduction="mean").item() == pytest.approx(0.5)
    assert iou_loss(a, b, reduction="sum").item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="mode"):
        iou_loss(a, b, mode="square")
    with pytest.raises(ValueError, match="reduction"):
        iou_loss(a, b, reduction="avg")


@pytest.mark.parametrize(
    "loss",
    [
        iou_loss,
        lambda a, b: iou_loss(a, b, mode="log"),
        generalized_box_iou_loss,
        distance_box_iou_loss,
        complete_box_iou_loss,
        box_l1_loss,
        box_smooth_l1_loss,
    ],
)
def test_gradients_finite_on_degenerate_and_disjoint_boxes(loss):
    pred = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # a point
            [1.0, 1.0, 1.0, 5.0],  # zero width
            [5.0, 5.0, 2.0, 2.0],  # inverted
            [0.0, 0.0, 1.0, 1.0],  # disjoint from its target
            [0.0, 0.0, 1.0, 1.0],  # identical to its target
            [3.0, 3.0, 3.0, 3.0],  # point on point
        ],
        requires_grad=True,
    )
    target = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0, 5.0],
            [0.0, 0.0, 3.0, 3.0],
            [10.0, 10.0, 11.0, 11.0],
            [0.0, 0.0, 1.0, 1.0],
            [3.0, 3.0, 3.0, 3.0],
        ]
    )
    value = loss(pred, target)
    assert torch.isfinite(value).all()
    value.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_disjoint_boxes_get_a_pulling_gradient():
    # IoU is flat when boxes do not overlap; GIoU/DIoU/CIoU move the box towards the target.
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[5.0, 0.0, 6.0, 1.0]])
    for loss in (generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss):
        pred.grad = None
        loss(pred, target).sum().backward()
        assert pred.grad[0, 2] < 0  # increasing x2 lowers the loss
    pred.grad = None
    iou_loss(pred, target).sum().backward()
    assert (pred.grad == 0).all()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_l1_and_smooth_l1_sum_over_coordinates(reduction):
    pred, target = pairs(50, 1)
    expected_l1 = F.l1_loss(pred, target, reduction="none").sum(1)
    expected_sl1 = F.smooth_l1_loss(pred, target, reduction="none", beta=2.0).sum(1)
    reduce = {"none": lambda x: x, "mean": torch.mean, "sum": torch.sum}[reduction]
    assert torch.allclose(box_l1_loss(pred, target, reduction=reduction), reduce(expected_l1))
    assert torch.allclose(box_smooth_l1_loss(pred, target, beta=2.0, reduction=reduction), reduce(expected_sl1))
    with pytest.raises(ValueError, match="same shape"):
        box_l1_loss(pred, target[:3])


@pytest.mark.parametrize(
    "loss", [iou_loss, generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss, box_l1_loss]
)
def test_empty_input(loss):
    pred = torch.zeros(0, 4, requires_grad=True)
    target = torch.zeros(0, 4)
    assert loss(pred, target).shape == (0,)
    mean = loss(pred, target, reduction="mean")
    assert mean.item() == 0.0  # not NaN
    mean.backward()  # still attached to the graph
    assert loss(pred, target, reduction="sum").item() == 0.0


def test_integer_inputs_are_upcast():
    a = torch.tensor([[0, 0, 4, 4]])
    b = torch.tensor([[0, 0, 4, 2]])
    assert iou_loss(a, b).dtype == torch.float32
    assert box_l1_loss(a, b).tolist() == [2.0]


@pytest.mark.parametrize("loss", [box_l1_loss, box_smooth_l1_loss, complete_box_iou_loss])
def test_non_tensor_boxes_raise_value_error(loss):
    # The L1 losses used to fail with "AttributeError: 'list' object has no attribute 'shape'".
    box = torch.tensor([[0.0, 0, 4, 4]])
    for a, b in [([[0.0, 0, 4, 4]], box), (box, box.numpy())]:
        with pytest.raises(ValueError, match="boxes[12] must be a torch.Tensor"):
            loss(a, b)
