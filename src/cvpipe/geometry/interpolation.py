"""Image resizing by separable interpolation: nearest, bilinear and bicubic.

Resizing is separable: each output row (column) is a weighted sum of a few input rows
(columns). For each axis this module computes, once per call, the input indices and
weights of every output position (the *taps*), then applies them along height and width
with one gather and multiply-add per tap. Nothing loops over pixels.

Where an output pixel ``d`` lands in the input depends on the *coordinate convention*,
with ``s = in_size / out_size``:

* ``"half_pixel"``: ``src = (d + 0.5) * s - 0.5``; pixel centres line up. OpenCV
  ``INTER_LINEAR``, ``INTER_CUBIC`` and ``INTER_NEAREST_EXACT``, PIL, torch with
  ``align_corners=False`` and ``"nearest-exact"``. The notes'
  ``BilinearInterpolation(align='center')``.
* ``"align_corners"``: ``src = d * (in_size - 1) / (out_size - 1)``; the centres of the
  corner pixels coincide. torch with ``align_corners=True``.
* ``"asymmetric"``: ``src = d * s``; the top-left corners line up and the image shifts by
  half an output pixel. OpenCV ``INTER_NEAREST``, torch ``"nearest"``. The notes'
  ``BilinearInterpolation(align='left')``.

Nearest neighbour takes ``floor(src + 0.5)`` for ``"half_pixel"`` (that is,
``floor((d + 0.5) * s)``), ``floor(src)`` for ``"asymmetric"`` and rounds half up for
``"align_corners"``, in exact integer arithmetic. When a sample falls exactly on the
boundary between two pixels, OpenCV and torch evaluate the same formula in floating point
and sometimes pick the pixel below; elsewhere all three agree.

Where torch's ``F.interpolate`` computes exactly the requested resize (bilinear and
bicubic with ``a = -0.75`` in the half-pixel and align-corners conventions, and
antialiased shrinking), :func:`resize` hands the work to it, since its fused kernels are
faster; everything else runs on the taps. Both paths are tested against OpenCV and torch.

Notes on the reference implementation (the notes' ``BilinearInterpolation``): its
constructor overwrites ``align`` with ``'center'`` after validating it, so ``'left'`` never
takes effect; it nudges every source coordinate by +0.001 because its ``floor``/``ceil``
pair gives both taps zero weight at integer coordinates (here the second tap simply gets
weight 0); and it loops over pixels in Python. Its nearest-neighbour companion uses
``round(d * s)``, the asymmetric convention with rounding instead of flooring.

Kernels: bilinear is the triangle filter; bicubic is Keys' cubic convolution with
parameter ``a`` (-0.75 as OpenCV and torch, -0.5 as PIL/Matlab, which reproduces
quadratics); taps beyond the border repeat the edge pixel. With ``antialias=True`` an
axis that shrinks uses the kernel stretched by the scale factor (every input pixel
contributes, as in PIL and torch's ``antialias=True``), weights renormalised at the
borders; an axis that grows is interpolated as without it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["resize", "MODES", "ALIGNMENTS"]

MODES = ("nearest", "bilinear", "bicubic")
ALIGNMENTS = ("half_pixel", "align_corners", "asymmetric")


def _cubic(x: Tensor, a: float) -> Tensor:
    """Keys' cubic convolution kernel, support [-2, 2]."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _triangle(x: Tensor) -> Tensor:
    return (1 - x.abs()).clamp_min(0)


def _nearest_indices(n_in: int, n_out: int, align: str, device) -> Tensor:
    """Source index ``(n_out,)`` of each output position; integer arithmetic, so that
    ties fall exactly where the formula puts them."""
    d = torch.arange(n_out, device=device, dtype=torch.int64)
    if align == "half_pixel":
        idx = ((2 * d + 1) * n_in) // (2 * n_out)  # floor((d + 0.5) * s)
    elif align == "asymmetric":
        idx = (d * n_in) // n_out  # floor(d * s)
    elif n_out == 1:
        idx = torch.zeros_like(d)
    else:  # align_corners: round half up of d * (in - 1) / (out - 1)
        idx = (2 * d * (n_in - 1) + (n_out - 1)) // (2 * (n_out - 1))
    return idx.clamp_(0, n_in - 1)


def _source_coordinate(n_in: int, n_out: int, align: str, device) -> Tensor:
    d = torch.arange(n_out, device=device, dtype=torch.float64)
    if align == "half_pixel":
        return (d + 0.5) * (n_in / n_out) - 0.5
    if align == "asymmetric":
        return d * (n_in / n_out)
    if n_out == 1:
        return torch.zeros_like(d)
    return d * ((n_in - 1) / (n_out - 1))


