"""Non-maximum suppression: hard, soft, DIoU, weighted (merge), "and" and matrix NMS.

Shared conventions:

* ``boxes`` are ``(N, 4)`` ``xyxy`` boxes and ``scores`` ``(N,)``; integer and half inputs are
  upcast to ``float32`` (see :mod:`cvpipe.ops.boxes`). Boxes and scores must be finite: NaN or
  infinity raises :class:`ValueError` (filter with ``torch.isfinite`` first).
* ``classes``: optional ``(N,)`` labels (any dtype). When given, boxes only interact with boxes
  of the same label (class-aware NMS); when ``None`` every box competes with every other.
* A box is suppressed when its overlap with a kept, better box is **strictly greater** than
  the threshold, as in torchvision: a pair sitting exactly at the threshold survives.
* ``score_threshold``: boxes whose score is not strictly greater are dropped (for soft and
  matrix NMS it is applied to the decayed score, as their papers do).
* Order: the best box goes first; equal scores are broken by the lower input index (the
  processing order is a stable descending sort of the scores). Results are returned best score
  first (the decayed score for soft/matrix NMS), ties by lower index, cut to ``max_det``.
* Indices are ``int64`` on the boxes' device; an empty input (or nothing left after the score
  threshold) returns empty tensors.

Speed: hard NMS is torchvision's compiled kernel. The other variants lay the boxes out as a
padded ``(classes, boxes_per_class)`` grid (classes of similar size batched together) and work
on all classes at once. Where the per-class overlap matrices fit in memory, the greedy variants
(DIoU, weighted, "and") solve greedy NMS as a fixed point of matrix products, a handful of
passes; soft-NMS, whose every step depends on the previous decay, loops once per kept box of
the longest class, each step a few whole-grid operations; matrix NMS has no loop at all.
Larger classes fall back to computing overlap rows on the fly, with identical results.
``benchmarks/bench_nms.py`` measures all of them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator

import torch
import torchvision
from torch import Tensor

from cvpipe.ops.boxes import _collapse, box_convert

__all__ = [
    "NMS_METHODS",
    "nms",
    "batched_nms",
    "soft_nms",
    "diou_nms",
    "weighted_nms",
    "and_nms",
    "matrix_nms",
    "non_max_suppression",
]

NMS_METHODS = ("hard", "soft", "diou", "weighted", "merge", "and", "matrix")

# Largest number of pairwise overlaps materialised at once (float32: 8 MiB). Above it the greedy
# variants compute overlaps row by row and matrix NMS works through column blocks.
_GRID_BUDGET = 1 << 21


# --------------------------------------------------------------------------------------------
# Input checks, layout and output order
# --------------------------------------------------------------------------------------------


def _validate(boxes: Tensor, scores: Tensor, classes: Tensor | None) -> tuple[Tensor, Tensor]:
    """Check shapes; return boxes upcast to float32/float64 and scores in the same dtype."""
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be an (N, 4) tensor, got {getattr(boxes, 'shape', type(boxes).__name__)}")
    n = boxes.shape[0]
    if not isinstance(scores, Tensor) or scores.shape != (n,):
        raise ValueError(f"scores must be an ({n},) tensor to match boxes, got {getattr(scores, 'shape', scores)}")
    if classes is not None and (not isinstance(classes, Tensor) or classes.shape != (n,)):
        raise ValueError(f"classes must be an ({n},) tensor to match boxes, got {getattr(classes, 'shape', classes)}")
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes = boxes.float()
    scores = scores.to(boxes.dtype)
    # NaN never compares greater, so it would be kept by one variant and dropped by another
    # (and a NaN overlap poisons whole rows of the matrix passes): refuse it up front.
    for name, values in (("boxes", boxes), ("scores", scores)):
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"{name} contain NaN or infinity; drop those boxes first, e.g. with torch.isfinite")
    return boxes, scores


def _prepare(
    boxes: Tensor, scores: Tensor, classes: Tensor | None, score_threshold: float | None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Validate and upcast; return boxes, scores, classes and the indices above the threshold."""
    if score_threshold is not None:
        _check_threshold(score_threshold, "score_threshold")
    boxes, scores = _validate(boxes, scores, classes)
    if score_threshold is None:
        candidates = torch.arange(boxes.shape[0], device=boxes.device)
    else:
        candidates = torch.nonzero(scores > score_threshold).squeeze(1)
    return boxes, scores, classes, candidates


def _check_threshold(value: float, name: str) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got {value!r}")


