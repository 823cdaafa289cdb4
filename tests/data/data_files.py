"""Helpers for the data tests: tiny real image files written with Pillow."""

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path, size=(6, 5), seed=0, mode="RGB", fmt=None) -> Path:
    """Write a small random image (width, height) to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, format=fmt)
    return path


def write_text(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

