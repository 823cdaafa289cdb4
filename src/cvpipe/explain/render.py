"""Saving class activation maps: overlay PNGs, raw ``.npy`` maps, grid figures and galleries."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from cvpipe.explain.cam import CamResult, Target, compute_cam
from cvpipe.viz import overlay_heatmap, save_image_grid, to_hwc_uint8


def display_images(inputs: torch.Tensor, display: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Images to draw maps on: ``display`` if given, else each input min-max scaled to [0, 1].

    inputs: (B, C, H, W) normalised model inputs. display: (B, C, H, W) uint8 or floats in [0, 1]
    showing exactly what the model saw (e.g. the denormalised inputs).
    """
    if display is not None:
        if display.shape[0] != inputs.shape[0] or display.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(f"display {tuple(display.shape)} must match inputs {tuple(inputs.shape)} in B, H, W")
        return display
    flat = inputs.detach().float().flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    return (inputs.detach().float() - low[:, None, None, None]) / (high - low + 1e-12)[:, None, None, None]


def overlays(display: torch.Tensor, maps: torch.Tensor, alpha: float = 0.5) -> list[np.ndarray]:
    """(B, C, H, W) images and (B, H, W) maps in [0, 1] -> B arrays (H, W, 3) uint8 (jet colormap)."""
    return [overlay_heatmap(display[i], maps[i].numpy(), alpha=alpha) for i in range(maps.shape[0])]


def cam_title(result: CamResult, i: int, class_names: Optional[Sequence[str]] = None) -> str:
    target = int(result.targets[i])
    name = class_names[target] if class_names is not None and target < len(class_names) else str(target)
    return f"{name} p={float(result.probs[i]):.2f}"


def save_cam_outputs(
    result: CamResult,
    display: torch.Tensor,
    out_dir: Union[str, Path],
    stems: Sequence[str],
    class_names: Optional[Sequence[str]] = None,
    alpha: float = 0.5,
) -> dict[str, list[Path]]:
    """Write ``{stem}_{method}.png`` overlays and ``{stem}_{method}.npy`` maps (float32, (H, W) in [0, 1]).

    Returns ``{"overlays": [...], "maps": [...]}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = result.method.replace("+", "p")
    written: dict[str, list[Path]] = {"overlays": [], "maps": []}
    for i, picture in enumerate(overlays(display, result.maps, alpha)):
        png = out_dir / f"{stems[i]}_{tag}.png"
        _write_png(picture, png)
        npy = out_dir / f"{stems[i]}_{tag}.npy"
        np.save(npy, result.maps[i].numpy().astype(np.float32))
        written["overlays"].append(png)
        written["maps"].append(npy)
    return written


def save_cam_grid(
    results: Sequence[CamResult],
    display: torch.Tensor,
    path: Union[str, Path],
    class_names: Optional[Sequence[str]] = None,
    row_titles: Optional[Sequence[str]] = None,
    alpha: float = 0.5,
) -> Path:
    """One figure: a row per image, the image then one overlay per method (one result per method)."""
    tiles, titles = [], []
    for i in range(display.shape[0]):
        tiles.append(to_hwc_uint8(display[i]))
        titles.append(row_titles[i] if row_titles is not None else f"image {i}")
        for result in results:
            tiles.append(overlay_heatmap(display[i], result.maps[i].numpy(), alpha=alpha))
            titles.append(f"{result.method}: {cam_title(result, i, class_names)}")
    return save_image_grid(tiles, path, titles=titles, ncols=1 + len(results), cell_inches=2.2)


def cam_gallery(
    model: nn.Module,
    inputs: torch.Tensor,
    path: Union[str, Path],
    display: Optional[torch.Tensor] = None,
    target: Target = None,
    titles: Optional[Sequence[str]] = None,
    class_names: Optional[Sequence[str]] = None,
    method: str = "gradcam",
    layers=None,
    ncols: Optional[int] = None,
    batch_size: int = 16,
) -> Path:
    """A grid PNG of CAM overlays, one tile per image (``cvpipe eval ... cam=N`` uses it).

    inputs: (B, C, H, W) normalised model inputs; display: the same images for drawing
    (uint8 or [0, 1] floats), defaults to the min-max scaled inputs. target: None explains each
    image's predicted class (for mistakes: why the model chose what it chose), or class
    index/name(s). titles: one per image; default "class p=prob". Returns ``path``.
    """
    if inputs.shape[0] == 0:
        raise ValueError("cam_gallery needs at least one image")
    display = display_images(inputs, display)
    targets = target if not isinstance(target, (list, tuple, torch.Tensor)) else list(
        target.tolist() if isinstance(target, torch.Tensor) else target
    )
    tiles, default_titles = [], []
    for start in range(0, inputs.shape[0], batch_size):
        chunk_target = targets[start : start + batch_size] if isinstance(targets, list) else targets
        result = compute_cam(model, inputs[start : start + batch_size], method, layers, chunk_target, class_names)
        tiles += overlays(display[start : start + batch_size], result.maps)
        default_titles += [cam_title(result, i, class_names) for i in range(result.maps.shape[0])]
    return save_image_grid(tiles, path, titles=list(titles) if titles is not None else default_titles, ncols=ncols)


def _write_png(picture: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, format="PNG")
