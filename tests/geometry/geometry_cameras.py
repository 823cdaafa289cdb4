"""Random but realistic cameras for the geometry tests (numpy, so the oracle side is
independent of the code under test)."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Camera:
    K: np.ndarray  # (3, 3)
    dist: np.ndarray  # (4|5|8,)
    rvec: np.ndarray  # (3,)
    tvec: np.ndarray  # (3,)
    size: tuple[int, int]  # (height, width)

    @property
    def R(self) -> np.ndarray:
        import cv2

        return cv2.Rodrigues(self.rvec)[0]


def _distort(x, y, dist):
    """The Brown-Conrady model written out in numpy (an oracle independent of cvpipe)."""
    k1, k2, p1, p2 = dist[:4]
    k3 = dist[4] if len(dist) > 4 else 0.0
    k4, k5, k6 = dist[5:8] if len(dist) == 8 else (0.0, 0.0, 0.0)
    r2 = x * x + y * y
    g = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    return x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * g + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y


def _invertible_over_image(K, dist, size) -> bool:
    """Every pixel of the image must have a unique undistorted preimage.

    Along rays from the centre the distorted radius must grow monotonically (Jacobian
    determinant > 0) until it has passed the image corners with a 10% margin; a strong
    barrel lens that folds back before that cannot be undistorted at the corners.
    """
    height, width = size
    corners_x = (np.array([0, width - 1, 0, width - 1]) - K[0, 2]) / K[0, 0]
    corners_y = (np.array([0, 0, height - 1, height - 1]) - K[1, 2]) / K[1, 1]
    needed = 1.1 * np.hypot(corners_x, corners_y).max()
    r = np.linspace(0, 4, 801)[:, None]
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)[None]
    x, y = r * np.cos(angle), r * np.sin(angle)
    h = 1e-6
    ax, ay = _distort(x + h, y, dist)
    bx, by = _distort(x - h, y, dist)
    cx, cy = _distort(x, y + h, dist)
    dx, dy = _distort(x, y - h, dist)
    det = ((ax - bx) * (cy - dy) - (cx - dx) * (ay - by)) / (2 * h) ** 2
    xd, yd = _distort(x, y, dist)
    reach = np.hypot(xd, yd)
    for j in range(angle.shape[1]):
        bad = np.nonzero(det[:, j] <= 0.05)[0]
        limit = bad[0] if len(bad) else len(r) - 1
        if reach[limit, j] < needed:
            return False
    return True


def random_camera(rng: np.random.Generator, n_coeffs: int = 5, size=(48, 64)) -> Camera:
    """A plausible calibrated camera: 50-100 degree field of view, principal point near the
    centre, barrel or pincushion distortion of everyday lenses, a pose a few metres away."""
    height, width = size
    while True:
        fov = np.deg2rad(rng.uniform(50, 100))
        fx = width / 2 / np.tan(fov / 2)
        fy = fx * rng.uniform(0.97, 1.03)
        cx = (width - 1) / 2 + rng.uniform(-0.05, 0.05) * width
        cy = (height - 1) / 2 + rng.uniform(-0.05, 0.05) * height
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        dist = np.array(
            [
                rng.uniform(-0.4, 0.15),  # k1
                rng.uniform(-0.1, 0.2),  # k2
                rng.uniform(-2e-3, 2e-3),  # p1
                rng.uniform(-2e-3, 2e-3),  # p2
                rng.uniform(-0.05, 0.05),  # k3
                rng.uniform(-0.1, 0.1),  # k4
                rng.uniform(-0.05, 0.05),  # k5
                rng.uniform(-0.02, 0.02),  # k6
            ]
        )[:n_coeffs]
        if _invertible_over_image(K, dist, size):
            break
    rvec = rng.normal(size=3) * rng.uniform(0.1, 2.5) / np.sqrt(3)
    tvec = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(3, 6)])
    return Camera(K, dist, rvec, tvec, (height, width))


def points_in_view(rng: np.random.Generator, cam: Camera, n: int) -> np.ndarray:
    """World points ``(n, 3)`` in front of ``cam`` whose undistorted rays fall inside the
    image (about 90% of its half-width), at depths 1-10 m."""
    height, width = cam.size
    half_x = 0.9 * max(cam.K[0, 2], width - 1 - cam.K[0, 2]) / cam.K[0, 0]
    half_y = 0.9 * max(cam.K[1, 2], height - 1 - cam.K[1, 2]) / cam.K[1, 1]
    x = rng.uniform(-half_x, half_x, n)
    y = rng.uniform(-half_y, half_y, n)
    z = rng.uniform(1, 10, n)
    p_cam = np.stack([x * z, y * z, z], axis=-1)
    return (p_cam - cam.tvec) @ cam.R  # R^T (p - t), row-vector form
