"""The embedded default dataset: scikit-learn's handwritten digits as an image folder.

scikit-learn ships the UCI optical-digits test set inside its wheel (1,797 grey 8x8 images,
pixel values 0..16, ten classes), so cvpipe can train out of the box with no download. The
images are written once as PNG files, one folder per class, under the cache folder
(``$CVPIPE_CACHE``, else ``~/.cache/cvpipe``)::

    <cache>/digits-v1/0/0000.png   <- file name = index in sklearn.datasets.load_digits()
    <cache>/digits-v1/1/0001.png
    ...

and from then on they are read by the same dataset code as any user's folder. There is no
train/val subfolder: the configured seeded, stratified split applies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

DIGITS_FOLDER = "digits-v1"  # bump the suffix if the materialised form ever changes
NUM_DIGITS = 1797


def cache_dir() -> Path:
    """Where cvpipe keeps generated files: ``$CVPIPE_CACHE``, else ``~/.cache/cvpipe``."""
    configured = os.environ.get("CVPIPE_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "cvpipe"


def digits_root() -> Path:
    """The digits image folder, written on first use; safe when several processes race.

    Each process writes a complete copy into a private temporary folder and renames it into
    place; a rename is atomic, so the folder is either absent or complete. The loser of a
    race (two DDP ranks, two terminals) deletes its copy and uses the winner's.
    """
    root = cache_dir() / DIGITS_FOLDER
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{DIGITS_FOLDER}-", dir=root.parent))
    try:
        _write_digits(staging)
        try:
            os.rename(staging, root)
        except OSError:
            if not root.is_dir():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_digits(folder: Path) -> None:
    from sklearn.datasets import load_digits  # imported here: only needed once per machine

    digits = load_digits()
    # 0..16 -> 0..255; the values are integers, so the rounding is exact and reversible.
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    for label in range(10):
        (folder / str(label)).mkdir()
    for index, (image, label) in enumerate(zip(pixels, digits.target)):
        Image.fromarray(image).save(folder / str(int(label)) / f"{index:04d}.png")
