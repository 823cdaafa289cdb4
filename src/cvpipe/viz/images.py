"""Image grids and heat-map overlays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import matplotlib
import numpy as np
import torch

from cvpipe.viz.figures import new_figure, save_figure


def to_hwc_uint8(image: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """(C, H, W) or (H, W) tensor/array, uint8 or float in [0, 1] -> (H, W, 3) uint8 RGB."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def overlay_heatmap(image, heatmap, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """Blend a heat map over an image.

    image: anything :func:`to_hwc_uint8` accepts, (H, W) after conversion.
    heatmap: (H, W) floats in [0, 1], same size as the image.
    Returns (H, W, 3) uint8: ``(1 - alpha) * image + alpha * colormap(heatmap)``.
    """
    rgb = to_hwc_uint8(image).astype(np.float32) / 255.0
    heat = np.asarray(heatmap.detach().cpu() if isinstance(heatmap, torch.Tensor) else heatmap, dtype=np.float32)
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap shape {heat.shape} differs from image shape {rgb.shape[:2]}")
    colored = matplotlib.colormaps[colormap](np.clip(heat, 0.0, 1.0))[..., :3].astype(np.float32)
    blend = (1.0 - alpha) * rgb + alpha * colored
    return (np.clip(blend, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image_grid(
    images: Sequence,
    path: Union[str, Path],
    titles: Optional[Sequence[str]] = None,
    ncols: Optional[int] = None,
    cell_inches: float = 2.0,
    suptitle: str = "",
) -> Path:
    """Save images (anything :func:`to_hwc_uint8` accepts) as one PNG grid with optional titles."""
    n = len(images)
    if n == 0:
        raise ValueError("save_image_grid needs at least one image")
    ncols = ncols or min(n, max(1, math.ceil(math.sqrt(n))))
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, size=(cell_inches * ncols, cell_inches * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_hwc_uint8(images[i]), interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)
