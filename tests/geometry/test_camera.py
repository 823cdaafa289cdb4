"""The pinhole camera against OpenCV's calib3d (projectPoints, undistortPoints)."""

import math

import cv2
import numpy as np
import pytest
import torch
from geometry_cameras import points_in_view, random_camera
from torch.autograd import gradcheck

from cvpipe.geometry import (
    back_project,
    distort,
    field_of_view,
    intrinsic_matrix,
    intrinsic_matrix_from_fov,
    normalized_to_pixels,
    pixel_rays,
    project_points,
    rotation_vector_to_matrix,
    undistort_normalized,
    undistort_points,
)

T = torch.from_numpy
# OpenCV's undistortPoints stops after 5 fixed-point steps by default; run it to convergence
# so that both sides compute the exact inverse.
CONVERGED = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 1000, 1e-15)


def torch_camera(cam, dtype=torch.float64):
    return (
        T(cam.K).to(dtype),
        T(cam.dist).to(dtype),
        rotation_vector_to_matrix(T(cam.rvec)).to(dtype),
        T(cam.tvec).to(dtype),
    )


def pixels_in_image(rng, cam, n):
    height, width = cam.size
    return np.stack([rng.uniform(0, width - 1, n), rng.uniform(0, height - 1, n)], axis=-1)


@pytest.mark.parametrize("n_coeffs", [4, 5, 8])
def test_project_points_matches_opencv(rng, n_coeffs):
    for _ in range(10):
        cam = random_camera(rng, n_coeffs)
        world = points_in_view(rng, cam, 50)
        expected, _ = cv2.projectPoints(world, cam.rvec, cam.tvec, cam.K, cam.dist)
        uv, in_front = project_points(T(world), *torch_camera(cam))
        assert in_front.all()
        np.testing.assert_allclose(uv.numpy(), expected[:, 0], atol=1e-6, rtol=0)


def test_project_points_float32_is_close_to_opencv(rng):
    cam = random_camera(rng, 5)
    world = points_in_view(rng, cam, 50)
    expected, _ = cv2.projectPoints(world, cam.rvec, cam.tvec, cam.K, cam.dist)
    uv, _ = project_points(T(world).float(), *torch_camera(cam, torch.float32))
    assert uv.dtype == torch.float32
    # float32 carries ~7 significant digits; pixel values are ~1e2 here.
    np.testing.assert_allclose(uv.numpy(), expected[:, 0], atol=1e-3, rtol=0)


def test_project_points_batched_over_cameras_equals_one_at_a_time(rng):
    cams = [random_camera(rng, 5) for _ in range(3)]
    world = T(points_in_view(rng, cams[0], 20))
    K, dist, R, t = (torch.stack(x) for x in zip(*(torch_camera(c) for c in cams)))
    uv, in_front = project_points(world, K, dist, R, t)  # N points through B cameras
    assert uv.shape == (3, 20, 2) and in_front.shape == (3, 20)
    for b, cam in enumerate(cams):
        single, _ = project_points(world, *torch_camera(cam))
        torch.testing.assert_close(uv[b], single, rtol=0, atol=1e-12)


def test_in_front_mask_has_the_shape_of_the_pixels(rng):
    # Cameras that differ only in K or dist still give one mask row per camera, so that
    # uv[in_front] works whichever camera parameters carry the batch dimension.
    cams = [random_camera(rng, 5) for _ in range(3)]
    points = T(rng.uniform(-1, 1, (6, 3)) + [0, 0, 5])  # camera frame, all in front...
    points[0, 2] = -1.0  # ...but one
    K, dist, _, _ = (torch.stack(x) for x in zip(*(torch_camera(c) for c in cams)))
    for args in [(K,), (K[0], dist), (K[:, None], dist[:, None])]:
        uv, in_front = project_points(points, *args)
        assert in_front.shape == uv.shape[:-1]
        assert not in_front[..., 0].any() and in_front[..., 1:].all()
        assert uv[in_front].shape == (in_front.sum(), 2)


def test_points_behind_the_camera_are_flagged():
    K = intrinsic_matrix(100.0, 100.0, 50.0, 40.0, dtype=torch.float64)
    points = torch.tensor([[0.1, 0.2, 2.0], [0.1, 0.2, -2.0], [0.3, 0.0, 0.0]], dtype=torch.float64)
    uv, in_front = project_points(points, K)
    assert in_front.tolist() == [True, False, False]
    assert torch.isfinite(uv).all()
    torch.testing.assert_close(uv[0], torch.tensor([55.0, 50.0], dtype=torch.float64))


def test_skew_enters_the_projection_as_in_the_matrix_form(rng):
    # OpenCV's projectPoints ignores skew, so the oracle is Z (u, v, 1) = K P directly.
    K = intrinsic_matrix(300.0, 310.0, 160.0, 120.0, skew=4.0, dtype=torch.float64)
    points = T(rng.uniform(-1, 1, (10, 3)) + [0, 0, 5])
    uv, _ = project_points(points, K)
    homogeneous = points @ K.T
    torch.testing.assert_close(uv, homogeneous[:, :2] / homogeneous[:, 2:])
    xy = undistort_points(uv, K, None)
    torch.testing.assert_close(xy, points[:, :2] / points[:, 2:])


