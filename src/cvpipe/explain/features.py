"""Feature maps: capture any layer's output by name and draw its strongest channels.

A channel's *energy* is the mean of its squared activations; the grid shows the input, the
channel-mean map and the top-k channels by energy, each upsampled bilinearly to the input size
and min-max scaled on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvpipe.errors import ConfigError
from cvpipe.explain.hooks import LayerCapture, LayerSpec, eval_mode, find_patch_size, resolve_layers, to_spatial
from cvpipe.viz import overlay_heatmap, save_image_grid, to_hwc_uint8


@dataclass
class LayerInfo:
    name: str
    type: str
    output_shape: Optional[tuple[int, ...]]  # None when the layer did not run or returns no tensor
    params: int


@torch.no_grad()
def capture_features(
    model: nn.Module, inputs: torch.Tensor, layers: LayerSpec = None, spatial: bool = True
) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for ``inputs`` (B, C, H, W), in the order named.

    With ``spatial`` transformer tokens (B, N, D) come back as (B, D, H/p, W/p) maps.
    """
    named = resolve_layers(model, layers)
    with eval_mode(model), LayerCapture(model, named) as capture:
        model(inputs)
        outputs = dict(capture.outputs)
    missing = [n for n in named if n not in outputs]
    if missing:
        raise ConfigError(f"layer {missing[0]!r} did not run in the forward pass; pick another layer")
    if not spatial:
        return outputs
    hw = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    patch = find_patch_size(model)
    return {name: to_spatial(t, hw, patch, name) for name, t in outputs.items()}


@torch.no_grad()
def list_layers(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224)) -> list[LayerInfo]:
    """Every named module with its type, output shape for an input of ``input_size`` and parameters."""
    modules = {name: m for name, m in model.named_modules() if name}
    device = next(iter(model.parameters()), torch.empty(0)).device
    with eval_mode(model), LayerCapture(model, modules) as capture:
        model(torch.zeros(input_size, device=device))
        shapes = {name: tuple(t.shape) for name, t in capture.outputs.items()}
    return [
        LayerInfo(name, type(m).__name__, shapes.get(name), sum(p.numel() for p in m.parameters()))
        for name, m in modules.items()
    ]


def channel_energy(fmap: torch.Tensor) -> torch.Tensor:
    """(C, h, w) -> (C,) mean squared activation per channel."""
    return fmap.float().pow(2).flatten(1).mean(1)


def upsample_channels(fmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, h, w) -> (C, H, W) bilinear (half-pixel centres), each channel min-max scaled to [0, 1].

    A constant channel (a 1x1 map, a dead ReLU) comes back as zeros: scaling the float rounding
    of the interpolation up to [0, 1] would draw noise where the map has no structure.
    """
    up = F.interpolate(fmap.float()[None], size=size, mode="bilinear", align_corners=False)[0]
    flat = up.flatten(1)
    low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    spread = high - low
    flat_channel = spread <= 1e-5 * torch.maximum(high.abs(), low.abs())
    scaled = (up - low) / spread.clamp_min(1e-12)
    return torch.where(flat_channel, torch.zeros_like(scaled), scaled)


def save_feature_grid(
    fmap: torch.Tensor,
    image: torch.Tensor,
    path: Union[str, Path],
    topk: int = 15,
    title: str = "",
    colormap: str = "viridis",
) -> Path:
    """Grid PNG: the input, the channel-mean map, then the ``topk`` channels by energy.

    fmap: (C, h, w) one image's feature map. image: (C_in, H, W) uint8 or [0, 1] floats, the
    image the model saw; every map is drawn at its size.
    """
    if fmap.ndim != 3:
        raise ValueError(f"fmap must be (C, h, w), got {tuple(fmap.shape)}")
    size = (int(image.shape[-2]), int(image.shape[-1]))
    energy = channel_energy(fmap)
    order = torch.argsort(energy, descending=True)[: max(0, min(topk, fmap.shape[0]))]
    mean_map = upsample_channels(fmap.float().mean(0, keepdim=True), size)[0]
    channels = upsample_channels(fmap[order], size)
    tiles = [to_hwc_uint8(image), _colour(mean_map, colormap)]
    titles = ["input", f"mean of {fmap.shape[0]} ch"]
    for rank, c in enumerate(order.tolist()):
        tiles.append(_colour(channels[rank], colormap))
        titles.append(f"ch {c} e={energy[c].item():.3g}")
    return save_image_grid(tiles, path, titles=titles, suptitle=title)


def _colour(heat: torch.Tensor, colormap: str):
    # alpha=1 shows only the colour-mapped values; the base image is irrelevant.
    return overlay_heatmap(torch.zeros(heat.shape), heat.numpy(), alpha=1.0, colormap=colormap)
