"""Box formats and the IoU family.

Conventions (shared by all of :mod:`cvpipe.ops`):

* A box tensor has shape ``(..., 4)``; the last axis holds the four coordinates.
* Formats: ``"xyxy"`` (x1, y1, x2, y2 corners), ``"xywh"`` (top-left corner, width, height)
  and ``"cxcywh"`` (centre, width, height). Coordinates are continuous pixels with the origin
  at the top-left corner of the top-left pixel (no ``+1``), or the same values divided by the
  image width/height when *normalised* (see :func:`normalize_boxes`).
* Every function that measures boxes (area, IoU and its relatives) takes ``xyxy``.
* A *degenerate* box (``x2 < x1`` or ``y2 < y1``) is collapsed to zero width (height) at its
  ``x1`` (``y1``) edge: its area is 0 and it overlaps nothing. The IoU of two zero-area boxes
  is 0, not NaN. A NaN coordinate gives NaN wherever that box is involved (as torchvision).
* Integer, ``float16`` and ``bfloat16`` inputs are upcast to ``float32`` before area and IoU,
  so products of pixel coordinates neither overflow nor lose precision; ``float32`` and
  ``float64`` are kept. Conversions keep the input dtype except where halving forces a float.
* Wrong shapes and unknown formats raise :class:`ValueError`, as torchvision does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "BOX_FORMATS",
    "box_convert",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
    "clip_boxes",
    "normalize_boxes",
    "denormalize_boxes",
    "remove_small_boxes",
]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    if not isinstance(boxes, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {tuple(boxes.shape)}")


def _check_format(fmt: str) -> None:
    if fmt not in BOX_FORMATS:
        raise ValueError(f"unknown box format {fmt!r}; expected one of {', '.join(BOX_FORMATS)}")


def _upcast(boxes: Tensor) -> Tensor:
    """Float32 for integer and half-precision boxes, otherwise unchanged."""
    if boxes.dtype in (torch.float32, torch.float64):
        return boxes
    return boxes.float()


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``.

    Args:
        boxes: ``(..., 4)`` boxes in ``in_fmt``, absolute or normalised (the conversion is the
            same for both).
        in_fmt, out_fmt: one of :data:`BOX_FORMATS`.

    Returns:
        ``(..., 4)`` boxes in ``out_fmt``; a new tensor even when the formats agree. Floating
        dtypes are kept; integer boxes stay integer between ``xyxy`` and ``xywh`` and become
        floating when a centre is involved (halving). An empty input returns an empty tensor
        of the same shape.

    Raises:
        ValueError: unknown format or a last dimension other than 4.
    """
    _check_boxes(boxes)
    _check_format(in_fmt)
    _check_format(out_fmt)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    # Go through xyxy: two small formulas per format instead of six pairwise ones.
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def _collapse(boxes: Tensor) -> Tensor:
    """Collapse degenerate ``xyxy`` boxes to zero width/height at their ``x1``/``y1`` edge."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, torch.maximum(x1, x2), torch.maximum(y1, y2)), dim=-1)


def _area(boxes: Tensor) -> Tensor:
    """Area of collapsed ``xyxy`` boxes."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes.

    Args:
        boxes: ``(..., 4)`` ``xyxy`` boxes.

    Returns:
        ``(...)`` areas, ``float32`` for integer/half inputs, else the input dtype; degenerate
        boxes have area 0. An empty input returns an empty tensor.
    """
    _check_boxes(boxes)
    return _area(_collapse(_upcast(boxes)))


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with 0 where ``den == 0``; gradients stay finite (no 0/0 in the graph).

    Only an exact zero is replaced: a NaN denominator (a NaN coordinate) still gives NaN, as in
    torchvision, so a diverged prediction is not hidden behind a plausible 0.
    """
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


