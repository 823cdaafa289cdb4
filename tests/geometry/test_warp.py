"""remap, undistortion maps and images, and the optimal new camera matrix, against OpenCV."""

import cv2
import numpy as np
import pytest
import torch
from geometry_cameras import random_camera
from torch.autograd import gradcheck

import cvpipe.geometry.warp as warp_module
from cvpipe.geometry import optimal_new_camera_matrix, remap, undistort_image, undistort_points, undistort_rectify_map

T = torch.from_numpy
SIZE = (48, 64)  # (height, width): small images keep the suite fast


def smooth_image(rng, size=SIZE, channels=3):
    """HxWxC float32 image in [0, 1] with structure at several scales but bounded slope."""
    img = rng.uniform(0, 1, (*size, channels)).astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def chw(img):
    return T(np.ascontiguousarray(img)).permute(2, 0, 1)


def hwc(t):
    return t.permute(1, 2, 0).numpy()


def test_undistort_rectify_map_matches_opencv(rng):
    for n_coeffs in (4, 5, 8):
        cam = random_camera(rng, n_coeffs, SIZE)
        new_K = cam.K.copy()
        new_K[:2] *= 0.9
        R = cv2.Rodrigues(np.array([0.01, -0.02, 0.015]))[0]
        height, width = SIZE
        for R_, P_ in [(None, cam.K), (R, new_K)]:
            mx, my = cv2.initUndistortRectifyMap(cam.K, cam.dist, R_, P_, (width, height), cv2.CV_32FC1)
            ours_x, ours_y = undistort_rectify_map(
                T(cam.K), T(cam.dist), SIZE, new_K=T(P_), R=None if R_ is None else T(R_)
            )
            # OpenCV stores the map in float32: ~4e-6 px resolution at these coordinates.
            np.testing.assert_allclose(ours_x.numpy(), mx, atol=2e-5, rtol=0)
            np.testing.assert_allclose(ours_y.numpy(), my, atol=2e-5, rtol=0)


