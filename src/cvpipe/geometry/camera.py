"""The pinhole camera: intrinsics, projection with lens distortion, and back-projection.

Projection of a world point ``P_w`` (the notes, section 1):

    P_c = R P_w + t                     world -> camera (extrinsics, see ``rotation``)
    (x, y) = (X_c / Z_c, Y_c / Z_c)     camera -> normalised plane z = 1
    (x_d, y_d) = distort(x, y)          Brown-Conrady lens model, see ``distortion``
    u = fx x_d + s y_d + cx,  v = fy y_d + cy     intrinsics K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]

Pixel coordinates follow OpenCV: the centre of the top-left pixel is ``(0, 0)``, ``u`` grows
to the right and ``v`` downwards. (cvpipe's box convention puts the top-left *corner* of
that pixel at the origin; add 0.5 to go from these coordinates to that one.)

All functions broadcast over leading batch dimensions: points ``(..., N, 3)`` or
``(..., N, 2)`` against cameras ``K (..., 3, 3)``, ``dist (..., D)``, ``R (..., 3, 3)``,
``t (..., 3)``, so one call can project N points through B cameras. They work in float32
and float64 and are differentiable with respect to points and every camera parameter.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cvpipe.geometry.distortion import DEFAULT_MAX_ITERATIONS, distort, undistort_normalized
from cvpipe.geometry.rotation import camera_center, transform_points

__all__ = [
    "intrinsic_matrix",
    "intrinsic_matrix_from_fov",
    "field_of_view",
    "normalized_to_pixels",
    "pixels_to_normalized",
    "project_points",
    "undistort_points",
    "back_project",
    "pixel_rays",
]


def _check_K(K: Tensor) -> None:
    if not isinstance(K, Tensor) or K.dim() < 2 or tuple(K.shape[-2:]) != (3, 3):
        shape = tuple(K.shape) if isinstance(K, Tensor) else type(K).__name__
        raise ValueError(f"K must be a tensor of shape (..., 3, 3), got {shape}")
    if not K.is_floating_point():
        raise ValueError(f"K must be a floating-point tensor, got {K.dtype}")


def _check_points(points: Tensor, dim: int, name: str) -> None:
    if not isinstance(points, Tensor) or points.dim() < 2 or points.shape[-1] != dim:
        shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"{name} must be a tensor of shape (..., N, {dim}), got {shape}")
    if not points.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {points.dtype}")


def _intrinsics(K: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``fx, fy, cx, cy, skew`` of ``K (..., 3, 3)``, each ``(..., 1)`` to broadcast over N."""
    _check_K(K)
    return K[..., 0, 0, None], K[..., 1, 1, None], K[..., 0, 2, None], K[..., 1, 2, None], K[..., 0, 1, None]


def intrinsic_matrix(fx, fy, cx, cy, skew=0.0, *, dtype=None, device=None) -> Tensor:
    """Build ``K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]]``.

    Args:
        fx, fy: focal lengths in pixels; numbers or tensors of any broadcastable shape.
        cx, cy: principal point in pixels (pixel centres at integers).
        skew: axis skew, 0 for every modern sensor.
        dtype, device: of the result; by default those of the first tensor argument, or
            torch's default dtype on the CPU when all are numbers.

    Returns:
        ``(..., 3, 3)`` with ``...`` the broadcast shape of the arguments.
    """
    args = [fx, fy, cx, cy, skew]
    ref = next((a for a in args if isinstance(a, Tensor)), None)
    if dtype is None:
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.get_default_dtype()
    if device is None and ref is not None:
        device = ref.device
    fx, fy, cx, cy, skew = torch.broadcast_tensors(
        *[torch.as_tensor(a, dtype=dtype, device=device) for a in args]
    )
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [fx, skew, cx, zero, fy, cy, zero, zero, one]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def intrinsic_matrix_from_fov(
    fov_x, image_size: tuple[int, int], fov_y=None, *, degrees: bool = True, dtype=None, device=None
) -> Tensor:
    """Intrinsics of an ideal camera from its field of view.

    The field of view spans the full image, edge to edge: ``fx = (W / 2) / tan(fov_x / 2)``.
    The principal point is the image centre ``((W - 1) / 2, (H - 1) / 2)`` in pixel-centre
    coordinates. With ``fov_y`` omitted the pixels are square (``fy = fx``).

    Args:
        fov_x: horizontal field of view, number or tensor ``(...,)``.
        image_size: ``(height, width)`` in pixels.
        fov_y: vertical field of view, or None for square pixels.
        degrees: angles in degrees (default) or radians.

    Returns:
        ``(..., 3, 3)``.
    """
    height, width = _image_size(image_size)
    to_rad = math.pi / 180 if degrees else 1.0
    fov_x = torch.as_tensor(fov_x, dtype=dtype, device=device)
    if not fov_x.is_floating_point():
        fov_x = fov_x.to(torch.get_default_dtype())
    if bool(((fov_x * to_rad <= 0) | (fov_x * to_rad >= math.pi)).any()):
        raise ValueError(f"fov_x must lie strictly between 0 and 180 degrees (pi radians), got {fov_x}")
    fx = (width / 2) / torch.tan(fov_x * to_rad / 2)
    if fov_y is None:
        fy = fx
    else:
        fov_y = torch.as_tensor(fov_y, dtype=fx.dtype, device=fx.device)
        if bool(((fov_y * to_rad <= 0) | (fov_y * to_rad >= math.pi)).any()):
            raise ValueError(f"fov_y must lie strictly between 0 and 180 degrees (pi radians), got {fov_y}")
        fy = (height / 2) / torch.tan(fov_y * to_rad / 2)
    return intrinsic_matrix(fx, fy, (width - 1) / 2, (height - 1) / 2)