def _layouts(scores: Tensor, classes: Tensor | None, growth: float = 2.0) -> Iterator[tuple[Tensor, Tensor, bool]]:
    """Padded ``(G, L)`` grids of indices into ``scores``, one class per row, best first.

    Yields ``(index, valid, matrix)``; ``valid`` marks real entries (padding repeats some real
    index and must be ignored) and ``matrix`` says whether the ``(G, L, L)`` overlap matrix fits
    in ``_GRID_BUDGET`` entries. Classes are bucketed by size (sizes within a factor ``growth``
    share a bucket), so a class with thousands of boxes never pads a hundred small ones to its
    length, and buckets are split into row blocks that respect the budget. A small ``growth``
    wastes less padding but gives more buckets: right when the work per bucket is a handful of
    matrix passes, wrong when it is a loop over the bucket's longest row.
    """
    n = scores.numel()
    if n == 0:
        return
    order = torch.sort(scores, descending=True, stable=True).indices
    if classes is None:
        counts = torch.tensor([n], device=scores.device)
    else:
        # A stable sort by class keeps the score order inside each class.
        order = order[torch.sort(classes[order], stable=True).indices]
        _, counts = torch.unique_consecutive(classes[order], return_counts=True)
    starts = counts.cumsum(0) - counts
    size_class = torch.floor(torch.log(counts.double()) / math.log(growth)).long()
    for bucket in torch.unique(size_class).tolist():
        rows = torch.nonzero(size_class == bucket).squeeze(1)
        lengths = counts[rows]
        length = int(lengths.max())
        matrix = length * length <= _GRID_BUDGET
        block = max(1, _GRID_BUDGET // (length * length if matrix else length))
        positions = torch.arange(length, device=scores.device)
        for first in range(0, rows.numel(), block):
            part = slice(first, first + block)
            valid = positions < lengths[part, None]
            flat = (starts[rows[part], None] + positions).clamp(max=n - 1)
            yield order[flat], valid, matrix


def _finish(index: Tensor, scores: Tensor, max_det: int | None, *extras: Tensor) -> tuple[Tensor, ...]:
    """Sort results by score (descending, ties by lower index) and cut to ``max_det``."""
    order = torch.sort(index).indices
    order = order[torch.sort(scores[order], descending=True, stable=True).indices]
    if max_det is not None:
        _check_max_det(max_det)
        order = order[:max_det]
    return (index[order], scores[order], *(extra[order] for extra in extras))


def _check_max_det(max_det: int) -> None:
    if isinstance(max_det, bool) or not isinstance(max_det, numbers.Integral) or max_det < 0:
        raise ValueError(f"max_det must be an integer >= 0 or None, got {max_det!r}")


def _empty_index(boxes: Tensor) -> Tensor:
    return torch.empty(0, dtype=torch.int64, device=boxes.device)


# --------------------------------------------------------------------------------------------
# Hard NMS (torchvision's compiled kernel)
# --------------------------------------------------------------------------------------------


def nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    *,
    classes: Tensor | None = None,
    score_threshold: float | None = None,
    max_det: int | None = None,
) -> Tensor:
    """Hard (greedy) NMS: keep the best box, drop every box with IoU > ``iou_threshold``, repeat.

    Runs torchvision's compiled ``nms``; with ``classes``, once on boxes moved apart per class
    (any labels and coordinates, negative ones included) or, for many boxes, once per class.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` boxes.
        scores: ``(N,)`` scores.
        iou_threshold: boxes overlapping a kept box by more than this are discarded.
        classes: optional ``(N,)`` labels for class-aware NMS.
        score_threshold: drop boxes with ``score <= score_threshold`` first.
        max_det: keep at most this many boxes.

    Returns:
        ``(K,)`` ``int64`` indices of the kept boxes, best score first; empty for empty input.
    """
    _check_threshold(iou_threshold, "iou_threshold")
    if score_threshold is not None:
        _check_threshold(score_threshold, "score_threshold")
    boxes, scores = _validate(boxes, scores, classes)
    if max_det is not None:
        _check_max_det(max_det)
    candidates = None
    if score_threshold is not None:
        candidates = torch.nonzero(scores > score_threshold).squeeze(1)
        boxes, scores = boxes[candidates], scores[candidates]
        classes = classes[candidates] if classes is not None else None
    if classes is None:
        # The kernel orders by a stable descending sort: best first, ties by lower index.
        keep = torchvision.ops.nms(boxes, scores, float(iou_threshold))
    elif boxes.shape[0] <= (_ONE_CALL_LIMIT_CPU if boxes.device.type == "cpu" else _ONE_CALL_LIMIT_GPU):
        keep = _offset_nms(boxes, scores, classes, float(iou_threshold))
    else:
        keep = _per_class_nms(boxes, scores, classes, float(iou_threshold))
    if candidates is not None:
        keep = candidates[keep]
    return keep if max_det is None else keep[:max_det]


# Box counts up to which one kernel call on class-offset boxes beats a call per class (the
# kernel's work grows with N x kept). CPU: measured on YOLO-like scenes with 80 classes, one
# call takes 2.1 ms vs 3.7 ms per class at 2000 boxes, 12.7 vs 6.6 ms at 5000. CUDA: torchvision's
# crossover (100000 coordinates); a call per class would also mean a host sync per class.
_ONE_CALL_LIMIT_CPU, _ONE_CALL_LIMIT_GPU = 3000, 25000


