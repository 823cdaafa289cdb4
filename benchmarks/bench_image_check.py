"""Time the pre-training image check (cvpipe.data.datasets.check_images) against a plain loop.

Every file must be decoded once before training so that truncated and corrupt files are
found up front. The baseline is what a script would write: ``Image.open(p).load()`` for each
file in turn (a full decode, no conversion, no EXIF). cvpipe does more per file (EXIF
orientation, mode conversion, decompression-bomb guard) but decodes JPEGs at 1/8 scale
(libjpeg's DCT scaling still reads every byte, so truncation is still caught) and spreads
the files over a thread pool (Pillow releases the GIL while decoding).

Rows: JPEG photos 1024x768 and PNG 256x256, generated smooth (so they compress like photos).
Run: ``python benchmarks/bench_image_check.py`` (under a minute on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, fmt_ms  # noqa: E402

from cvpipe.data.datasets import check_images  # noqa: E402
from cvpipe.data.image_io import check_image  # noqa: E402


def smooth_image(rng, height, width):
    """Low-frequency colour noise upsampled: compresses like a photo, not like static."""
    small = rng.random((height // 32 + 1, width // 32 + 1, 3)) * 255
    big = np.kron(small, np.ones((32, 32, 1)))[:height, :width]
    big += rng.normal(0, 6, big.shape)  # some texture
    return np.clip(big, 0, 255).astype(np.uint8)


def write_files(folder: Path, count: int, size, fmt: str) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:04d}.{fmt}"
        options = {"quality": 90} if fmt == "jpg" else {}
        Image.fromarray(smooth_image(rng, size[1], size[0])).save(path, **options)
        paths.append(str(path))
    return paths


def plain_loop(paths):
    for p in paths:
        with Image.open(p) as image:
            image.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150, help="files per format")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPU(s), torch {torch.__version__}, Pillow {Image.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, size in (("jpg", (1024, 768)), ("png", (256, 256))):
            folder = Path(tmp) / fmt
            folder.mkdir()
            paths = write_files(folder, args.count, size, fmt)
            ours = best_time(lambda: check_images(paths), repeats=args.repeats)
            ours_serial = best_time(lambda: [check_image(p) for p in paths], repeats=args.repeats)
            baseline = best_time(lambda: plain_loop(paths), repeats=args.repeats)
            label = f"{args.count} {fmt.upper()} {size[0]}x{size[1]}"
            print(
                f"{label:<22} plain open+load loop {fmt_ms(baseline):>9}   "
                f"cvpipe one thread {fmt_ms(ours_serial):>9} (x{baseline / ours_serial:.2f})   "
                f"cvpipe check_images {fmt_ms(ours):>9} (x{baseline / ours:.2f})"
            )


if __name__ == "__main__":
    main()
