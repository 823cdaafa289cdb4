"""Image warping through a per-pixel map, and undistortion of whole images.

``remap(image, map_x, map_y)[..., i, j] = image[..., map_y[i, j], map_x[i, j]]`` sampled
between pixels (``cv2.remap``). Maps hold absolute source coordinates with pixel centres
at integers (OpenCV's convention, the camera module's too).

Undistorting an image is a remap whose map is computed once per camera: every pixel of the
*undistorted* output is taken back through the new intrinsics to the normalised plane,
distorted, and sent through the original intrinsics, giving the place to sample in the
distorted input (``cv2.initUndistortRectifyMap``). Precompute the map with
:func:`undistort_rectify_map` and reuse it for every frame of a video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cvpipe.geometry.camera import _check_K, _image_size, _intrinsics, undistort_points
from cvpipe.geometry.distortion import DEFAULT_MAX_ITERATIONS, _coeffs, _distort_xy

__all__ = ["remap", "undistort_rectify_map", "undistort_image", "optimal_new_camera_matrix"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border")


def _check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a tensor of shape (C, H, W) or (B, C, H, W), got {shape}")
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ValueError(f"image must be uint8 or floating point, got {image.dtype}")


def _compute_dtype(image: Tensor) -> torch.dtype:
    return image.dtype if image.dtype in (torch.float32, torch.float64) else torch.float32


def _restore_dtype(out: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(dtype)


def remap(
    image: Tensor,
    map_x: Tensor,
    map_y: Tensor,
    *,
    mode: str = "bilinear",
    padding: str = "zeros",
) -> Tensor:
    """Sample ``image`` at the coordinates of a map (``cv2.remap`` with float maps).

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)``, uint8 or float.
        map_x, map_y: ``(H', W')`` or ``(B, H', W')`` source x (column) and y (row)
            coordinates, pixel centres at integers; ``B`` is the image batch size or 1.
        mode: ``"bilinear"`` (``INTER_LINEAR``), ``"nearest"`` (``INTER_NEAREST``, ties to
            even) or ``"bicubic"`` (``INTER_CUBIC``, Keys kernel with a = -0.75).
        padding: value of taps outside the image: ``"zeros"`` (``BORDER_CONSTANT`` with 0)
            or ``"border"`` (``BORDER_REPLICATE``).

    Returns:
        ``(C, H', W')`` or ``(B, C, H', W')`` with the dtype of ``image`` (uint8 results are
        rounded to nearest and saturated). Differentiable with respect to float images and
        to the maps.
    """
    _check_image(image)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if not isinstance(map_x, Tensor) or not isinstance(map_y, Tensor) or map_x.shape != map_y.shape:
        raise ValueError("map_x and map_y must be tensors of the same shape (H', W') or (B, H', W')")
    if map_x.dim() not in (2, 3):
        raise ValueError(f"maps must have shape (H', W') or (B, H', W'), got {tuple(map_x.shape)}")
    unbatched = image.dim() == 3
    if unbatched and map_x.dim() == 3:
        raise ValueError("batched maps (B, H', W') need a batched image (B, C, H, W)")
    if map_x.dim() == 3 and map_x.shape[0] not in (1, image.shape[0]):
        raise ValueError(
            f"batched maps {tuple(map_x.shape)} need one map per image of the batch {tuple(image.shape)} (or B = 1)"
        )
    dtype = _compute_dtype(image)
    x = image.unsqueeze(0) if unbatched else image
    x = x.to(dtype)
    height, width = x.shape[-2:]
    # grid_sample with align_corners=False puts pixel i at normalised (2 i + 1) / size - 1;
    # unlike the align_corners=True form this stays defined for one-pixel-wide images.
    gx = (2 * map_x.to(dtype) + 1) / width - 1
    gy = (2 * map_y.to(dtype) + 1) / height - 1
    grid = torch.stack([gx, gy], dim=-1)
    if grid.dim() == 3:
        grid = grid.unsqueeze(0)
    grid = grid.expand(x.shape[0], *grid.shape[1:])
    out = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)
    out = out[0] if unbatched else out
    return _restore_dtype(out, image.dtype)


def undistort_rectify_map(
    K: Tensor,
    dist: Tensor | None,
    image_size: tuple[int, int],
    *,
    new_K: Tensor | None = None,
    R: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The undistortion (and optional rectification) map (``cv2.initUndistortRectifyMap``).

    Output pixel ``(u, v)`` is taken to ``[X, Y, W] = (new_K R)^-1 [u, v, 1]``, to the plane
    point ``(X / W, Y / W)``, distorted, and projected by ``K``.

    Args:
        K: ``(..., 3, 3)`` intrinsics of the distorted camera.
        dist: ``(..., 4|5|8)`` distortion coefficients or None.
        image_size: ``(height, width)`` of the undistorted output.
        new_K: ``(..., 3, 3)`` intrinsics of the output; default ``K`` (see
            :func:`optimal_new_camera_matrix` for the usual choices).
        R: ``(..., 3, 3)`` rectifying rotation, default identity.

    Returns:
        ``(map_x, map_y)``, each ``(..., H, W)`` in the dtype of ``K``, for :func:`remap`.
    """
    _check_K(K)
    height, width = _image_size(image_size)
    new_K = K if new_K is None else new_K
    _check_K(new_K)
    inv = torch.linalg.inv(new_K if R is None else new_K @ R)
    u = torch.arange(width, dtype=K.dtype, device=K.device)
    v = torch.arange(height, dtype=K.dtype, device=K.device)[:, None]

    # Computed per coordinate with broadcasting rather than as an (H*W, 3) matrix product:
    # fewer passes over memory for the same numbers.
    def row(i):  # (X, Y, W)[i] = inv[i] . (u, v, 1), broadcast over the grid: (..., H, W)
        return inv[..., i, 0, None, None] * u + inv[..., i, 1, None, None] * v + inv[..., i, 2, None, None]

    w = row(2)
    x, y = row(0) / w, row(1) / w
    if dist is not None:
        x, y = _distort_xy(x, y, _coeffs(dist, point_dims=2))
    fx, fy, cx, cy, skew = (t[..., None] for t in _intrinsics(K))  # (..., 1, 1)
    return fx * x + skew * y + cx, fy * y + cy