def _offset_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """One kernel call on boxes moved apart per class (torchvision's coordinate trick), made safe.

    torchvision's ``batched_nms`` adds ``label * (max_coordinate + 1)`` to the boxes in their own
    dtype. Large or sparse labels (COCO ids, ``image * num_classes + label``) then push float32
    coordinates to where their spacing is whole pixels and overlaps come out wrong, and a box
    with negative coordinates can land on a box of another class and suppress it. Here labels
    become dense ranks, the offset is ``rank * (max - min + 1)`` so that the classes' ranges can
    never meet, and the kernel runs in float64, where float32 coordinates plus such offsets stay
    exact. Stable: equal scores keep the lower index first.
    """
    if boxes.shape[0] == 0:
        return _empty_index(boxes)
    rank = torch.unique(classes, return_inverse=True)[1]
    wide = boxes.double()
    offsets = rank.to(torch.float64) * (wide.max() - wide.min() + 1)
    return torchvision.ops.nms(wide + offsets[:, None], scores.double(), iou_threshold)


def _per_class_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """The kernel once per class: for many boxes, cheaper than one call on all of them.

    torchvision's own per-class path finds each class with a full scan and ends with an
    unstable sort; here one stable sort groups the classes, survivors are marked in a mask
    (so they come out in index order) and a single stable sort by score gives the tie order.
    The loop runs over classes, never over boxes.
    """
    grouped = torch.sort(classes, stable=True).indices
    _, counts = torch.unique_consecutive(classes[grouped], return_counts=True)
    survivors = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    for members in torch.split(grouped, counts.tolist()):
        survivors[members[torchvision.ops.nms(boxes[members], scores[members], iou_threshold)]] = True
    keep = torch.nonzero(survivors).squeeze(1)
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware hard NMS with torchvision's argument order; see :func:`nms`.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` boxes; scores: ``(N,)``; classes: ``(N,)`` labels.

    Returns:
        ``(K,)`` ``int64`` kept indices, best score first (ties: lower index); empty for empty input.
    """
    return nms(boxes, scores, iou_threshold, classes=classes)


# --------------------------------------------------------------------------------------------
# Greedy variants: DIoU, weighted (merge) and "and" NMS
# --------------------------------------------------------------------------------------------


def _planes(boxes: Tensor, centres: bool = False) -> list[Tensor]:
    """Collapsed ``(..., 4)`` boxes as contiguous planes ``x1, y1, x2, y2, area[, cx, cy]``.

    Broadcasting separate planes is several times faster than slicing ``(..., 4)`` boxes.
    """
    x1, y1, x2, y2 = boxes.movedim(-1, 0).contiguous()
    planes = [x1, y1, x2, y2, (x2 - x1) * (y2 - y1)]
    if centres:
        planes += [(x1 + x2) / 2, (y1 + y2) / 2]
    return planes


def _planes_iou(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """IoU of broadcast planes; 0 for two empty boxes."""
    w = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp_(min=0)
    h = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp_(min=0)
    inter = w.mul_(h)
    union = (a[4] + b[4]).sub_(inter)
    # Two empty boxes: 0 / tiny = 0, not NaN (and no boolean mask, slow at this size).
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))


class _Grid:
    """One layout's boxes, ``(G, L, 4)`` collapsed ``xyxy``, and their overlaps within each row.

    ``overlap`` is ``"iou"`` or ``"diou"`` (``IoU - (rho^2 / c^2)^beta``). With ``matrix`` the
    ``(G, L, L)`` overlaps are computed once and :meth:`rows` gathers from them; otherwise each
    call computes the rows it needs. Both give bit-identical values (same formula, same operand
    order), so the memory budget never changes a result.
    """

    def __init__(self, boxes: Tensor, valid: Tensor, overlap: str = "iou", beta: float = 1.0, matrix: bool = True):
        self.boxes, self.valid, self.overlap, self.beta = boxes, valid, overlap, beta
        self.planes = planes = _planes(boxes, centres=overlap == "diou")
        self.row_ids = torch.arange(valid.shape[0], device=valid.device)
        self.matrix = None
        if matrix:
            self.matrix = self._measure([p[:, :, None] for p in planes], [p[:, None, :] for p in planes])

    def _measure(self, a: list[Tensor], b: list[Tensor]) -> Tensor:
        """Overlap of broadcast boxes given as planes ``x1, y1, x2, y2, area[, cx, cy]``."""
        iou = _planes_iou(a, b)
        if self.overlap == "iou":
            return iou
        cw = torch.maximum(a[2], b[2]) - torch.minimum(a[0], b[0])
        ch = torch.maximum(a[3], b[3]) - torch.minimum(a[1], b[1])
        rho2 = (a[5] - b[5]).square_().add_((a[6] - b[6]).square_())
        penalty = rho2.div_(cw.square_().add_(ch.square_()).add_(1e-7))
        return iou.sub_(penalty if self.beta == 1 else penalty.pow_(self.beta))

    def rows(self, top: Tensor) -> Tensor:
        """``(G, L)``: overlap of box ``top[g]`` of each row ``g`` with every box of that row."""
        if self.matrix is not None:
            return self.matrix[self.row_ids, top]
        return self._measure([p[self.row_ids, top][:, None] for p in self.planes], self.planes)


def _greedy(
    grid: _Grid,
    iou_threshold: float,
    weights: Tensor | None = None,
    confirm_threshold: float | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Greedy suppression on a grid whose rows are sorted best first.

    Each pass takes the first live box of every row, keeps it, and kills the live boxes of its
    row that overlap it by more than ``iou_threshold``. The dependency is intrinsic (whether a
    box suppresses depends on whether it survived), so the loop runs once per kept box of the
    longest row, never once per pair; all rows advance together.

    With ``weights`` the kept box's coordinates become the weighted mean of itself and the live
    boxes it suppresses (weighted NMS). With ``confirm_threshold`` a kept box is also marked
    confirmed when another live box overlaps it by more than that ("and" NMS).

    Returns ``(kept, merged_boxes, confirmed)``: ``(G, L)`` bool, ``(G, L, 4)`` or ``None``,
    ``(G, L)`` bool or ``None``.
    """
    rows, boxes = grid.row_ids, grid.boxes
    alive = grid.valid.clone()
    kept = torch.zeros_like(alive)
    merged = boxes.clone() if weights is not None else None
    confirmed = torch.zeros_like(alive) if confirm_threshold is not None else None
    while True:
        has_live = alive.any(1)
        if not bool(has_live.any()):
            break
        top = alive.to(torch.uint8).argmax(1)  # first live entry = best remaining box
        # Rows with nothing live point at entry 0; every update below is masked by has_live.
        kept[rows, top] |= has_live
        alive[rows, top] = False
        overlap = grid.rows(top)
        suppressed = alive & (overlap > iou_threshold)
        if merged is not None:
            w = torch.where(suppressed, weights, torch.zeros_like(weights))
            w_top = weights[rows, top]
            total = w.sum(1) + w_top
            weighted_sum = torch.bmm(w[:, None, :], boxes).squeeze(1) + w_top[:, None] * boxes[rows, top]
            mean = weighted_sum / torch.where(total > 0, total, torch.ones_like(total))[:, None]
            # Finished rows keep what they have; all-zero weights leave the box as it is.
            merged[rows, top] = torch.where((has_live & (total > 0))[:, None], mean, merged[rows, top])
        if confirmed is not None:
            confirmed[rows, top] |= has_live & (alive & (overlap > confirm_threshold)).any(1)
        alive &= ~suppressed
    return kept, merged, confirmed


