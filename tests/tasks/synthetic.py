"""Small learnable image datasets written as real files, in each supported layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 70, 220)}


def shape_image(label: str, rng: np.random.Generator, size: int = 24) -> Image.Image:
    """A noisy background with a square whose colour is the class."""
    img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    s = int(rng.integers(size // 3, size // 2))
    x, y = (int(v) for v in rng.integers(0, size - s, size=2))
    img[y : y + s, x : x + s] = COLOURS[label]
    return Image.fromarray(img)


def quadrant_image(labels: list[int], rng: np.random.Generator, size: int = 24) -> Image.Image:
    """Multi-label: label k present <=> a bright square in quadrant k."""
    img = rng.integers(0, 50, size=(size, size, 3), dtype=np.uint8)
    h = size // 2
    corners = [(0, 0), (0, h), (h, 0)]
    for k in labels:
        y, x = corners[k]
        img[y + 2 : y + h - 2, x + 2 : x + h - 2] = (230, 230, 230)
    return Image.fromarray(img)


def folder_dataset(root: Path, per_class: int = 24, seed: int = 0) -> Path:
    """root/<class>/*.png (no split folders: the seeded stratified split applies)."""
    rng = np.random.default_rng(seed)
    for label in COLOURS:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(label, rng).save(root / label / f"{label}_{i}.png")
    return root


def labelfile_dataset(root: Path, per_class: int = 24, seed: int = 1) -> Path:
    """root/images/*.jpg plus root/labels.csv with a header (file,label)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = ["file,label"]
    for label in COLOURS:
        for i in range(per_class):
            name = f"{label[0]}{i:03d}.jpg"
            shape_image(label, rng).save(root / "images" / name, quality=95)
            lines.append(f"{name},{label}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def multilabel_dataset(root: Path, n: int = 96, seed: int = 2) -> Path:
    """One label .txt per image with multi-hot lines such as ``1 0 1``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        hot = rng.integers(0, 2, size=3)
        if hot.sum() == 0:
            hot[i % 3] = 1
        quadrant_image([k for k in range(3) if hot[k]], rng).save(root / f"img{i:03d}.png")
        (root / f"img{i:03d}.txt").write_text(" ".join(str(int(v)) for v in hot) + "\n")
    return root
