"""Rodrigues' formula and poses against cv2.Rodrigues and plain matrix algebra."""

import cv2
import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from cvpipe.geometry import (
    camera_center,
    invert_pose,
    pose_matrix,
    rotation_matrix_to_vector,
    rotation_vector_to_matrix,
    skew_matrix,
    split_pose,
    transform_points,
)


def random_rotation_vectors(rng, n, low, high):
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(low, high, size=(n, 1))


def test_rotation_vector_to_matrix_matches_opencv(rng):
    rvecs = random_rotation_vectors(rng, 64, 0.0, np.pi)
    ours = rotation_vector_to_matrix(torch.from_numpy(rvecs)).numpy()
    for r, R in zip(rvecs, ours):
        np.testing.assert_allclose(R, cv2.Rodrigues(r)[0], atol=1e-14)


def test_rotation_matrix_to_vector_matches_opencv(rng):
    # OpenCV returns exactly zero below sin(angle) = 1e-5 and switches formula near pi, so
    # the parity range stops short of both ends; those ends are checked by round trips below.
    rvecs = random_rotation_vectors(rng, 64, 1e-4, np.pi - 1e-4)
    mats = np.stack([cv2.Rodrigues(r)[0] for r in rvecs])
    ours = rotation_matrix_to_vector(torch.from_numpy(mats)).numpy()
    expected = np.stack([cv2.Rodrigues(R)[0][:, 0] for R in mats])
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    np.testing.assert_allclose(ours, rvecs, atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-7, 1e-4, 1.0, 2.5, np.pi - 1e-4, np.pi - 1e-8, np.pi])
def test_round_trip_across_the_angle_range(rng, angle):
    rvecs = random_rotation_vectors(rng, 16, angle, angle)
    R = rotation_vector_to_matrix(torch.from_numpy(rvecs))
    back = rotation_matrix_to_vector(R)
    # The rotation is recovered to machine precision; at exactly pi, r and -r are the same
    # rotation so the matrices are compared rather than the vectors.
    torch.testing.assert_close(rotation_vector_to_matrix(back), R, atol=1e-12, rtol=0)
    if angle < np.pi - 1e-6:
        torch.testing.assert_close(back, torch.from_numpy(rvecs), atol=1e-10, rtol=0)
    assert torch.all(torch.linalg.vector_norm(back, dim=-1) <= np.pi + 1e-12)


def test_rotation_matrices_are_orthonormal_in_float32(rng):
    r = torch.from_numpy(random_rotation_vectors(rng, 32, 0, 3.0)).float()
    R = rotation_vector_to_matrix(r)
    assert R.dtype == torch.float32
    eye = torch.eye(3).expand(32, 3, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(32), atol=1e-6, rtol=0)
    torch.testing.assert_close(rotation_matrix_to_vector(R), r, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "rvec",
    [[0.0, 0.0, 0.0], [1e-6, -2e-6, 5e-7], [0.3, 2.0, -1.0], [0.0, 0.1, np.pi - 0.05]],
    ids=["identity", "tiny", "generic", "near-half-turn"],
)
def test_rodrigues_gradients(rvec):
    r = torch.tensor(rvec, dtype=torch.float64, requires_grad=True)
    assert gradcheck(rotation_vector_to_matrix, (r,))
    R = rotation_vector_to_matrix(r.detach()).requires_grad_()
    assert gradcheck(rotation_matrix_to_vector, (R,))


def test_skew_matrix_is_the_cross_product(rng):
    v, w = torch.from_numpy(rng.normal(size=(2, 10, 3)))
    torch.testing.assert_close((skew_matrix(v) @ w[..., None])[..., 0], torch.linalg.cross(v, w))


def test_poses_compose_invert_and_transform(rng):
    R = rotation_vector_to_matrix(torch.from_numpy(random_rotation_vectors(rng, 5, 0, 3)))
    t = torch.from_numpy(rng.normal(size=(5, 3)))
    T = pose_matrix(R, t)
    assert T.shape == (5, 4, 4)
    torch.testing.assert_close(T[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(5, 4))
    R2, t2 = split_pose(T)
    torch.testing.assert_close(R2, R)
    torch.testing.assert_close(t2, t)
    torch.testing.assert_close(invert_pose(T), torch.linalg.inv(T))
    points = torch.from_numpy(rng.normal(size=(5, 7, 3)))
    homogeneous = torch.cat([points, torch.ones(5, 7, 1, dtype=torch.float64)], -1)
    expected = (homogeneous @ T.transpose(-1, -2))[..., :3]
    torch.testing.assert_close(transform_points(points, R, t), expected)
    # The optical centre is the world point that lands on the camera origin.
    c = camera_center(R, t)
    torch.testing.assert_close(transform_points(c[:, None], R, t)[:, 0], torch.zeros(5, 3, dtype=torch.float64))


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="rvec"):
        rotation_vector_to_matrix(torch.zeros(4))
    with pytest.raises(ValueError, match="R"):
        rotation_matrix_to_vector(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="floating"):
        rotation_vector_to_matrix(torch.zeros(3, dtype=torch.int64))