@pytest.mark.parametrize(
    "mode,interpolation", [("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC), ("nearest", cv2.INTER_NEAREST)]
)
@pytest.mark.parametrize("padding,border", [("zeros", cv2.BORDER_CONSTANT), ("border", cv2.BORDER_REPLICATE)])
def test_remap_matches_opencv(rng, mode, interpolation, padding, border):
    img = smooth_image(rng)
    height, width = SIZE
    # Source coordinates that run past every border by up to two pixels.
    mx = rng.uniform(-2, width + 1, (30, 40)).astype(np.float32)
    my = rng.uniform(-2, height + 1, (30, 40)).astype(np.float32)
    if mode == "nearest":
        # Keep clear of exact ties, where float32 rounding of the grid could pick either side.
        mx, my = (np.where(np.abs(m - np.round(m) - 0.5) < 1e-3, m + 0.01, m) for m in (mx, my))
    expected = cv2.remap(img, mx, my, interpolation, borderMode=border, borderValue=0)
    ours = remap(chw(img), T(mx), T(my), mode=mode, padding=padding)
    assert ours.shape == (3, 30, 40) and ours.dtype == torch.float32
    np.testing.assert_allclose(hwc(ours), expected, atol=1e-5, rtol=0)

    img8 = (img * 255).round().astype(np.uint8)
    expected8 = cv2.remap(img8, mx, my, interpolation, borderMode=border, borderValue=0)
    ours8 = remap(chw(img8), T(mx), T(my), mode=mode, padding=padding)
    assert ours8.dtype == torch.uint8
    # Both sides round a float result to the nearest grey level; ties may break differently.
    assert np.abs(hwc(ours8).astype(int) - expected8).max() <= 1


def test_remap_batches_images_and_maps(rng):
    imgs = torch.stack([chw(smooth_image(rng)) for _ in range(2)])
    maps = T(rng.uniform(0, 40, (2, 2, 10, 12)))
    out = remap(imgs, maps[:, 0], maps[:, 1])
    assert out.shape == (2, 3, 10, 12)
    for b in range(2):
        torch.testing.assert_close(out[b], remap(imgs[b], maps[b, 0], maps[b, 1]))
    shared = remap(imgs, maps[0, 0], maps[0, 1])  # one map for the whole batch
    torch.testing.assert_close(shared[1], remap(imgs[1], maps[0, 0], maps[0, 1]))


def test_remap_gradients_flow_to_image_and_map(rng):
    img = torch.rand(2, 5, 6, dtype=torch.float64, requires_grad=True)
    mx = T(rng.uniform(0.1, 4.9, (3, 4))).requires_grad_()
    my = T(rng.uniform(0.1, 3.9, (3, 4))).requires_grad_()
    assert gradcheck(lambda i, x, y: remap(i, x, y), (img, mx, my))


def test_undistort_image_matches_opencv(rng):
    cam = random_camera(rng, 5, SIZE)
    img = smooth_image(rng)
    K, dist = T(cam.K), T(cam.dist)
    expected = cv2.undistort(img, cam.K, cam.dist)
    # cv2.undistort converts its map to 16-bit fixed point, sampling at 1/32 pixel
    # (INTER_TAB_SIZE = 32). Rounding our exact map the same way reproduces it to float32
    # precision, which shows the only difference is that quantisation.
    mx, my = undistort_rectify_map(K, dist, SIZE)
    quantised = remap(chw(img), torch.round(mx * 32) / 32, torch.round(my * 32) / 32)
    np.testing.assert_allclose(hwc(quantised), expected, atol=1e-5, rtol=0)
    # Unquantised, the values differ by at most (image slope) x (1/64 px in x and in y),
    # the slope including the step down to the zero padding.
    ours = undistort_image(chw(img), K, dist)
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)))
    slope = max(np.abs(np.diff(padded, axis=0)).max(), np.abs(np.diff(padded, axis=1)).max())
    assert np.abs(hwc(ours) - expected).max() <= 2 * slope / 64 + 1e-5

    img8 = (img * 255).round().astype(np.uint8)
    expected8 = cv2.undistort(img8, cam.K, cam.dist)
    ours8 = undistort_image(chw(img8), K.float(), dist.float())
    assert ours8.dtype == torch.uint8
    assert np.abs(hwc(ours8).astype(int) - expected8).max() <= 1 + np.ceil(255 * 2 * slope / 64)


def test_undistort_image_batched_over_cameras(rng):
    cams = [random_camera(rng, 5, SIZE) for _ in range(2)]
    imgs = torch.stack([chw(smooth_image(rng)) for _ in cams])
    K = T(np.stack([c.K for c in cams])).float()
    dist = T(np.stack([c.dist for c in cams])).float()
    out = undistort_image(imgs, K, dist)
    for b in range(2):
        torch.testing.assert_close(out[b], undistort_image(imgs[b], K[b], dist[b]))


def _opencv_inversion(criteria=None):
    """cv2.undistortPoints in place of ours (default: its own 5 fixed-point steps)."""

    def undistort(uv, K, dist, *, new_K=None, max_iterations=None):
        P = None if new_K is None else new_K.numpy()
        kwargs = {} if criteria is None else {"criteria": criteria}
        return T(cv2.undistortPoints(uv.numpy()[:, None], K.numpy(), dist.numpy(), P=P, **kwargs)[:, 0])

    return undistort


CONVERGED = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 1000, 1e-15)