def field_of_view(K: Tensor, image_size: tuple[int, int], *, degrees: bool = True) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical field of view ``(...,)`` of intrinsics ``K`` (inverse of
    :func:`intrinsic_matrix_from_fov`, edge-to-edge, ignoring distortion)."""
    _check_K(K)
    height, width = _image_size(image_size)
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    scale = 180 / math.pi if degrees else 1.0
    return 2 * torch.atan(width / (2 * fx)) * scale, 2 * torch.atan(height / (2 * fy)) * scale


def _image_size(image_size) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return height, width


def normalized_to_pixels(xy: Tensor, K: Tensor) -> Tensor:
    """Normalised-plane points ``(..., N, 2)`` to pixels ``(..., N, 2)`` through ``K``."""
    _check_points(xy, 2, "xy")
    fx, fy, cx, cy, s = _intrinsics(K)
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([fx * x + s * y + cx, fy * y + cy], dim=-1)


def pixels_to_normalized(uv: Tensor, K: Tensor) -> Tensor:
    """Pixels ``(..., N, 2)`` to the normalised plane ``(..., N, 2)`` (``K^-1``, no distortion)."""
    _check_points(uv, 2, "uv")
    fx, fy, cx, cy, s = _intrinsics(K)
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - s * y) / fx
    return torch.stack([x, y], dim=-1)


def project_points(
    points: Tensor,
    K: Tensor,
    dist: Tensor | None = None,
    R: Tensor | None = None,
    t: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Project world points to pixels (``cv2.projectPoints`` with ``R = Rodrigues(rvec)``).

    Args:
        points: ``(..., N, 3)`` world points (camera-frame points if ``R`` and ``t`` are None).
        K: ``(..., 3, 3)`` intrinsics.
        dist: ``(..., 4|5|8)`` distortion coefficients or None.
        R: ``(..., 3, 3)`` world-to-camera rotation or None (identity).
        t: ``(..., 3)`` world-to-camera translation or None (zero).

    Returns:
        ``(uv, in_front)``: pixels ``(..., N, 2)`` and a bool mask ``(..., N)`` that is False
        for points at or behind the camera plane (``Z_c <= 0``). Their pixels are still the
        formula's output (mirrored through the centre), with ``Z_c = 0`` treated as 1 as
        OpenCV does; mask them before use.
    """
    _check_points(points, 3, "points")
    if R is not None:
        points = transform_points(points, R, t)
    elif t is not None:
        points = points + t[..., None, :]
    z = points[..., 2]
    in_front = z > 0
    z_safe = torch.where(z == 0, torch.ones_like(z), z)
    xy = points[..., :2] / z_safe[..., None]
    uv = normalized_to_pixels(distort(xy, dist), K)
    # K or dist may carry batch dimensions that the points do not: the mask follows uv.
    return uv, in_front.expand(uv.shape[:-1])


