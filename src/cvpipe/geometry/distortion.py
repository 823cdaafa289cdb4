"""Brown–Conrady lens distortion on the normalised image plane (OpenCV's model).

A point ``(x, y)`` on the normalised plane (``z = 1`` in the camera frame), with
``r^2 = x^2 + y^2``, is moved to

    x_d = x g + 2 p1 x y + p2 (r^2 + 2 x^2)
    y_d = y g + p1 (r^2 + 2 y^2) + 2 p2 x y
    g   = (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)

(radial ``k``, tangential ``p``; the notes' five-coefficient model is ``k4 = k5 = k6 = 0``).
Coefficients are given in OpenCV's order ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])``, i.e. a
tensor ``(..., 4)``, ``(..., 5)`` or ``(..., 8)``; ``None`` means no distortion.

The inverse has no closed form. :func:`undistort_normalized` solves ``distort(p) = p_d``
by Newton's method with the analytic 2x2 Jacobian, which converges quadratically (OpenCV's
``undistortPoints`` uses a fixed-point iteration, 5 steps by default, which converges
linearly and stops well short of 1e-9 for strong lenses). Gradients are taken through the
solution by the implicit function theorem, not by unrolling the iterations.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["distort", "undistort_normalized", "distortion_jacobian"]

# Newton iterations are capped here; realistic lenses converge in 3-6.
DEFAULT_MAX_ITERATIONS = 20


class _Coeffs(NamedTuple):
    """Lens coefficients, each shaped to broadcast against the point coordinates."""

    k1: Tensor
    k2: Tensor
    p1: Tensor
    p2: Tensor
    k3: Tensor | None
    rational: tuple[Tensor, Tensor, Tensor] | None  # (k4, k5, k6)


def _coeffs(dist: Tensor, point_dims: int = 1) -> _Coeffs:
    """Split ``dist (..., D)`` into coefficients shaped ``(...,) + (1,) * point_dims``, to
    broadcast against points ``(..., N)`` (or an image grid ``(..., H, W)`` with 2)."""
    if not isinstance(dist, Tensor) or not dist.is_floating_point():
        raise ValueError(f"dist must be a floating-point torch.Tensor, got {dist!r:.60}")
    n = dist.shape[-1] if dist.dim() else 0
    if n not in (4, 5, 8):
        raise ValueError(
            "dist must have 4, 5 or 8 coefficients (k1, k2, p1, p2[, k3[, k4, k5, k6]]) in its "
            f"last dimension, got shape {tuple(dist.shape)}"
        )
    c = [dist[(..., i) + (None,) * point_dims] for i in range(n)]
    return _Coeffs(
        k1=c[0], k2=c[1], p1=c[2], p2=c[3],
        k3=c[4] if n >= 5 else None,
        rational=(c[5], c[6], c[7]) if n == 8 else None,
    )


def _check_points(xy: Tensor, name: str) -> None:
    if not isinstance(xy, Tensor) or xy.dim() < 1 or xy.shape[-1] != 2:
        shape = tuple(xy.shape) if isinstance(xy, Tensor) else type(xy).__name__
        raise ValueError(f"{name} must be a tensor of shape (..., N, 2), got {shape}")
    if not xy.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {xy.dtype}")


def _radial(r2: Tensor, c: _Coeffs) -> tuple[Tensor, Tensor]:
    """Radial factor ``g(r^2)`` and its derivative ``dg/d(r^2)``."""
    k3 = c.k3 if c.k3 is not None else torch.zeros_like(c.k1)
    num = 1 + r2 * (c.k1 + r2 * (c.k2 + r2 * k3))
    dnum = c.k1 + r2 * (2 * c.k2 + 3 * r2 * k3)
    if c.rational is None:
        return num, dnum
    k4, k5, k6 = c.rational
    den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
    dden = k4 + r2 * (2 * k5 + 3 * r2 * k6)
    return num / den, (dnum * den - num * dden) / (den * den)


def _distort_xy(x: Tensor, y: Tensor, c: _Coeffs) -> tuple[Tensor, Tensor]:
    r2 = x * x + y * y
    g, _ = _radial(r2, c)
    xy2 = 2 * x * y
    xd = x * g + c.p1 * xy2 + c.p2 * (r2 + 2 * x * x)
    yd = y * g + c.p1 * (r2 + 2 * y * y) + c.p2 * xy2
    return xd, yd


def _jacobian_xy(x: Tensor, y: Tensor, c: _Coeffs) -> tuple[Tensor, Tensor, Tensor]:
    """Entries ``(j11, j12 = j21, j22)`` of d(x_d, y_d)/d(x, y); the matrix is symmetric."""
    r2 = x * x + y * y
    g, dg = _radial(r2, c)
    j11 = g + 2 * x * x * dg + 2 * c.p1 * y + 6 * c.p2 * x
    j12 = 2 * x * y * dg + 2 * c.p1 * x + 2 * c.p2 * y
    j22 = g + 2 * y * y * dg + 6 * c.p1 * y + 2 * c.p2 * x
    return j11, j12, j22


def distort(xy: Tensor, dist: Tensor | None) -> Tensor:
    """Apply lens distortion to points on the normalised plane.

    Args:
        xy: ``(..., N, 2)`` undistorted normalised coordinates ``(X/Z, Y/Z)``.
        dist: ``(..., 4|5|8)`` coefficients ``(k1, k2, p1, p2[, k3[, k4, k5, k6]])`` whose
            batch dimensions broadcast against those of ``xy``; None for no distortion.

    Returns:
        ``(..., N, 2)`` distorted normalised coordinates.
    """
    _check_points(xy, "xy")
    if dist is None:
        return xy
    xd, yd = _distort_xy(xy[..., 0], xy[..., 1], _coeffs(dist))
    return torch.stack([xd, yd], dim=-1)


def distortion_jacobian(xy: Tensor, dist: Tensor) -> Tensor:
    """Jacobian of :func:`distort` with respect to the point, ``(..., N, 2, 2)``.

    ``J[..., i, j] = d xy_d[i] / d xy[j]``; its determinant is positive wherever the lens
    model is locally invertible.
    """
    _check_points(xy, "xy")
    j11, j12, j22 = _jacobian_xy(xy[..., 0], xy[..., 1], _coeffs(dist))
    return torch.stack([j11, j12, j12, j22], dim=-1).unflatten(-1, (2, 2))


def _residual(x, y, xd, yd, c):
    fx, fy = _distort_xy(x, y, c)
    return fx - xd, fy - yd


def _newton_direction(x, y, fx, fy, c):
    """The Newton step ``J^-1 f`` (to subtract), and whether ``J`` was usable.

    Where the Jacobian determinant is not positive (beyond the fold of the lens model)
    OpenCV's fixed-point update ``x <- (x_d - tangential(x)) / g(x)`` is used instead,
    written here as the step ``f / g``.
    """
    j11, j12, j22 = _jacobian_xy(x, y, c)
    det = j11 * j22 - j12 * j12
    ok = det > 1e-12
    det = torch.where(ok, det, torch.ones_like(det))
    g, _ = _radial(x * x + y * y, c)
    g = torch.where(g.abs() > 1e-12, g, torch.ones_like(g))
    dx = torch.where(ok, (j22 * fx - j12 * fy) / det, fx / g)
    dy = torch.where(ok, (j11 * fy - j12 * fx) / det, fy / g)
    return dx, dy, ok


def undistort_normalized(
    xy_distorted: Tensor,
    dist: Tensor | None,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tol: float | None = None,
) -> Tensor:
    """Invert :func:`distort`: find ``xy`` with ``distort(xy, dist) == xy_distorted``.

    Newton's method from ``xy = xy_distorted`` with the analytic Jacobian, stopping when
    every residual ``|distort(xy) - xy_distorted|`` is at most ``tol`` or after
    ``max_iterations`` steps. For realistic lenses (the model invertible over the image)
    float64 reaches ``tol = 1e-12`` in 3-6 steps, well inside the cap of 20; the error in
    ``xy`` is then below 1e-9.

    Steps are damped (halved until the residual does not grow), so the iteration never
    diverges. A point with no preimage, e.g. beyond the radius where a strong barrel
    model folds back, cannot converge: it is returned where the residual was smallest,
    and OpenCV returns an unconverged value there too. Check ``distort(result)`` against
    the input if such points can occur.

    Gradients with respect to ``xy_distorted`` and ``dist`` come from the implicit function
    theorem (``d xy = -J^-1 d residual``), evaluated by one final Newton step taken with
    autograd enabled; the loop itself runs without building a graph.

    Args:
        xy_distorted: ``(..., N, 2)`` distorted normalised coordinates.
        dist: ``(..., 4|5|8)`` coefficients, or None (returns the input).
        max_iterations: cap on Newton steps (>= 1), the final differentiable one included.
        tol: residual tolerance on the normalised plane; default ``1e-12`` for float64 and
            ``8 * eps`` (about 1e-6) for lower precision.

    Returns:
        ``(..., N, 2)`` undistorted normalised coordinates.
    """
    _check_points(xy_distorted, "xy_distorted")
    if dist is None:
        return xy_distorted
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    if tol is None:
        tol = 1e-12 if xy_distorted.dtype == torch.float64 else 8 * torch.finfo(xy_distorted.dtype).eps
    c = _coeffs(dist)
    xd, yd = xy_distorted[..., 0], xy_distorted[..., 1]
    shape = torch.broadcast_shapes(xd.shape, c.k1.shape)

    with torch.no_grad():
        c0 = _Coeffs(*[None if v is None else _detach(v) for v in c])
        xd0, yd0 = xd.detach(), yd.detach()
        x, y = xd0.expand(shape).clone(), yd0.expand(shape).clone()
        fx, fy = _residual(x, y, xd0, yd0, c0)
        err = fx * fx + fy * fy
        for _ in range(max_iterations - 1):  # the last step is the one below, with autograd
            if err.numel() == 0 or err.max().item() <= tol * tol:
                break
            dx, dy, _ = _newton_direction(x, y, fx, fy, c0)
            step = torch.ones_like(x)
            pending = torch.ones_like(x, dtype=torch.bool)
            for _halving in range(8):
                xn, yn = x - step * dx, y - step * dy
                fxn, fyn = _residual(xn, yn, xd0, yd0, c0)
                errn = fxn * fxn + fyn * fyn
                accept = pending & (errn <= err)  # False for nan/inf as well
                x, y = torch.where(accept, xn, x), torch.where(accept, yn, y)
                fx, fy = torch.where(accept, fxn, fx), torch.where(accept, fyn, fy)
                err = torch.where(accept, errn, err)
                pending &= ~accept
                if not pending.any():
                    break
                step = torch.where(pending, step / 2, step)

    # Implicit-function gradient: at a root, one Newton step with (x, y) held constant has
    # derivative -J^-1 d(residual)/d(inputs), exactly the derivative of the root. Points
    # that did not reach a root (their Newton step is not small) are left where they are.
    fx, fy = _residual(x, y, xd, yd, c)
    dx, dy, ok = _newton_direction(x, y, fx, fy, c)
    near_root = ok & ((dx * dx + dy * dy).detach() <= 1e-2)
    x = x - torch.where(near_root, dx, torch.zeros_like(dx))
    y = y - torch.where(near_root, dy, torch.zeros_like(dy))
    return torch.stack([x, y], dim=-1)


def _detach(v):
    return tuple(t.detach() for t in v) if isinstance(v, tuple) else v.detach()
