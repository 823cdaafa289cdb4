"""Rotations and rigid poses: Rodrigues' formula both ways and 4x4 pose matrices.

Convention (as OpenCV): an extrinsic pose ``(R, t)`` maps world points into the camera
frame, ``P_cam = R @ P_world + t``; its 4x4 form is ``[[R, t], [0, 0, 0, 1]]``. A rotation
vector ``r`` is the rotation axis scaled by the angle in radians (``cv2.Rodrigues``).

Every function broadcasts over leading batch dimensions and is differentiable everywhere,
including the identity rotation (series expansions replace the 0/0 ratios there) and
half turns (the axis is read from the symmetric part of ``R``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "rotation_vector_to_matrix",
    "rotation_matrix_to_vector",
    "skew_matrix",
    "pose_matrix",
    "split_pose",
    "invert_pose",
    "transform_points",
    "camera_center",
]

# Below this squared angle the ratios sin(t)/t and (1 - cos t)/t^2 are evaluated by their
# Taylor series; the first omitted term is then < 1e-24, far under float64 resolution.
_SMALL_ANGLE_SQ = 1e-8


def _check_last(x: Tensor, shape: tuple[int, ...], name: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
        want = "x".join(map(str, shape))
        raise ValueError(f"{name} must have shape (..., {want}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")


def skew_matrix(v: Tensor) -> Tensor:
    """Cross-product matrix ``[v]_x`` with ``[v]_x @ w == cross(v, w)``.

    Args:
        v: ``(..., 3)``.

    Returns:
        ``(..., 3, 3)``.
    """
    _check_last(v, (3,), "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).unflatten(-1, (3, 3))


def rotation_vector_to_matrix(rvec: Tensor) -> Tensor:
    """Rodrigues' formula: rotation vector to rotation matrix (``cv2.Rodrigues`` forward).

    ``R = I + A [r]_x + B [r]_x^2`` with ``A = sin(t)/t`` and ``B = (1 - cos t)/t^2``,
    ``t = |r|``. ``B`` is computed as ``2 sin^2(t/2)/t^2``, which keeps full relative
    precision for small angles where ``1 - cos t`` cancels.

    Args:
        rvec: ``(..., 3)`` axis times angle in radians.

    Returns:
        ``(..., 3, 3)`` rotation matrices, same dtype and device as ``rvec``.
    """
    _check_last(rvec, (3,), "rvec")
    theta_sq = (rvec * rvec).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # Keep the unselected branch finite so that gradients through torch.where stay clean.
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    a = torch.where(small, 1 - theta_sq / 6 + theta_sq**2 / 120, torch.sin(theta) / theta)
    half_sinc = torch.sin(theta / 2) / theta
    b = torch.where(small, 0.5 - theta_sq / 24 + theta_sq**2 / 720, 2 * half_sinc**2)
    k = skew_matrix(rvec)
    eye = torch.eye(3, dtype=rvec.dtype, device=rvec.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def rotation_matrix_to_vector(R: Tensor) -> Tensor:
    """Inverse Rodrigues: rotation matrix to rotation vector (``cv2.Rodrigues`` backward).

    The angle is ``atan2(|v|, (trace R - 1)/2)`` with ``v`` the axial vector of the
    antisymmetric part (``v = sin(t) * axis``). Away from a half turn the vector is
    ``v * t / sin t``; near a half turn (``cos t < -0.5``), where ``v`` vanishes, the axis
    comes from the symmetric part ``(R + R^T)/2 - cos t I = (1 - cos t) axis axis^T`` and its
    sign from ``v``. The returned angle lies in ``[0, pi]``; at exactly ``pi`` both signs
    describe the same rotation and the one with a positive largest component is returned.

    ``R`` must be a rotation matrix; unlike ``cv2.Rodrigues`` no SVD re-orthogonalisation
    is done, so project noisy estimates first if needed.

    Args:
        R: ``(..., 3, 3)``.

    Returns:
        ``(..., 3)``.
    """
    _check_last(R, (3, 3), "R")
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    v = 0.5 * torch.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]],
        dim=-1,
    )
    sin_sq = (v * v).sum(-1)
    near_pi = cos < -0.5
    small = (sin_sq < _SMALL_ANGLE_SQ) & ~near_pi
    ones = torch.ones_like(sin_sq)
    # Unselected branches get harmless stand-in values so no inf/nan leaks into gradients.
    sin = torch.sqrt(torch.where(small | near_pi, ones, sin_sq))
    theta = torch.atan2(sin, cos)
    # t / sin t; near zero the series of asin(s)/s in s = sin t.
    ratio = torch.where(small, 1 + sin_sq / 6 + 3 * sin_sq**2 / 40, theta / sin)
    generic = v * ratio[..., None]

    # Half-turn branch: the column of the symmetric part with the largest diagonal entry.
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    sym = 0.5 * (R + R.transpose(-1, -2)) - cos[..., None, None] * eye
    diag = sym.diagonal(dim1=-2, dim2=-1)
    col = diag.argmax(-1, keepdim=True)  # (..., 1)
    column = torch.gather(sym, -1, col[..., None].expand(*sym.shape[:-1], 1)).squeeze(-1)
    pivot = torch.gather(diag, -1, col).squeeze(-1)
    denom = torch.where(near_pi, pivot * (1 - cos), ones).clamp_min(torch.finfo(R.dtype).tiny)
    axis = column / torch.sqrt(denom)[..., None]
    sign = torch.where((axis * v).sum(-1) < 0, -ones, ones)
    sin_pi = torch.sqrt(torch.where(near_pi, sin_sq, ones).clamp_min(torch.finfo(R.dtype).tiny))
    angle_pi = torch.atan2(sin_pi, cos)
    half_turn = axis * (sign * angle_pi)[..., None]

    return torch.where(near_pi[..., None], half_turn, generic)


def pose_matrix(R: Tensor, t: Tensor) -> Tensor:
    """Stack ``R (..., 3, 3)`` and ``t (..., 3)`` into 4x4 poses ``(..., 4, 4)``."""
    _check_last(R, (3, 3), "R")
    _check_last(t, (3,), "t")
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat([R.expand(*batch, 3, 3), t.expand(*batch, 3)[..., None]], dim=-1)
    bottom = torch.zeros(*batch, 1, 4, dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def split_pose(T: Tensor) -> tuple[Tensor, Tensor]:
    """Split 4x4 poses ``(..., 4, 4)`` into ``R (..., 3, 3)`` and ``t (..., 3)``."""
    _check_last(T, (4, 4), "T")
    return T[..., :3, :3], T[..., :3, 3]


def invert_pose(T: Tensor) -> Tensor:
    """Inverse of rigid 4x4 poses, ``[[R^T, -R^T t], [0, 1]]`` (exact, no matrix inverse)."""
    R, t = split_pose(T)
    Rt = R.transpose(-1, -2)
    return pose_matrix(Rt, -(Rt @ t[..., None])[..., 0])


def transform_points(points: Tensor, R: Tensor, t: Tensor | None = None) -> Tensor:
    """Apply ``R p + t`` to points.

    Args:
        points: ``(..., N, 3)``.
        R: ``(..., 3, 3)``, broadcast against the batch dimensions of ``points``.
        t: ``(..., 3)`` or None for a pure rotation.

    Returns:
        ``(..., N, 3)``.
    """
    _check_last(points, (3,), "points")
    _check_last(R, (3, 3), "R")
    out = points @ R.transpose(-1, -2)
    if t is not None:
        _check_last(t, (3,), "t")
        out = out + t[..., None, :]
    return out


def camera_center(R: Tensor, t: Tensor) -> Tensor:
    """World position of the optical centre of a camera with extrinsics ``(R, t)``: ``-R^T t``.

    Args:
        R: ``(..., 3, 3)``; t: ``(..., 3)``.

    Returns:
        ``(..., 3)``.
    """
    _check_last(R, (3, 3), "R")
    _check_last(t, (3,), "t")
    return -(R.transpose(-1, -2) @ t[..., None])[..., 0]
