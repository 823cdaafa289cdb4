"""Time cvpipe.geometry's resize and undistortion against OpenCV and torch, in the same run.

Baselines, each computing the same result (tests/geometry checks the parity):
* ``resize``: ``cv2.resize`` (HxWxC numpy) and ``torch.nn.functional.interpolate``; for the
  asymmetric convention and a = -0.5 bicubic, which torch lacks, the nearest torch call
  (half-pixel bilinear / bicubic) is timed as a reference for the cost of the taps path.
* ``undistort_points``: ``cv2.undistortPoints`` with its default 5 fixed-point steps (not
  converged for strong lenses) and run to convergence (1e-12 px).
* ``undistort_image``: ``cv2.undistort`` (builds its map every call, as ours does) and
  ``remap`` with a precomputed map against ``cv2.remap``.

Everything runs on one thread (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``) so
the numbers do not depend on what else the machine is doing with its other cores.

Run: ``python benchmarks/bench_resize.py`` (about half a minute on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, fmt_ms  # noqa: E402

from cvpipe.geometry import remap, resize, undistort_image, undistort_points, undistort_rectify_map  # noqa: E402


def row(name: str, ours: float, baselines: dict[str, float]) -> None:
    parts = [f"{name:<44} cvpipe {fmt_ms(ours):>10}"]
    for label, t in baselines.items():
        parts.append(f"{label} {fmt_ms(t):>10} (x{t / ours:.2f})")
    print("  ".join(parts))


def bench_resize(repeats: int) -> None:
    print("resize: 3-channel float32 and uint8 images; (xN) = baseline time / cvpipe time")
    g = torch.Generator().manual_seed(0)
    cases = [((1080, 1920), (540, 960)), ((480, 640), (960, 1280)), ((1080, 1920), (224, 224))]
    for (h, w), (oh, ow) in cases:
        x = torch.rand(3, h, w, generator=g)
        x8 = (x * 255).to(torch.uint8)
        xn, xn8 = x.permute(1, 2, 0).contiguous().numpy(), x8.permute(1, 2, 0).contiguous().numpy()
        tag = f"{h}x{w}->{oh}x{ow}"

        def t(fn):
            return best_time(fn, repeats=repeats)

        for mode, flag in [("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)]:
            row(
                f"{tag} {mode} float32",
                t(lambda: resize(x, (oh, ow), mode=mode)),
                {
                    "torch": t(lambda: F.interpolate(x[None], (oh, ow), mode=mode)),
                    "cv2": t(lambda: cv2.resize(xn, (ow, oh), interpolation=flag)),
                },
            )
            row(
                f"{tag} {mode} uint8",
                t(lambda: resize(x8, (oh, ow), mode=mode)),
                {
                    "torch": t(lambda: F.interpolate(x8[None], (oh, ow), mode=mode)),
                    "cv2": t(lambda: cv2.resize(xn8, (ow, oh), interpolation=flag)),
                },
            )
        row(
            f"{tag} nearest-exact uint8",
            t(lambda: resize(x8, (oh, ow), mode="nearest")),
            {
                "torch": t(lambda: F.interpolate(x8[None], (oh, ow), mode="nearest-exact")),
                "cv2": t(lambda: cv2.resize(xn8, (ow, oh), interpolation=cv2.INTER_NEAREST_EXACT)),
            },
        )
        if oh < h:
            row(
                f"{tag} bilinear antialias float32",
                t(lambda: resize(x, (oh, ow), antialias=True)),
                {"torch": t(lambda: F.interpolate(x[None], (oh, ow), mode="bilinear", antialias=True))},
            )
        # Taps path (no torch equivalent): timed against the closest torch call.
        row(
            f"{tag} bilinear asymmetric float32 [taps]",
            t(lambda: resize(x, (oh, ow), align="asymmetric")),
            {"torch half-pixel": t(lambda: F.interpolate(x[None], (oh, ow), mode="bilinear"))},
        )
        row(
            f"{tag} bicubic a=-0.5 float32 [taps]",
            t(lambda: resize(x, (oh, ow), mode="bicubic", cubic_a=-0.5)),
            {"torch a=-0.75": t(lambda: F.interpolate(x[None], (oh, ow), mode="bicubic"))},
        )


def bench_undistort(repeats: int) -> None:
    print("\nundistortion: 1920x1080 camera, f = 1400 px, k = (-0.3, 0.1, 5e-4, -5e-4, -0.02), float64 points")
    K = np.array([[1400.0, 0, 959.5], [0, 1400.0, 539.5], [0, 0, 1]])
    dist = np.array([-0.3, 0.1, 5e-4, -5e-4, -0.02])
    rng = np.random.default_rng(0)
    Kt, dt = torch.from_numpy(K), torch.from_numpy(dist)
    converged = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 1000, 1e-12)
    for n in (1_000, 100_000):
        pix = np.stack([rng.uniform(0, 1919, n), rng.uniform(0, 1079, n)], -1)
        pt = torch.from_numpy(pix)
        ours = best_time(lambda: undistort_points(pt, Kt, dt), repeats=repeats)
        five = best_time(lambda: cv2.undistortPoints(pix[:, None], K, dist), repeats=repeats)
        full = best_time(lambda: cv2.undistortPoints(pix[:, None], K, dist, criteria=converged), repeats=repeats)
        row(f"undistort_points n={n}", ours, {"cv2 5 steps": five, "cv2 converged": full})

    img = (torch.rand(3, 1080, 1920, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    imgn = img.permute(1, 2, 0).contiguous().numpy()
    Kf, df = Kt.float(), dt.float()
    row(
        "undistort_image 1080x1920 uint8 (map each call)",
        best_time(lambda: undistort_image(img, Kf, df), repeats=repeats),
        {"cv2.undistort": best_time(lambda: cv2.undistort(imgn, K, dist), repeats=repeats)},
    )
    mx, my = undistort_rectify_map(Kf, df, (1080, 1920))
    mxn, myn = mx.numpy(), my.numpy()
    row(
        "remap 1080x1920 uint8 (precomputed map)",
        best_time(lambda: remap(img, mx, my), repeats=repeats),
        {"cv2.remap": best_time(lambda: cv2.remap(imgn, mxn, myn, cv2.INTER_LINEAR), repeats=repeats)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    versions = f"torch {torch.__version__}, OpenCV {cv2.__version__}"
    print(f"{platform.machine()} {platform.processor() or ''}, {versions}, 1 thread\n")
    bench_resize(args.repeats)
    bench_undistort(args.repeats)


if __name__ == "__main__":
    main()