def test_intrinsics_from_field_of_view():
    K = intrinsic_matrix_from_fov(90.0, (480, 640), dtype=torch.float64)
    expected = torch.tensor([[320.0, 0, 319.5], [0, 320.0, 239.5], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(K, expected)
    # A point on the image's left edge (pixel -0.5) lies 45 degrees off axis.
    uv, _ = project_points(torch.tensor([[-1.0, 0.0, 1.0]], dtype=torch.float64), K)
    torch.testing.assert_close(uv[0, 0], torch.tensor(-0.5, dtype=torch.float64))
    fovs = torch.tensor([40.0, 75.0, 120.0], dtype=torch.float64)
    K = intrinsic_matrix_from_fov(fovs, (300, 400), fov_y=fovs / 2)
    fov_x, fov_y = field_of_view(K, (300, 400))
    torch.testing.assert_close(fov_x, fovs)
    torch.testing.assert_close(fov_y, fovs / 2)
    K = intrinsic_matrix_from_fov(math.pi / 2, (480, 640), degrees=False)
    assert K[0, 0].item() == pytest.approx(320.0)
    with pytest.raises(ValueError, match="fov_x"):
        intrinsic_matrix_from_fov(180.0, (480, 640))


@pytest.mark.parametrize("n_coeffs", [4, 5, 8])
def test_undistort_points_matches_converged_opencv(rng, n_coeffs):
    for _ in range(10):
        cam = random_camera(rng, n_coeffs)
        pix = pixels_in_image(rng, cam, 100)
        expected = cv2.undistortPoints(pix[:, None], cam.K, cam.dist, criteria=CONVERGED)[:, 0]
        ours = undistort_points(T(pix), T(cam.K), T(cam.dist))
        # Compare in pixels: the normalised difference scaled by the focal length.
        np.testing.assert_allclose(ours.numpy() * cam.K[0, 0], expected * cam.K[0, 0], atol=1e-6, rtol=0)


def test_undistort_points_with_rectification_and_new_camera(rng):
    cam = random_camera(rng, 5)
    pix = pixels_in_image(rng, cam, 100)
    R = cv2.Rodrigues(np.array([0.02, -0.03, 0.01]))[0]
    P = cam.K.copy()
    P[0, 0] *= 0.8
    P[1, 1] *= 0.8
    P[0, 2] += 3
    expected = cv2.undistortPoints(pix[:, None], cam.K, cam.dist, R=R, P=P, criteria=CONVERGED)[:, 0]
    ours = undistort_points(T(pix), T(cam.K), T(cam.dist), R=T(R), new_K=T(P))
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6, rtol=0)


def test_undistort_converges_to_1e9_within_the_iteration_cap(rng):
    # Realistic lenses need 3-5 Newton steps; the default cap is 20. Six steps must reach
    # 1e-9 on the normalised plane, for points out to the image corners.
    for _ in range(20):
        cam = random_camera(rng, 5)
        xy = T(points_in_view(rng, cam, 200) @ cam.R.T + cam.tvec)
        xy = xy[:, :2] / xy[:, 2:]
        distorted = distort(xy, T(cam.dist))
        recovered = undistort_normalized(distorted, T(cam.dist), max_iterations=6)
        assert (recovered - xy).abs().max().item() <= 1e-9
    # OpenCV's default of 5 fixed-point steps does not get there for a strong lens, which is
    # why the inversion is Newton's method.
    K = np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])
    dist = np.array([-0.4, 0.15, 0.0, 0.0, -0.03])
    xy = T(np.array([[0.6, 0.45], [-0.55, 0.4]]))
    distorted = distort(xy, T(dist))
    opencv = cv2.undistortPoints(normalized_to_pixels(distorted, T(K)).numpy()[:, None], K, dist)[:, 0]
    assert np.abs(opencv - xy.numpy()).max() > 1e-6
    assert (undistort_normalized(distorted, T(dist)) - xy).abs().max() <= 1e-12


def test_undistort_in_float32(rng):
    cam = random_camera(rng, 5)
    pix = pixels_in_image(rng, cam, 100)
    expected = cv2.undistortPoints(pix[:, None], cam.K, cam.dist, criteria=CONVERGED)[:, 0]
    ours = undistort_points(T(pix).float(), T(cam.K).float(), T(cam.dist).float())
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=0)


def test_project_then_back_project_with_depth_returns_the_points(rng):
    for n_coeffs in (4, 5, 8):
        cam = random_camera(rng, n_coeffs)
        world = T(points_in_view(rng, cam, 100))
        K, dist, R, t = torch_camera(cam)
        uv, _ = project_points(world, K, dist, R, t)
        in_camera = world @ R.T + t
        back = back_project(uv, in_camera[:, 2], K, dist, R, t)
        torch.testing.assert_close(back, world, rtol=0, atol=1e-9)
        # Without extrinsics the same pixels come back in the camera frame.
        torch.testing.assert_close(back_project(uv, in_camera[:, 2], K, dist), in_camera, rtol=0, atol=1e-9)