def _interpolating_taps(n_in: int, n_out: int, mode: str, align: str, a: float, device):
    src = _source_coordinate(n_in, n_out, align, device)
    if mode == "bilinear":
        # Left of the first pixel centre the first pixel is repeated (OpenCV and torch clamp).
        src = src.clamp_min(0)
        offsets = torch.arange(0, 2, device=device)
    else:
        offsets = torch.arange(-1, 3, device=device)
    base = torch.floor(src)
    frac = src - base
    idx = base.to(torch.int64)[:, None] + offsets  # (out, T)
    distance = frac[:, None] - offsets.to(torch.float64)
    weights = _triangle(distance) if mode == "bilinear" else _cubic(distance, a)
    # Replicate the border: taps past the edge read the edge pixel.
    return idx.clamp_(0, n_in - 1), weights


def _antialias_taps(n_in: int, n_out: int, mode: str, a: float, device):
    scale = n_in / n_out
    support = (1.0 if mode == "bilinear" else 2.0) * scale
    centre = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * scale
    first = torch.floor(centre - support + 0.5).clamp_min(0).to(torch.int64)
    last = torch.floor(centre + support + 0.5).clamp_max(n_in).to(torch.int64)  # exclusive
    n_taps = int((last - first).max().item())
    idx = first[:, None] + torch.arange(n_taps, device=device)
    inside = idx < last[:, None]
    x = (idx.to(torch.float64) + 0.5 - centre[:, None]) / scale
    weights = _triangle(x) if mode == "bilinear" else _cubic(x, a)
    weights = torch.where(inside, weights, torch.zeros_like(weights))
    weights = weights / weights.sum(-1, keepdim=True)
    return idx.clamp_(0, n_in - 1), weights


def _taps(n_in, n_out, mode, align, antialias, a, device):
    """Input indices ``(n_out, T)`` and float64 weights ``(n_out, T)`` of one axis."""
    if antialias and n_out < n_in:
        return _antialias_taps(n_in, n_out, mode, a, device)
    return _interpolating_taps(n_in, n_out, mode, align, a, device)


def _apply_taps(x: Tensor, idx: Tensor, weights: Tensor, dim: int) -> Tensor:
    """Resample ``x`` along ``dim`` (-1 or -2): ``out[.., d, ..] = sum_k w[d, k] x[.., idx[d, k], ..]``.

    Rows are gathered with ``index_select`` (contiguous copies); columns with ``gather``
    and an expanded index, which is several times faster than ``index_select`` along the
    last dimension.
    """
    out = None
    # One pass per tap (2 for bilinear, 4 for bicubic, ~2*support*scale with antialias).
    for k in range(idx.shape[1]):
        if dim == -2:
            term = x.index_select(-2, idx[:, k]) * weights[:, k, None]
        else:
            term = torch.gather(x, -1, idx[:, k].expand(*x.shape[:-1], -1)) * weights[:, k]
        out = term if out is None else out + term
    return out


def _resize_separable(x: Tensor, rows, cols) -> Tensor:
    """Apply height taps ``rows`` and width taps ``cols`` to float ``x (..., H, W)``."""
    (in_h, in_w), out_h, out_w = x.shape[-2:], rows[0].shape[0], cols[0].shape[0]
    taps_h, taps_w = rows[0].shape[1], cols[0].shape[1]
    # Shrink first: the second pass then works on the smaller intermediate image.
    if taps_h * out_h * in_w + taps_w * out_w * out_h <= taps_w * in_h * out_w + taps_h * out_h * out_w:
        return _apply_taps(_apply_taps(x, *rows, dim=-2), *cols, dim=-1)
    return _apply_taps(_apply_taps(x, *cols, dim=-1), *rows, dim=-2)


