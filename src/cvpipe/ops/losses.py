"""Box regression losses: the IoU family, L1 and smooth L1.

Every loss compares ``boxes1[i]`` with ``boxes2[i]`` (aligned, not pairwise): both are
``(..., 4)`` ``xyxy`` boxes of the same shape, the result has shape ``(...)`` for
``reduction="none"`` or is a scalar for ``"mean"`` and ``"sum"``. The mean of an empty input is
0 (not NaN) and stays attached to the graph, so an image without targets does not poison a
batch. Integer and half inputs are upcast to ``float32`` (see :mod:`cvpipe.ops.boxes`).
Gradients are finite for degenerate, zero-area, coincident and non-overlapping boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cvpipe.ops.boxes import box_iou, complete_box_iou, distance_box_iou, generalized_box_iou

__all__ = [
    "iou_loss",
    "generalized_box_iou_loss",
    "distance_box_iou_loss",
    "complete_box_iou_loss",
    "box_l1_loss",
    "box_smooth_l1_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        # torch's mean of nothing is NaN; a batch without boxes should add nothing instead.
        return loss.mean() if loss.numel() > 0 else loss.sum() * 0.0
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(_REDUCTIONS)}")


def iou_loss(
    boxes1: Tensor, boxes2: Tensor, mode: str = "linear", reduction: str = "none", eps: float = 1e-7
) -> Tensor:
    """IoU loss: ``1 - IoU`` (``mode="linear"``) or ``-ln IoU`` (``mode="log"``, UnitBox).

    For ``"log"`` the IoU is clamped to at least ``eps`` so disjoint boxes give a large finite
    loss, ``-ln eps``, instead of infinity. Values lie in ``[0, 1]`` (linear) or
    ``[0, -ln eps]`` (log). Shapes, dtypes, reductions and empty inputs as in the module text.
    """
    iou = box_iou(boxes1, boxes2, aligned=True)
    if mode == "linear":
        loss = 1 - iou
    elif mode == "log":
        loss = -torch.log(iou.clamp(min=eps))
    else:
        raise ValueError(f"unknown IoU loss mode {mode!r}; expected 'linear' or 'log'")
    return _reduce(loss, reduction)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none") -> Tensor:
    """GIoU loss ``1 - GIoU`` (Rezatofighi et al. 2019), in ``[0, 2]``; gives a gradient when
    the boxes do not overlap. Shapes, dtypes, reductions and empty inputs as in the module text."""
    return _reduce(1 - generalized_box_iou(boxes1, boxes2, aligned=True), reduction)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """DIoU loss ``1 - IoU + rho^2 / c^2`` (Zheng et al. 2020), in ``[0, 2)``; pulls the centres
    together directly. ``eps`` guards ``c^2``. Shapes, dtypes, reductions and empty inputs as in
    the module text."""
    return _reduce(1 - distance_box_iou(boxes1, boxes2, aligned=True, eps=eps), reduction)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """CIoU loss ``1 - IoU + rho^2 / c^2 + alpha * v`` (Zheng et al. 2020); ``alpha`` carries no
    gradient, as in the paper's code. Shapes, dtypes, reductions and empty inputs as in the module
    text."""
    return _reduce(1 - complete_box_iou(boxes1, boxes2, aligned=True, eps=eps), reduction)


def _check_pair(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(boxes, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes1.shape != boxes2.shape or boxes1.ndim == 0 or boxes1.shape[-1] != 4:
        raise ValueError(f"boxes must both have the same shape (..., 4), got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    return boxes1.to(dtype), boxes2.to(dtype)


def box_l1_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none") -> Tensor:
    """L1 distance between boxes, summed over the four coordinates (one value per box).

    Works for any box format, as long as both tensors use the same one. Shapes, dtypes,
    reductions and empty inputs as in the module text (``"mean"`` averages over boxes).
    """
    boxes1, boxes2 = _check_pair(boxes1, boxes2)
    return _reduce(F.l1_loss(boxes1, boxes2, reduction="none").sum(-1), reduction)


def box_smooth_l1_loss(boxes1: Tensor, boxes2: Tensor, beta: float = 1.0, reduction: str = "none") -> Tensor:
    """Smooth L1 (Huber-like, Fast R-CNN) between boxes, summed over the four coordinates.

    Per coordinate: ``0.5 * d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 * beta``; ``beta = 0``
    is plain L1. Any box format, same for both. Shapes, dtypes, reductions and empty inputs as
    in the module text (``"mean"`` averages over boxes).
    """
    boxes1, boxes2 = _check_pair(boxes1, boxes2)
    return _reduce(F.smooth_l1_loss(boxes1, boxes2, reduction="none", beta=beta).sum(-1), reduction)