@pytest.mark.parametrize("center", [False, True], ids=["fit", "centred"])
def test_optimal_new_camera_matrix_matches_opencv(rng, monkeypatch, center):
    """Equal to OpenCV up to OpenCV's unconverged inversion of the lens model.

    OpenCV measures the undistorted outline with 5 fixed-point steps. (1) With that very
    inversion substituted, the construction agrees with cv2.getOptimalNewCameraMatrix to
    round-off, ROI included. (2) With OpenCV's inversion run to convergence substituted,
    the result equals ours unpatched. So the only difference is the inversion error.
    """
    height, width = SIZE
    for _ in range(4):
        cam = random_camera(rng, 5, SIZE)
        for alpha, new_size in [(0.0, SIZE), (0.3, SIZE), (1.0, SIZE), (0.6, (40, 72))]:
            args = (T(cam.K), T(cam.dist), SIZE, alpha)
            kwargs = dict(new_size=new_size, center_principal_point=center)
            ours, our_roi = optimal_new_camera_matrix(*args, **kwargs)
            with monkeypatch.context() as patch:
                patch.setattr(warp_module, "undistort_points", _opencv_inversion())
                five_steps, five_steps_roi = optimal_new_camera_matrix(*args, **kwargs)
                patch.setattr(warp_module, "undistort_points", _opencv_inversion(CONVERGED))
                converged, _ = optimal_new_camera_matrix(*args, **kwargs)
            expected, roi = cv2.getOptimalNewCameraMatrix(
                cam.K, cam.dist, (width, height), alpha, (new_size[1], new_size[0]), center
            )
            np.testing.assert_allclose(five_steps.numpy(), expected, atol=1e-9, rtol=0)
            if center:
                # The centred ROI is ceil/floor of values whose limiting side lands exactly on
                # an integer by construction; OpenCV's result there depends on its round-off
                # (1e-15 either side), ours snaps to the integer. Allow that one pixel.
                assert np.abs(np.array(five_steps_roi.tolist()) - roi).max() <= 1
            else:
                assert tuple(five_steps_roi.tolist()) == tuple(roi)
            # (OpenCV's 5 steps can be pixels off at the corners of wide lenses, hence no
            # direct tolerance against it.)
            torch.testing.assert_close(ours, converged, atol=1e-6, rtol=0)


def test_optimal_new_camera_matrix_alpha_meaning(rng):
    """alpha = 0 keeps only valid pixels; alpha = 1 keeps every source pixel."""
    height, width = SIZE
    # The outline is sampled at 9 x 9 points (as OpenCV), so the guarantees hold between
    # samples up to a small fraction of a pixel.
    slack = 0.1
    s = torch.linspace(0, 1, 200, dtype=torch.float64)
    zeros, ones = torch.zeros_like(s), torch.ones_like(s)
    border = torch.cat(
        [torch.stack(p, -1) for p in [(s, zeros), (s, ones), (zeros, s), (ones, s)]]
    ) * torch.tensor([width - 1, height - 1], dtype=torch.float64)
    for _ in range(6):
        cam = random_camera(rng, 5, SIZE)
        K, dist = T(cam.K), T(cam.dist)
        new_K, _ = optimal_new_camera_matrix(K, dist, SIZE, 0.0)
        mx, my = undistort_rectify_map(K, dist, SIZE, new_K=new_K)
        assert mx.min() >= -slack and mx.max() <= width - 1 + slack
        assert my.min() >= -slack and my.max() <= height - 1 + slack
        new_K, _ = optimal_new_camera_matrix(K, dist, SIZE, 1.0)
        outline = undistort_points(border, K, dist, new_K=new_K)
        assert outline[:, 0].min() >= -slack and outline[:, 0].max() <= width - 1 + slack
        assert outline[:, 1].min() >= -slack and outline[:, 1].max() <= height - 1 + slack


def test_bad_arguments_raise_value_error():
    img = torch.zeros(3, 8, 8)
    grid = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="mode"):
        remap(img, grid, grid, mode="area")
    with pytest.raises(ValueError, match="padding"):
        remap(img, grid, grid, padding="reflect")
    with pytest.raises(ValueError, match="same shape"):
        remap(img, grid, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="image"):
        remap(torch.zeros(8, 8), grid, grid)
    with pytest.raises(ValueError, match="one map per image"):  # was a RuntimeError from expand
        remap(torch.zeros(2, 3, 8, 8), torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))
    assert remap(torch.zeros(2, 3, 8, 8), torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="alpha"):
        optimal_new_camera_matrix(torch.eye(3), None, (8, 8), 1.5)


def test_undistort_image_gradients_flow_to_image_and_camera(rng):
    cam = random_camera(rng, 5, (6, 8))
    img = torch.rand(2, 6, 8, dtype=torch.float64, requires_grad=True)
    K = T(cam.K).requires_grad_()
    dist = T(cam.dist).requires_grad_()
    assert gradcheck(lambda i, K, d: undistort_image(i, K, d), (img, K, dist))