def _greedy_matrix(
    grid: _Grid,
    iou_threshold: float,
    weights: Tensor | None = None,
    confirm_threshold: float | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """:func:`_greedy` on a grid whose overlap matrix is materialised: same results, no per-box loop.

    Greedy NMS keeps box ``j`` exactly when no kept box before it suppresses it. Iterating that
    rule from "everything kept" reaches its only fixed point (Cluster-NMS, Zheng et al. 2021):
    box ``j`` depends only on earlier boxes, so each pass settles at least one more of them and
    the pass count is the depth of the longest suppression chain, a handful in practice.
    The owner of each suppressed box (the first kept box that removes it) then gives the
    clusters of weighted NMS and the boxes still live when each box is chosen ("and" NMS).

    The ``(G, L, L)`` work is done in 0/1 floating point with reductions over the last axis
    (matrix products and sums), which is several times faster on CPU than boolean masks.
    Overlaps are symmetric, so ``overlap[g, j, i]`` serves as "box ``i`` against box ``j``".
    """
    valid = grid.valid
    groups, length = valid.shape
    real = valid.to(grid.matrix.dtype)
    positions = torch.arange(length, device=valid.device)
    # before[j, i] = 1 when box i comes before box j; padding neither suppresses nor is suppressed.
    before = (positions[None, :] < positions[:, None]).to(real.dtype)
    pairs = before * real[:, :, None] * real[:, None, :]  # (G, j, i)
    # sign(x - t) clamped at 0 is the indicator of x > t: the threshold itself is not exceeded.
    suppressed_by = (grid.matrix - iou_threshold).sign_().clamp_(min=0).mul_(pairs)  # (G, j, i)
    kept = real
    while True:
        count = torch.bmm(suppressed_by, kept[:, :, None]).squeeze(2)  # kept boxes suppressing j
        settled = real * (count == 0)
        if torch.equal(settled, kept):
            break
        kept = settled
    merged = confirmed = None
    if weights is None and confirm_threshold is None:
        return kept.bool(), merged, confirmed
    removed = count > 0
    # The first kept suppressor of j maximises (L - i) over the kept suppressors.
    owner = length - (suppressed_by * kept[:, None, :] * (length - positions).to(real.dtype)).amax(2).long()
    owner = torch.where(removed, owner, positions)  # a box that is not removed owns itself
    if weights is not None:
        w = weights * (removed | kept.bool())
        total = torch.zeros_like(w).scatter_add_(1, owner, w)
        weighted_sum = torch.zeros_like(grid.boxes).scatter_add_(
            1, owner[..., None].expand(-1, -1, 4), w[..., None] * grid.boxes
        )
        mean = weighted_sum / torch.where(total > 0, total, torch.ones_like(total))[..., None]
        merged = torch.where((total > 0)[..., None], mean, grid.boxes)
    if confirm_threshold is not None:
        # j is still live when i is chosen unless a kept box before i already removed it.
        order_i, owner_j = positions.to(real.dtype)[None, :, None], owner.to(real.dtype)[:, None, :]
        removed_before = removed.to(real.dtype)[:, None, :] * (order_i - owner_j).clamp_(0, 1)  # (G, i, j)
        live = pairs.transpose(1, 2) * (1 - removed_before)
        confirming = (grid.matrix - confirm_threshold).sign_().clamp_(min=0).mul_(live)  # (G, i, j)
        confirmed = confirming.sum(2) > 0
    return kept.bool(), merged, confirmed


def _greedy_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    classes: Tensor | None,
    score_threshold: float | None,
    max_det: int | None,
    overlap: str = "iou",
    beta: float = 1.0,
    merge: bool = False,
    confirm_threshold: float | None = None,
) -> tuple[Tensor, Tensor]:
    _check_threshold(iou_threshold, "iou_threshold")
    boxes, scores, classes, candidates = _prepare(boxes, scores, classes, score_threshold)
    b, s = _collapse(boxes[candidates]), scores[candidates]
    c = classes[candidates] if classes is not None else None
    picked, out_boxes = [_empty_index(boxes)], [boxes.new_empty(0, 4)]
    for index, valid, matrix in _layouts(s, c, growth=1.25):
        grid = _Grid(b[index], valid, overlap, beta, matrix)
        run = _greedy_matrix if matrix else _greedy
        kept, merged, confirmed = run(grid, iou_threshold, s[index] if merge else None, confirm_threshold)
        if confirmed is not None:
            kept &= confirmed
        picked.append(index[kept])
        # Merged boxes are returned; everything else returns the caller's (uncollapsed) boxes.
        out_boxes.append(merged[kept] if merged is not None else boxes[candidates[index[kept]]])
    local = torch.cat(picked)
    keep, _, out = _finish(candidates[local], s[local], max_det, torch.cat(out_boxes))
    return keep, out