def resize(
    image: Tensor,
    size: tuple[int, int],
    *,
    mode: str = "bilinear",
    align: str = "half_pixel",
    antialias: bool = False,
    cubic_a: float = -0.75,
) -> Tensor:
    """Resize images with nearest, bilinear or bicubic interpolation.

    Equivalents (same output up to rounding; see the module docstring for conventions):

    * ``mode="nearest", align="half_pixel"``: ``cv2.INTER_NEAREST_EXACT``, torch
      ``"nearest-exact"``; ``align="asymmetric"``: ``cv2.INTER_NEAREST``, torch ``"nearest"``
      (both may differ by one pixel where a sample falls exactly between two pixels).
    * ``mode="bilinear"``: ``cv2.INTER_LINEAR`` and torch ``align_corners=False``
      (``"half_pixel"``), torch ``align_corners=True`` (``"align_corners"``).
    * ``mode="bicubic"``: ``cv2.INTER_CUBIC`` and torch ``"bicubic"`` (``a = -0.75``).
    * ``antialias=True`` (``"half_pixel"`` only): torch ``antialias=True`` when shrinking
      (pass ``cubic_a=-0.5`` for its bicubic, which follows PIL).

    Args:
        image: ``(..., H, W)``, e.g. ``(C, H, W)`` or ``(B, C, H, W)``; uint8 or float.
        size: output ``(height, width)``.
        mode: ``"nearest"``, ``"bilinear"`` or ``"bicubic"``.
        align: ``"half_pixel"``, ``"align_corners"`` or ``"asymmetric"``.
        antialias: low-pass filter axes that shrink (bilinear and bicubic only).
        cubic_a: the bicubic kernel's parameter.

    Returns:
        ``(..., height, width)`` in the input dtype. Integer results are rounded to nearest
        and saturated (bicubic overshoots); floats are computed in float32 (float64 for
        float64 input). Differentiable with respect to float images.
    """
    if not isinstance(image, Tensor) or image.dim() < 2:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a tensor of shape (..., H, W), got {shape}")
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ValueError(f"image must be uint8 or floating point, got {image.dtype}")
    try:
        out_h, out_w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    if antialias and mode == "nearest":
        raise ValueError("antialias applies to bilinear and bicubic modes only")
    if antialias and align != "half_pixel":
        raise ValueError("antialias is defined for align='half_pixel' only")
    if not math.isfinite(cubic_a):
        raise ValueError(f"cubic_a must be finite, got {cubic_a}")
    in_h, in_w = image.shape[-2:]
    if in_h == 0 or in_w == 0:
        raise ValueError(f"image must not be empty, got shape {tuple(image.shape)}")
    if image.numel() == 0:  # an empty batch; torch's kernels refuse zero channels
        return image.new_empty(*image.shape[:-2], out_h, out_w)

    device = image.device
    if mode == "nearest":
        # Pure indexing: exact for every dtype, no arithmetic on the values.
        rows = _nearest_indices(in_h, out_h, align, device)
        cols = _nearest_indices(in_w, out_w, align, device)
        out = image.index_select(-2, rows)
        return torch.gather(out, -1, cols.expand(*out.shape[:-1], -1))

    torch_kwargs = _torch_equivalent(mode, align, antialias, cubic_a, (in_h, in_w), (out_h, out_w))
    batch = image.shape[:-2]
    if torch_kwargs is not None and image.dtype == torch.uint8 and mode == "bilinear" and (out_h, out_w) != (1, 1):
        # torch's integer bilinear kernel rounds within one grey level of the float path.
        # (Its integer bicubic differs from float and from OpenCV by up to 25 grey levels
        # on noisy images, so bicubic stays in float. For a 1x1 output of 3 planes it fails
        # an internal assert, torch 2.14, so that one pixel is computed in float too.)
        x = F.interpolate(image.reshape(1, -1, in_h, in_w), (out_h, out_w), **torch_kwargs)
        return x.reshape(*batch, out_h, out_w)

    dtype = image.dtype if image.dtype in (torch.float32, torch.float64) else torch.float32
    x = image.to(dtype)
    if torch_kwargs is not None:
        # torch's fused kernel computes this very resize, several times faster.
        x = F.interpolate(x.reshape(1, -1, in_h, in_w), (out_h, out_w), **torch_kwargs)
        x = x.reshape(*batch, out_h, out_w)
    else:
        rows = _taps(in_h, out_h, mode, align, antialias, cubic_a, device)
        cols = _taps(in_w, out_w, mode, align, antialias, cubic_a, device)
        x = _resize_separable(x, (rows[0], rows[1].to(dtype)), (cols[0], cols[1].to(dtype)))
    if image.dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x.to(image.dtype)


def _torch_equivalent(mode, align, antialias, cubic_a, in_size, out_size) -> dict | None:
    """Arguments for ``F.interpolate`` that compute exactly this resize, or None.

    torch covers the half-pixel and align-corners conventions with a = -0.75, and, when
    every axis shrinks or keeps its size, antialiasing (with a = -0.5 for bicubic). The
    asymmetric convention, other kernel parameters, and antialiasing that mixes a
    shrinking and a growing axis run on the separable taps of this module.
    """
    if mode == "nearest" or align == "asymmetric":
        return None
    shrinks = any(o < i for i, o in zip(in_size, out_size))
    grows = any(o > i for i, o in zip(in_size, out_size))
    antialias = antialias and shrinks
    if antialias and grows:
        return None
    if mode == "bicubic" and cubic_a != (-0.5 if antialias else -0.75):
        return None
    return {"mode": mode, "align_corners": align == "align_corners", "antialias": antialias}