def undistort_points(
    uv: Tensor,
    K: Tensor,
    dist: Tensor | None,
    *,
    R: Tensor | None = None,
    new_K: Tensor | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tol: float | None = None,
) -> Tensor:
    """Remove lens distortion from observed pixels (``cv2.undistortPoints`` semantics).

    ``K^-1`` takes the pixels to the distorted normalised plane, Newton's method inverts
    the lens model (see :func:`~cvpipe.geometry.distortion.undistort_normalized` for the
    convergence guarantee and the iteration cap), then the optional rectifying rotation
    ``R`` is applied (``[X, Y, W] = R [x, y, 1]``, ``x = X / W``).

    Args:
        uv: ``(..., N, 2)`` distorted pixel coordinates.
        K: ``(..., 3, 3)`` intrinsics of the camera that took them.
        dist: ``(..., 4|5|8)`` distortion coefficients or None.
        R: ``(..., 3, 3)`` rectifying rotation or None.
        new_K: ``(..., 3, 3)`` intrinsics to re-project with, or None.

    Returns:
        ``(..., N, 2)``: normalised coordinates when ``new_K`` is None (as OpenCV with no
        ``P``), otherwise undistorted pixel coordinates in ``new_K``.
    """
    xy = undistort_normalized(pixels_to_normalized(uv, K), dist, max_iterations=max_iterations, tol=tol)
    if R is not None:
        ones = torch.ones_like(xy[..., :1])
        xyw = transform_points(torch.cat([xy, ones], dim=-1), R)
        xy = xyw[..., :2] / xyw[..., 2:]
    return xy if new_K is None else normalized_to_pixels(xy, new_K)


def back_project(
    uv: Tensor,
    depth: Tensor,
    K: Tensor,
    dist: Tensor | None = None,
    R: Tensor | None = None,
    t: Tensor | None = None,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> Tensor:
    """Lift pixels with known depth back to 3-D (the inverse of :func:`project_points`).

    ``P_c = Z (x, y, 1)`` with ``(x, y)`` the undistorted normalised coordinates, then
    ``P_w = R^T (P_c - t)`` when extrinsics are given.

    Args:
        uv: ``(..., N, 2)`` pixels.
        depth: ``(..., N)`` depth ``Z_c`` along the optical axis (not the distance to the
            optical centre; for that use :func:`pixel_rays`).
        K, dist: intrinsics ``(..., 3, 3)`` and distortion ``(..., D)`` or None.
        R, t: world-to-camera extrinsics or None; with both None the result stays in the
            camera frame.

    Returns:
        ``(..., N, 3)`` points in the world frame (camera frame without extrinsics).
    """
    if not isinstance(depth, Tensor) or depth.shape != uv.shape[:-1]:
        got = tuple(depth.shape) if isinstance(depth, Tensor) else type(depth).__name__
        raise ValueError(f"depth must have shape uv.shape[:-1] = {tuple(uv.shape[:-1])}, got {got}")
    xy = undistort_points(uv, K, dist, max_iterations=max_iterations)
    points = torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1) * depth[..., None]
    return _camera_to_world(points, R, t)


def pixel_rays(
    uv: Tensor,
    K: Tensor,
    dist: Tensor | None = None,
    R: Tensor | None = None,
    t: Tensor | None = None,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> tuple[Tensor, Tensor]:
    """Viewing rays through pixels: every point ``origin + s * direction``, ``s > 0``,
    projects to ``uv``.

    Args:
        uv: ``(..., N, 2)`` pixels.
        K, dist, R, t: as in :func:`back_project`.

    Returns:
        ``(origins, directions)``, both ``(..., N, 3)``: the optical centre and unit
        direction vectors, in the world frame (camera frame without extrinsics).
    """
    xy = undistort_points(uv, K, dist, max_iterations=max_iterations)
    rays = torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1)
    directions = rays / torch.linalg.vector_norm(rays, dim=-1, keepdim=True)
    if R is not None:
        directions = transform_points(directions, R.transpose(-1, -2))
    if R is None and t is None:
        origins = torch.zeros_like(directions)
    else:
        R_ = R if R is not None else torch.eye(3, dtype=uv.dtype, device=uv.device)
        t_ = t if t is not None else torch.zeros(3, dtype=uv.dtype, device=uv.device)
        origins, directions = torch.broadcast_tensors(camera_center(R_, t_)[..., None, :], directions)
    return origins, directions


def _camera_to_world(points: Tensor, R: Tensor | None, t: Tensor | None) -> Tensor:
    if t is not None:
        points = points - t[..., None, :]
    if R is not None:
        points = transform_points(points, R.transpose(-1, -2))
    return points