def test_pixel_rays_pass_through_the_points(rng):
    cam = random_camera(rng, 5)
    world = T(points_in_view(rng, cam, 50))
    K, dist, R, t = torch_camera(cam)
    uv, _ = project_points(world, K, dist, R, t)
    origins, directions = pixel_rays(uv, K, dist, R, t)
    torch.testing.assert_close(torch.linalg.vector_norm(directions, dim=-1), torch.ones(50, dtype=torch.float64))
    to_point = world - origins
    # The ray points at the world point: parallel, same direction.
    torch.testing.assert_close(torch.linalg.cross(directions, to_point), torch.zeros_like(to_point), atol=1e-9, rtol=0)
    assert ((directions * to_point).sum(-1) > 0).all()
    # Without extrinsics the rays start at the origin of the camera frame.
    origins, _ = pixel_rays(uv, K, dist)
    assert (origins == 0).all()


def test_gradients_flow_to_points_and_every_camera_parameter(rng):
    cams = [random_camera(rng, 5) for _ in range(2)]
    world = T(points_in_view(rng, cams[0], 3))
    K = T(np.stack([c.K for c in cams]))
    dist = T(np.stack([c.dist for c in cams]))
    rvec = T(np.stack([c.rvec for c in cams]))
    tvec = T(np.stack([c.tvec for c in cams]))

    def project(points, K, dist, rvec, tvec):
        return project_points(points, K, dist, rotation_vector_to_matrix(rvec), tvec)[0]

    inputs = [x.clone().requires_grad_() for x in (world, K, dist, rvec, tvec)]
    assert gradcheck(project, inputs)

    uv = project(world, K, dist, rvec, tvec).detach()
    depth = torch.rand(2, 3, dtype=torch.float64) + 1

    def lift(uv, depth, K, dist, rvec, tvec):
        return back_project(uv, depth, K, dist, rotation_vector_to_matrix(rvec), tvec)

    inputs = [x.clone().requires_grad_() for x in (uv, depth, K, dist, rvec, tvec)]
    assert gradcheck(lift, inputs)
    inputs = [x.clone().requires_grad_() for x in (uv, K, dist)]
    assert gradcheck(lambda uv, K, dist: pixel_rays(uv, K, dist)[1], inputs)


def test_undistort_gradient_is_the_inverse_jacobian(rng):
    # d undistort / d xy_d must be the inverse of d distort / d xy at the solution.
    cam = random_camera(rng, 8)
    xy = T(rng.uniform(-0.4, 0.4, (5, 2)))
    dist = T(cam.dist)
    distorted = distort(xy, dist).requires_grad_()
    jac = torch.autograd.functional.jacobian(lambda p: undistort_normalized(p, dist), distorted)
    jac = torch.stack([jac[i, :, i, :] for i in range(5)])
    forward = torch.autograd.functional.jacobian(lambda p: distort(p, dist), xy)
    forward = torch.stack([forward[i, :, i, :] for i in range(5)])
    torch.testing.assert_close(jac @ forward, torch.eye(2, dtype=torch.float64).expand(5, 2, 2), atol=1e-10, rtol=0)


def test_bad_arguments_raise_value_error():
    K = intrinsic_matrix(100.0, 100.0, 50.0, 40.0)
    with pytest.raises(ValueError, match="points"):
        project_points(torch.zeros(5, 2), K)
    with pytest.raises(ValueError, match="K"):
        project_points(torch.zeros(5, 3), torch.eye(4))
    with pytest.raises(ValueError, match="dist"):
        project_points(torch.zeros(5, 3), K, torch.zeros(6))
    with pytest.raises(ValueError, match="depth"):
        back_project(torch.zeros(5, 2), torch.ones(4), K)
    with pytest.raises(ValueError, match="max_iterations"):
        undistort_points(torch.zeros(5, 2), K, torch.zeros(5), max_iterations=0)


def test_points_without_a_preimage_stay_finite_and_do_not_diverge():
    # This barrel model folds back at r ~ 1.4 where the distorted radius peaks at ~0.9;
    # distorted points beyond that radius have no preimage at all.
    dist = torch.tensor([-0.36, 0.158, 0.0, 0.0, -0.035], dtype=torch.float64)
    distorted = torch.tensor([[0.5, 0.3], [0.8, 0.7], [1.2, -0.9]], dtype=torch.float64)
    out = undistort_normalized(distorted, dist)
    assert torch.isfinite(out).all()
    residual = (distort(out, dist) - distorted).norm(dim=-1)
    assert residual[0] < 1e-12  # the reachable point converges
    start = (distort(distorted, dist) - distorted).norm(dim=-1)
    assert (residual[1:] <= start[1:]).all() and (residual[1:] > 1e-3).all()
    assert (out.norm(dim=-1) < 3).all()