def undistort_image(
    image: Tensor,
    K: Tensor,
    dist: Tensor | None,
    *,
    new_K: Tensor | None = None,
    mode: str = "bilinear",
) -> Tensor:
    """Remove lens distortion from an image (``cv2.undistort``).

    Builds the map with :func:`undistort_rectify_map` and applies :func:`remap` with zero
    padding. For a video, build the map once and call :func:`remap` per frame instead.
    OpenCV converts the map to fixed point and samples at 1/32 pixel; this samples at the
    exact coordinates, so the two differ by at most the image slope times 1/64 pixel.

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)``, uint8 or float.
        K: ``(3, 3)`` intrinsics, or ``(B, 3, 3)`` for a batch of cameras.
        dist: ``(4|5|8,)`` or ``(B, 4|5|8)`` distortion coefficients.
        new_K: intrinsics of the result, default ``K``.
        mode: interpolation, as in :func:`remap`.

    Returns:
        The undistorted image, same shape and dtype.
    """
    _check_image(image)
    map_x, map_y = undistort_rectify_map(K, dist, tuple(image.shape[-2:]), new_K=new_K)
    return remap(image, map_x, map_y, mode=mode)


def _undistorted_rectangles(K, dist, image_size, new_K):
    """Inner and outer rectangles of the undistorted image outline, as ``(x0, y0, x1, y1)``.

    A 9 x 9 grid of points spanning the distorted image (its outer rows and columns trace
    the border) is undistorted. The outer rectangle bounds all of them; the inner one is
    bounded by the innermost point of each side, so it contains only valid pixels.
    """
    height, width = image_size
    n = 9
    steps = torch.arange(n, dtype=K.dtype, device=K.device) / (n - 1)
    gy, gx = torch.meshgrid(steps * (height - 1), steps * (width - 1), indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).reshape(-1, 2)
    pts = undistort_points(grid, K, dist, new_K=new_K, max_iterations=DEFAULT_MAX_ITERATIONS)
    pts = pts.unflatten(-2, (n, n))  # (..., row, col, 2)
    x, y = pts[..., 0], pts[..., 1]
    outer = torch.stack([x.amin((-2, -1)), y.amin((-2, -1)), x.amax((-2, -1)), y.amax((-2, -1))], -1)
    inner = torch.stack(
        [x[..., :, 0].amax(-1), y[..., 0, :].amax(-1), x[..., :, -1].amin(-1), y[..., -1, :].amin(-1)], -1
    )
    return inner, outer