def _pair(boxes1: Tensor, boxes2: Tensor, aligned: bool) -> tuple[Tensor, Tensor]:
    """Upcast, collapse and broadcast: ``(N, 1, 4), (1, M, 4)``, or aligned ``(..., 4)`` twice."""
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    boxes1, boxes2 = _collapse(boxes1.to(dtype)), _collapse(boxes2.to(dtype))
    if aligned:
        if boxes1.shape != boxes2.shape:
            raise ValueError(
                f"aligned IoU needs boxes of the same shape, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
            )
        return boxes1, boxes2
    if boxes1.ndim != 2 or boxes2.ndim != 2:
        raise ValueError(
            f"pairwise IoU needs (N, 4) and (M, 4) boxes, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        )
    return boxes1[:, None, :], boxes2[None, :, :]


# The helpers below take collapsed boxes that broadcast against each other, so one formula
# serves the pairwise (N, 1, 4) x (1, M, 4) case, the aligned case and the NMS grids.


def _iou_and_union(
    b1: Tensor, b2: Tensor, area1: Tensor | None = None, area2: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """IoU and union of broadcast collapsed boxes; areas may be passed in when precomputed."""
    area1 = _area(b1) if area1 is None else area1
    area2 = _area(b2) if area2 is None else area2
    wh = (torch.minimum(b1[..., 2:], b2[..., 2:]) - torch.maximum(b1[..., :2], b2[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - inter
    return _safe_div(inter, union), union


def _enclosing(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """Width and height of the smallest box enclosing both."""
    wh = torch.maximum(b1[..., 2:], b2[..., 2:]) - torch.minimum(b1[..., :2], b2[..., :2])
    return wh[..., 0], wh[..., 1]


def _diou_terms(b1: Tensor, b2: Tensor, eps: float, iou: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """IoU and the DIoU penalty rho^2 / c^2 (squared centre distance over squared diagonal)."""
    if iou is None:
        iou, _ = _iou_and_union(b1, b2)
    cw, ch = _enclosing(b1, b2)
    centre_dx = (b1[..., 0] + b1[..., 2] - b2[..., 0] - b2[..., 2]) / 2
    centre_dy = (b1[..., 1] + b1[..., 3] - b2[..., 1] - b2[..., 3]) / 2
    # eps as in the DIoU reference code and torchvision: coincident points give 0, not 0/0.
    return iou, (centre_dx**2 + centre_dy**2) / (cw**2 + ch**2 + eps)


def _aspect_angle(w: Tensor, h: Tensor) -> Tensor:
    """``atan(w / h)`` with ``h == 0`` mapped to pi/2 (or 0 for a point) and finite gradients."""
    positive = h > 0
    angle = torch.atan(w / torch.where(positive, h, torch.ones_like(h)))
    limit = torch.where(w > 0, torch.full_like(w, math.pi / 2), torch.zeros_like(w))
    return torch.where(positive, angle, limit)


def box_iou(boxes1: Tensor, boxes2: Tensor, *, aligned: bool = False) -> Tensor:
    """Intersection over union of ``xyxy`` boxes.

    Args:
        boxes1: ``(N, 4)`` boxes (``(..., 4)`` when ``aligned``).
        boxes2: ``(M, 4)`` boxes (same shape as ``boxes1`` when ``aligned``).
        aligned: compare ``boxes1[i]`` with ``boxes2[i]`` instead of every pair.

    Returns:
        ``(N, M)`` IoU matrix, or ``(...)`` when ``aligned``, in ``[0, 1]``; ``float32`` for
        integer/half inputs. Two empty (zero-area) boxes have IoU 0. Empty inputs give an
        empty ``(0, M)``/``(N, 0)`` result.
    """
    b1, b2 = _pair(boxes1, boxes2, aligned)
    return _iou_and_union(b1, b2)[0]


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, *, aligned: bool = False) -> Tensor:
    """Generalized IoU (Rezatofighi et al. 2019): ``IoU - (C - U) / C``.

    ``C`` is the area of the smallest box enclosing both, ``U`` the union. Shapes, dtypes and
    empty inputs as in :func:`box_iou`; values in ``[-1, 1]``. When ``C`` is 0 (two coincident
    points) the penalty is 0.
    """
    b1, b2 = _pair(boxes1, boxes2, aligned)
    iou, union = _iou_and_union(b1, b2)
    cw, ch = _enclosing(b1, b2)
    enclosure = cw * ch
    return iou - _safe_div(enclosure - union, enclosure)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, *, aligned: bool = False, eps: float = 1e-7) -> Tensor:
    """Distance IoU (Zheng et al. 2020): ``IoU - rho^2 / c^2``.

    ``rho`` is the distance between the box centres and ``c`` the diagonal of the smallest
    enclosing box; ``eps`` is added to ``c^2`` as in the reference code. Shapes, dtypes and
    empty inputs as in :func:`box_iou`; values in ``(-1, 1]``.
    """
    b1, b2 = _pair(boxes1, boxes2, aligned)
    iou, penalty = _diou_terms(b1, b2, eps)
    return iou - penalty


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, *, aligned: bool = False, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al. 2020): ``IoU - rho^2 / c^2 - alpha * v``.

    ``v = 4 / pi^2 * (atan(w2 / h2) - atan(w1 / h1))^2`` measures aspect-ratio disagreement and
    ``alpha = v / (1 - IoU + v + eps)`` is a trade-off weight computed without gradient, as in
    the paper's code. A zero height counts as an angle of pi/2. Shapes, dtypes and empty inputs
    as in :func:`box_iou`; values in ``[-1.5, 1]``.
    """
    b1, b2 = _pair(boxes1, boxes2, aligned)
    iou, penalty = _diou_terms(b1, b2, eps)
    w1, h1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1]
    w2, h2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1]
    v = (4 / math.pi**2) * (_aspect_angle(w2, h2) - _aspect_angle(w1, h1)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - penalty - alpha * v


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clip ``xyxy`` boxes to an image of size ``(height, width)``.

    Args:
        boxes: ``(..., 4)`` absolute ``xyxy`` boxes (for normalised boxes pass ``(1, 1)``).
        image_size: ``(height, width)``.

    Returns:
        A new ``(..., 4)`` tensor of the input dtype with x in ``[0, width]`` and y in
        ``[0, height]``; empty input gives an empty tensor.
    """
    _check_boxes(boxes)
    height, width = _check_size(image_size)
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def _check_size(image_size: tuple[int, int]) -> tuple[float, float]:
    try:
        height, width = image_size
        positive = float(height) > 0 and float(width) > 0
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
    if not positive:
        raise ValueError(f"image_size must be positive (height, width), got {image_size!r}")
    return height, width


def _scale(boxes: Tensor, image_size: tuple[int, int], inverse: bool) -> Tensor:
    _check_boxes(boxes)
    height, width = _check_size(image_size)
    dtype = boxes.dtype if boxes.is_floating_point() else torch.get_default_dtype()
    # Half precision computes in float32: an image side above 65504 pixels is inf in float16.
    compute = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    # Every format is (x-like, y-like, x-like, y-like), so one scale vector serves all three.
    scale = torch.tensor([width, height, width, height], dtype=compute, device=boxes.device)
    boxes = boxes.to(compute)
    return (boxes / scale if inverse else boxes * scale).to(dtype)


def normalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Divide pixel boxes by the image size so the image spans ``[0, 1]``.

    Args:
        boxes: ``(..., 4)`` boxes in any of :data:`BOX_FORMATS` (x values are divided by the
            width, y values by the height, which is right for all three).
        image_size: ``(height, width)`` in pixels.

    Returns:
        ``(..., 4)`` floating boxes (integer inputs become the default float dtype); empty
        input gives an empty tensor.
    """
    return _scale(boxes, image_size, inverse=True)


def denormalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`normalize_boxes`: multiply by ``(width, height, width, height)``.

    Args:
        boxes: ``(..., 4)`` normalised boxes in any of :data:`BOX_FORMATS`.
        image_size: ``(height, width)`` in pixels.

    Returns:
        ``(..., 4)`` pixel boxes, floating (integer inputs become the default float dtype);
        empty input gives an empty tensor.
    """
    return _scale(boxes, image_size, inverse=False)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of ``xyxy`` boxes whose width and height are both at least ``min_size``.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` boxes.
        min_size: minimum side length, in the boxes' units.

    Returns:
        ``(K,)`` ``int64`` indices in increasing order (as torchvision); degenerate boxes are
        removed for any ``min_size > 0``. Empty input gives an empty index tensor.
    """
    _check_boxes(boxes)
    if boxes.ndim != 2:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    # Upcast first: in unsigned integers a degenerate box's x2 - x1 wraps around to a large width.
    boxes = _upcast(boxes)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((w >= min_size) & (h >= min_size))[0]
