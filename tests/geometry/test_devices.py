"""Every geometry function runs on a CUDA device and agrees with the CPU there."""

import pytest
import torch

from cvpipe.geometry import (
    intrinsic_matrix,
    optimal_new_camera_matrix,
    project_points,
    remap,
    resize,
    rotation_matrix_to_vector,
    rotation_vector_to_matrix,
    undistort_image,
    undistort_points,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(0)
    K = intrinsic_matrix(60.0, 58.0, 31.5, 23.5, dtype=torch.float64)
    dist = torch.tensor([-0.25, 0.08, 1e-3, -1e-3, 0.01], dtype=torch.float64)
    rvec = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    t = torch.tensor([0.1, 0.0, 4.0], dtype=torch.float64)
    points = torch.rand(50, 3, generator=gen, dtype=torch.float64) - 0.5
    image = (torch.rand(2, 3, 48, 64, generator=gen) * 255).to(torch.uint8)

    def run(device):
        to = {"device": device}
        R = rotation_vector_to_matrix(rvec.to(**to))
        uv, _ = project_points(points.to(**to), K.to(**to), dist.to(**to), R, t.to(**to))
        maps = torch.rand(2, 10, 12, generator=torch.Generator().manual_seed(1)).to(**to) * 40
        return [
            rotation_matrix_to_vector(R),
            uv,
            undistort_points(uv, K.to(**to), dist.to(**to)),
            optimal_new_camera_matrix(K.to(**to), dist.to(**to), (48, 64), 0.5)[0],
            undistort_image(image.to(**to), K.float().to(**to), dist.float().to(**to)),
            remap(image.float().to(**to), maps[0], maps[1], mode="bicubic"),
            *[
                resize(image.float().to(**to), (31, 75), mode=mode, align=align)
                for mode in ("nearest", "bilinear", "bicubic")
                for align in ("half_pixel", "align_corners", "asymmetric")
            ],
            resize(image.to(**to), (20, 30), antialias=True),
        ]

    for cpu, cuda in zip(run("cpu"), run("cuda")):
        assert cuda.device.type == "cuda"
        if cpu.dtype == torch.uint8:
            assert (cpu.int() - cuda.cpu().int()).abs().max() <= 1
        else:
            torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=1e-5)