def optimal_new_camera_matrix(
    K: Tensor,
    dist: Tensor | None,
    image_size: tuple[int, int],
    alpha: float,
    *,
    new_size: tuple[int, int] | None = None,
    center_principal_point: bool = False,
) -> tuple[Tensor, Tensor]:
    """Choose the intrinsics of the undistorted image (``cv2.getOptimalNewCameraMatrix``).

    Undistortion bends the straight image border: barrel distortion pulls the corners out,
    so an undistorted image with the original ``K`` both loses the corners and shows
    empty (black) areas along the edges. The new focal length and principal point trade
    these off with ``alpha``:

    * ``alpha = 0``: zoom in until every output pixel maps inside the source image (no
      black areas; some source pixels are cropped).
    * ``alpha = 1``: zoom out until every source pixel is kept (black areas appear).
    * in between: linear interpolation of the two cameras.

    The undistorted outline is measured on a 9 x 9 grid of points, as OpenCV does; this
    function inverts the distortion to convergence, whereas OpenCV stops after 5
    fixed-point steps, so with strong lenses the two differ by OpenCV's inversion error.
    With ``center_principal_point`` the principal point is put at the output centre and
    ``fx``, ``fy`` are scaled by the same factor (a symmetric crop).

    Args:
        K: ``(..., 3, 3)``; dist: ``(..., 4|5|8)`` or None.
        image_size: ``(height, width)`` of the distorted source.
        alpha: free scaling in ``[0, 1]``.
        new_size: ``(height, width)`` of the undistorted output, default ``image_size``.
        center_principal_point: see above.

    Returns:
        ``(new_K, roi)``: ``new_K (..., 3, 3)``; ``roi (..., 4)`` int64 ``(x, y, w, h)`` of
        the rectangle of the output that holds only valid pixels, clipped to the output.
    """
    _check_K(K)
    size = _image_size(image_size)
    out_h, out_w = _image_size(new_size) if new_size is not None else size
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    alpha = float(alpha)
    if center_principal_point:
        inner, outer = _undistorted_rectangles(K, dist, size, K)
        cx0, cy0 = K[..., 0, 2], K[..., 1, 2]
        cx, cy = (out_w - 1) * 0.5, (out_h - 1) * 0.5
        # Scale that makes the principal point's distance to each side of the rectangle fit
        # the output's half-size: the largest over sides for the inner one (fill), the
        # smallest for the outer one (keep all).
        def scales(rect):
            return torch.stack(
                [
                    cx / (cx0 - rect[..., 0]),
                    cy / (cy0 - rect[..., 1]),
                    cx / (rect[..., 2] - cx0),
                    cy / (rect[..., 3] - cy0),
                ],
                dim=-1,
            )

        s = scales(inner).amax(-1) * (1 - alpha) + scales(outer).amin(-1) * alpha
        new_K = K.clone()
        new_K[..., 0, 0] = K[..., 0, 0] * s
        new_K[..., 1, 1] = K[..., 1, 1] * s
        new_K[..., 0, 1] = K[..., 0, 1] * s
        new_K[..., 0, 2] = cx
        new_K[..., 1, 2] = cy
        # The inner rectangle zoomed about the principal point, shrunk to whole pixels. The
        # limiting side lands on the image edge by construction, so round-off must not push
        # it to the next integer: values within 1e-6 of an integer are snapped to it first.
        x0 = _ceil((inner[..., 0] - cx0) * s + cx)
        y0 = _ceil((inner[..., 1] - cy0) * s + cy)
        w = _floor((inner[..., 2] - inner[..., 0]) * s)
        h = _floor((inner[..., 3] - inner[..., 1]) * s)
    else:
        # In normalised coordinates the rectangles fix the camera: map a rectangle onto
        # the viewport [0, W' - 1] x [0, H' - 1].
        inner, outer = _undistorted_rectangles(K, dist, size, None)

        def fit(rect):
            fx = (out_w - 1) / (rect[..., 2] - rect[..., 0])
            fy = (out_h - 1) / (rect[..., 3] - rect[..., 1])
            return torch.stack([fx, fy, -fx * rect[..., 0], -fy * rect[..., 1]], -1)

        fx, fy, cx, cy = (fit(inner) * (1 - alpha) + fit(outer) * alpha).unbind(-1)
        zero = torch.zeros_like(fx)
        new_K = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, torch.ones_like(fx)], -1)
        new_K = new_K.unflatten(-1, (3, 3))
        inner, _ = _undistorted_rectangles(K, dist, size, new_K)
        # Corner and size rounded separately, as OpenCV converts a Rect_<double> to a Rect.
        x0, y0 = torch.round(inner[..., 0]), torch.round(inner[..., 1])
        w, h = torch.round(inner[..., 2] - inner[..., 0]), torch.round(inner[..., 3] - inner[..., 1])
    return new_K, _clip_roi(x0, y0, w, h, out_w, out_h)


def _snap(x: Tensor) -> Tensor:
    nearest = torch.round(x)
    return torch.where((x - nearest).abs() < 1e-6, nearest, x)


def _ceil(x: Tensor) -> Tensor:
    return torch.ceil(_snap(x))


def _floor(x: Tensor) -> Tensor:
    return torch.floor(_snap(x))


def _clip_roi(x: Tensor, y: Tensor, w: Tensor, h: Tensor, width: int, height: int) -> Tensor:
    """Integer rectangle ``(x, y, w, h)`` intersected with the image; empty -> all zeros."""
    x0, y0 = x.clamp(0, width), y.clamp(0, height)
    w, h = (x + w).clamp(0, width) - x0, (y + h).clamp(0, height) - y0
    roi = torch.stack([x0, y0, w, h], -1)
    empty = ((w <= 0) | (h <= 0))[..., None]
    return torch.where(empty, torch.zeros_like(roi), roi).to(torch.int64)