def diou_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    *,
    beta: float = 1.0,
    classes: Tensor | None = None,
    score_threshold: float | None = None,
    max_det: int | None = None,
) -> Tensor:
    """DIoU-NMS (Zheng et al. 2020): greedy NMS that suppresses by ``IoU - (rho^2 / c^2)^beta``.

    ``rho`` is the distance between the centres and ``c`` the diagonal of the enclosing box, so
    two overlapping boxes with distant centres (e.g. two people side by side) both survive.
    ``beta = 1`` is the paper's DIoU; larger values weaken the centre penalty.

    Args:
        boxes: ``(N, 4)`` ``xyxy``; scores: ``(N,)``; classes: optional ``(N,)`` labels.
        iou_threshold: suppress when the DIoU score is strictly greater.
        score_threshold, max_det: see the module text.

    Returns:
        ``(K,)`` ``int64`` kept indices, best score first; empty for empty input.
    """

    return _greedy_nms(boxes, scores, iou_threshold, classes, score_threshold, max_det, "diou", beta)[0]


def weighted_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    *,
    classes: Tensor | None = None,
    score_threshold: float | None = None,
    max_det: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Weighted ("merge") NMS: greedy hard NMS whose kept boxes become the score-weighted mean
    of the cluster they suppress.

    The kept set is exactly that of :func:`nms`. The cluster of a kept box is itself plus the
    boxes it removes (still live, IoU > ``iou_threshold``), each weighted by its score;
    suppression is decided with the original, unmerged coordinates.

    Args:
        boxes: ``(N, 4)`` ``xyxy``; scores: ``(N,)`` non-negative; classes: optional ``(N,)``.
        iou_threshold, score_threshold, max_det: see the module text.

    Returns:
        ``(keep, merged_boxes)``: ``(K,)`` ``int64`` indices, best score first, and their
        ``(K, 4)`` merged ``xyxy`` boxes (a box whose cluster weights sum to 0 is left as is).
        Empty tensors for empty input.
    """
    return _greedy_nms(boxes, scores, iou_threshold, classes, score_threshold, max_det, merge=True)


def and_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    *,
    confirm_threshold: float = 0.5,
    classes: Tensor | None = None,
    score_threshold: float | None = None,
    max_det: int | None = None,
) -> Tensor:
    """"And" NMS (the yolov3 post-processor's ``and`` method): hard NMS that also drops lone boxes.

    Greedy NMS runs as usual, but a box it would keep survives only if at least one other box
    that is still live when it is chosen (a lower-scored box not yet suppressed) overlaps it
    with IoU > ``confirm_threshold``. Isolated detections, often false positives, disappear;
    the last remaining box of a class is never confirmed. The kept set is a subset of
    :func:`nms`'s.

    Args:
        boxes: ``(N, 4)`` ``xyxy``; scores: ``(N,)``; classes: optional ``(N,)`` labels.
        iou_threshold, score_threshold, max_det: see the module text.
        confirm_threshold: IoU a confirming box needs (0.5 in the yolov3 code).

    Returns:
        ``(K,)`` ``int64`` kept indices, best score first; empty for empty input.
    """
    _check_threshold(confirm_threshold, "confirm_threshold")
    return _greedy_nms(
        boxes,
        scores,
        iou_threshold,
        classes,
        score_threshold,
        max_det,
        confirm_threshold=confirm_threshold,
    )[0]


# --------------------------------------------------------------------------------------------
# Soft-NMS and matrix NMS (scores decay instead of boxes disappearing)
# --------------------------------------------------------------------------------------------


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    *,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float | None = 0.001,
    classes: Tensor | None = None,
    max_det: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al. 2017): decay the scores of overlapping boxes instead of dropping them.

    Repeatedly keep the box with the highest *current* score and multiply the current scores
    of the remaining boxes by ``exp(-IoU^2 / sigma)`` (``"gaussian"``) or, where
    ``IoU > iou_threshold``, by ``1 - IoU`` (``"linear"``); boxes whose score falls to
    ``score_threshold`` or below are discarded.

    Args:
        boxes: ``(N, 4)`` ``xyxy``; scores: ``(N,)``; classes: optional ``(N,)`` labels.
        method: ``"gaussian"`` or ``"linear"``.
        sigma: Gaussian width (0.5 in the paper); ignored by ``"linear"``.
        iou_threshold: ``N_t`` of the linear rule; ignored by ``"gaussian"``.
        score_threshold: discard boxes whose (decayed) score is not above it; ``None`` keeps all.
        max_det: keep at most this many boxes.

    Returns:
        ``(keep, decayed_scores)``: ``(K,)`` ``int64`` indices and their ``(K,)`` scores at the
        moment each was kept, highest first. Empty tensors for empty input.
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"unknown soft-NMS method {method!r}; expected 'gaussian' or 'linear'")
    _check_threshold(iou_threshold, "iou_threshold")
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    boxes, scores, classes, candidates = _prepare(boxes, scores, classes, score_threshold)
    b, s = _collapse(boxes[candidates]), scores[candidates]
    c = classes[candidates] if classes is not None else None
    picked, decayed = [_empty_index(boxes)], [s.new_empty(0)]
    for index, valid, matrix in _layouts(s, c):
        grid = _Grid(b[index], valid, matrix=matrix)
        kept, current = _soft_decay(grid, s[index], method, sigma, iou_threshold, score_threshold)
        picked.append(index[kept])
        decayed.append(current[kept])
    local = torch.cat(picked)
    keep, out_scores = _finish(candidates[local], torch.cat(decayed), max_det)
    return keep, out_scores


def _soft_decay(
    grid: _Grid,
    scores: Tensor,
    method: str,
    sigma: float,
    iou_threshold: float,
    score_threshold: float | None,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS on a grid; returns ``kept`` and the scores each box was kept with.

    Which box comes next depends on the decay applied by every earlier choice, so the loop runs
    once per kept box of the longest row (never once per pair); all rows advance together.
    """
    rows = grid.row_ids
    current = scores.clone()
    alive = grid.valid.clone()
    if score_threshold is not None:
        alive &= current > score_threshold
    kept = torch.zeros_like(alive)
    minus_inf = torch.tensor(-math.inf, dtype=scores.dtype, device=scores.device)
    while True:
        has_live = alive.any(1)
        if not bool(has_live.any()):
            break
        top = torch.where(alive, current, minus_inf).argmax(1)  # first maximum on ties
        kept[rows, top] |= has_live
        alive[rows, top] = False
        iou = grid.rows(top)
        if method == "gaussian":
            factor = torch.exp(-(iou * iou) / sigma)
        else:
            factor = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
        current = torch.where(alive, current * factor, current)
        if score_threshold is not None:
            alive &= current > score_threshold
    return kept, current


def matrix_nms(
    boxes: Tensor,
    scores: Tensor,
    *,
    kernel: str = "gaussian",
    sigma: float = 2.0,
    score_threshold: float | None = None,
    classes: Tensor | None = None,
    max_det: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Matrix NMS (SOLOv2, Wang et al. 2020): every score decays in parallel, no greedy loop.

    With boxes sorted best first and ``IoU_ij`` the overlap of a better box ``i`` with box ``j``,
    box ``j``'s score is multiplied by ``min(1, min_{i<j} f(IoU_ij) / f(comp_i))``, where
    ``comp_i = max_{k<i} IoU_ki`` is how much box ``i`` is itself suppressed, and
    ``f(x) = exp(-sigma * x^2)`` (``"gaussian"``) or ``1 - x`` (``"linear"``). A box ``i``
    that is a perfect duplicate (``f(comp_i) = 0``) suppresses nothing further.

    Args:
        boxes: ``(N, 4)`` ``xyxy``; scores: ``(N,)``; classes: optional ``(N,)`` labels.
        kernel: ``"gaussian"`` or ``"linear"``.
        sigma: Gaussian kernel strength, > 0 (2.0 in SOLOv2); ignored by ``"linear"``.
        score_threshold: discard boxes whose decayed score is not above it (``None``: keep all).
        max_det: keep at most this many boxes.

    Returns:
        ``(keep, decayed_scores)``: ``(K,)`` ``int64`` indices and ``(K,)`` decayed scores,
        highest first. Empty tensors for empty input.
    """
    if kernel not in ("gaussian", "linear"):
        raise ValueError(f"unknown matrix-NMS kernel {kernel!r}; expected 'gaussian' or 'linear'")
    if kernel == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if score_threshold is not None:
        _check_threshold(score_threshold, "score_threshold")
    boxes, scores, classes, _ = _prepare(boxes, scores, classes, None)
    picked, decayed = [_empty_index(boxes)], [scores.new_empty(0)]
    collapsed = _collapse(boxes)
    for index, valid, _ in _layouts(scores, classes, growth=1.25):
        grid_scores = scores[index] * _matrix_decay(collapsed[index], valid, kernel, sigma)
        keep = valid if score_threshold is None else valid & (grid_scores > score_threshold)
        picked.append(index[keep])
        decayed.append(grid_scores[keep])
    keep, out_scores = _finish(torch.cat(picked), torch.cat(decayed), max_det)
    return keep, out_scores


def _matrix_decay(boxes: Tensor, valid: Tensor, kernel: str, sigma: float) -> Tensor:
    """``(G, L)`` decay factors for rows sorted best first (see :func:`matrix_nms`).

    Works on blocks of boxes ``j`` against every earlier box ``i`` so that no more than about
    ``_GRID_BUDGET`` overlaps exist at once, laid out ``(G, j, i)`` (IoU is symmetric) so the
    reductions run over the last axis. Pairs that do not count (``i`` not before ``j``,
    padding) get IoU 0, hence ratio ``1 / f(comp_i) >= 1``, which cannot lower the minimum.
    A perfect duplicate ``i`` (``f(comp_i) = 0``) is divided by the smallest normal number
    instead: its ratios become huge except against a box identical to it, which the box it
    duplicates already decays to 0.
    """
    groups, length = valid.shape

    def f(x: Tensor) -> Tensor:
        return torch.exp(-sigma * x * x) if kernel == "gaussian" else 1 - x

    real = valid.to(boxes.dtype)
    planes = _planes(boxes)
    tiny = torch.finfo(boxes.dtype).tiny
    positions = torch.arange(length, device=boxes.device)
    compensate = boxes.new_zeros(groups, length)
    decay = boxes.new_ones(groups, length)
    step = max(1, _GRID_BUDGET // max(1, groups * length))
    for start in range(0, length, step):
        stop = min(length, start + step)
        before = (positions[None, :stop] < positions[start:stop, None]).to(boxes.dtype)  # (j, i)
        iou = _planes_iou([p[:, start:stop, None] for p in planes], [p[:, None, :stop] for p in planes])  # (G, j, i)
        iou = iou.mul_(before).mul_(real[:, None, :stop])
        compensate[:, start:stop] = iou.amax(2)
        f_comp = f(compensate[:, None, :stop]).clamp_(min=tiny)
        decay[:, start:stop] = (f(iou) / f_comp).amin(2).clamp_(max=1)
    return decay


# --------------------------------------------------------------------------------------------
# YOLO-style post-processing
# --------------------------------------------------------------------------------------------


def non_max_suppression(
    pred: Tensor,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    method: str = "hard",
    classes: list[int] | None = None,
    multi_label: bool = False,
    agnostic: bool = False,
    max_det: int = 300,
    max_candidates: int = 30000,
    min_wh: float | None = None,
    max_wh: float | None = None,
    **method_kwargs: float | str,
) -> list[Tensor]:
    """Turn raw YOLO predictions into per-image detections.

    Steps, per image: keep predictions with objectness ``> conf_thres`` (and, if limits are
    given, width and height strictly between ``min_wh`` and ``max_wh``); score each class as
    ``objectness * class probability``; keep the best class (or, with ``multi_label``, every
    class) scoring ``> conf_thres``; drop non-finite rows; keep the ``max_candidates`` best;
    run the chosen NMS per class (all classes together with ``agnostic``); keep ``max_det``.
    All images and classes go through one NMS call.

    Args:
        pred: ``(B, N, 5 + C)`` rows ``(cx, cy, w, h, objectness, class_1 .. class_C)`` with
            probabilities (after the sigmoid), as YOLO heads emit at inference.
        conf_thres: score threshold (and the decay cutoff of soft and matrix NMS).
        iou_thres: IoU threshold of the NMS (unused by matrix NMS).
        method: one of :data:`NMS_METHODS` (``"merge"`` is ``"weighted"``).
        classes: keep only these class ids.
        multi_label: one row per (box, class) above the threshold instead of the best class.
        agnostic: suppress across classes.
        max_det: detections kept per image.
        max_candidates: predictions per image passed to NMS, best first.
        min_wh, max_wh: size limits in the input's units, ``None`` for none; the notes' yolov3
            code drops boxes not strictly between 2 and 4096 pixels.
        **method_kwargs: forwarded to the NMS function (``sigma``, ``beta``, ``kernel``,
            ``confirm_threshold``, ``method`` of soft-NMS as ``soft_method``).

    Returns:
        ``B`` tensors of shape ``(n_i, 6)``: ``x1, y1, x2, y2, score, class`` (``xyxy`` in the
        input's units, best first), in ``pred``'s floating dtype; ``(0, 6)`` when nothing is
        left. For weighted NMS the boxes are merged; for soft and matrix NMS the scores decayed.
    """
    if method not in NMS_METHODS:
        raise ValueError(f"unknown NMS method {method!r}; expected one of {', '.join(NMS_METHODS)}")
    if not isinstance(pred, Tensor) or pred.ndim != 3 or pred.shape[-1] < 6:
        raise ValueError(f"pred must be a (B, N, 5 + C) tensor with C >= 1, got {getattr(pred, 'shape', pred)}")
    _check_threshold(conf_thres, "conf_thres")
    _check_threshold(iou_thres, "iou_thres")
    for name, limit in (("max_det", max_det), ("max_candidates", max_candidates)):
        if not isinstance(limit, numbers.Integral) or limit < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {limit!r}")
    out_dtype = pred.dtype if pred.is_floating_point() else torch.float32
    x = pred if pred.dtype in (torch.float32, torch.float64) else pred.float()
    batch = x.shape[0]
    confident = x[..., 4] > conf_thres
    if min_wh is not None:
        confident &= (x[..., 2] > min_wh) & (x[..., 3] > min_wh)
    if max_wh is not None:
        confident &= (x[..., 2] < max_wh) & (x[..., 3] < max_wh)
    image, box = torch.nonzero(confident, as_tuple=True)
    rows = x[image, box]
    class_scores = rows[:, 5:] * rows[:, 4:5]
    if multi_label:
        row, label = torch.nonzero(class_scores > conf_thres, as_tuple=True)
        score = class_scores[row, label]
    else:
        label = class_scores.argmax(1)  # the first best class on ties
        score = class_scores.gather(1, label[:, None]).squeeze(1)
        row = torch.nonzero(score > conf_thres).squeeze(1)
        score, label = score[row], label[row]
    image, xyxy = image[row], box_convert(rows[row, :4], "cxcywh", "xyxy")
    wanted = torch.isfinite(xyxy).all(1) & torch.isfinite(score)
    if classes is not None:
        wanted &= torch.isin(label, torch.as_tensor(classes, device=label.device))
    image, xyxy, score, label = image[wanted], xyxy[wanted], score[wanted], label[wanted]
    image, xyxy, score, label = _top_per_image(max_candidates, image, xyxy, score, label)

    num_classes = x.shape[-1] - 5
    groups = image if agnostic else image * num_classes + label
    keep, out_boxes, out_scores = _run_method(method, xyxy, score, groups, iou_thres, conf_thres, method_kwargs)
    image, label = image[keep], label[keep]
    image, out_boxes, out_scores, label = _top_per_image(max_det, image, out_boxes, out_scores, label)
    detections = torch.cat([out_boxes, out_scores[:, None], label[:, None].to(out_boxes.dtype)], 1).to(out_dtype)
    counts = torch.bincount(image, minlength=batch).tolist()
    return list(torch.split(detections, counts))


def _top_per_image(limit: int, image: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor) -> tuple[Tensor, ...]:
    """Sort rows by image then score (descending) and keep the ``limit`` best of each image."""
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(image[order], stable=True).indices]
    image = image[order]
    _, counts = torch.unique_consecutive(image, return_counts=True)
    rank = torch.arange(image.numel(), device=image.device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    order = order[rank < limit]
    return image[rank < limit], boxes[order], scores[order], labels[order]


def _run_method(
    method: str,
    boxes: Tensor,
    scores: Tensor,
    groups: Tensor,
    iou_thres: float,
    conf_thres: float,
    kwargs: dict,
) -> tuple[Tensor, Tensor, Tensor]:
    """Dispatch to one NMS variant; return kept indices, their boxes and their scores."""
    if method == "hard":
        keep = nms(boxes, scores, iou_thres, classes=groups, **kwargs)
        return keep, boxes[keep], scores[keep]
    if method == "diou":
        keep = diou_nms(boxes, scores, iou_thres, classes=groups, **kwargs)
        return keep, boxes[keep], scores[keep]
    if method == "and":
        keep = and_nms(boxes, scores, iou_thres, classes=groups, **kwargs)
        return keep, boxes[keep], scores[keep]
    if method in ("weighted", "merge"):
        keep, merged = weighted_nms(boxes, scores, iou_thres, classes=groups, **kwargs)
        return keep, merged, scores[keep]
    if method == "soft":
        soft_kwargs = dict(kwargs)
        if "soft_method" in soft_kwargs:
            soft_kwargs["method"] = soft_kwargs.pop("soft_method")
        keep, decayed = soft_nms(
            boxes, scores, iou_threshold=iou_thres, score_threshold=conf_thres, classes=groups, **soft_kwargs
        )
        return keep, boxes[keep], decayed
    keep, decayed = matrix_nms(boxes, scores, score_threshold=conf_thres, classes=groups, **kwargs)
    return keep, boxes[keep], decayed
