"""Channel and spatial attention plug-ins: SE, CBAM and SRM.

Each module maps (B, C, H, W) -> (B, C, H, W): it computes weights in [0, 1] from the
features and multiplies them back onto the features. ``get_attn(name)`` turns the config
switch (``model.attention=se|cbam|srm``) into a constructor called as ``attn(channels)``;
ResNet/ResNeXt blocks apply it to the residual branch before the shortcut is added, where
the SE, CBAM and SRM papers place it.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

from cvpipe.errors import ConfigError
from cvpipe.models.layers import LayerSpec, create_act, get_act_layer


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., 2018).

    Squeeze: global average pool, (B, C, H, W) -> (B, C, 1, 1). Excite: two 1x1 convs
    (C -> C/r -> C, the paper's FC layers) with an activation between and a gate after.
    Recalibrate: multiply the gate onto the input. ``fc1``/``fc2`` match torchvision's
    ``SqueezeExcitation`` keys, so MobileNet v3 reuses this module with a hard-sigmoid gate.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: Optional[int] = None,
        act_layer: LayerSpec = nn.ReLU,
        gate_layer: LayerSpec = nn.Sigmoid,
    ):
        super().__init__()
        rd_channels = rd_channels or max(8, int(channels * rd_ratio))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, rd_channels, 1)
        self.act = create_act(act_layer, inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1)
        self.gate = get_act_layer(gate_layer)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))
        return x * w


class ChannelAttention(nn.Module):
    """CBAM's channel branch: a shared MLP over the average- and max-pooled vectors, summed."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 16):
        super().__init__()
        rd = max(8, int(channels * rd_ratio))
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, rd, 1, bias=False), nn.ReLU(inplace=True), nn.Conv2d(rd, channels, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM's spatial branch: channel-wise mean and max, (B, 2, H, W) -> 7x7 conv -> (B, 1, H, W)."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., 2018): channel, then spatial attention."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, rd_ratio)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class SRM(nn.Module):
    """Style-based Recalibration Module (Lee et al., 2019).

    Style pooling: each channel's mean and standard deviation, (B, C, H, W) -> (B, C, 2).
    Style integration: a channel-wise fully connected layer (a grouped Conv1d, 2 weights per
    channel), BatchNorm and a sigmoid give one weight per channel. (The notes describe max
    and average pooling; the paper uses mean and std, which is what is implemented here.)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.cfc = nn.Conv1d(channels, channels, kernel_size=2, groups=channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        # std of a 1x1 map is 0, not NaN (unbiased=False)
        style = torch.stack([flat.mean(dim=2), flat.std(dim=2, unbiased=False)], dim=2)  # (B, C, 2)
        w = torch.sigmoid(self.bn(self.cfc(style)))  # (B, C, 1)
        return x * w.unsqueeze(-1)


_ATTENTION: dict[str, Callable[[int], nn.Module]] = {"se": SqueezeExcite, "cbam": CBAM, "srm": SRM}


def get_attn(spec: Optional[str | Callable[[int], nn.Module]]) -> Optional[Callable[[int], nn.Module]]:
    """``"se" | "cbam" | "srm"`` (or a class) -> constructor ``attn(channels)``; ``""``/``None`` -> None."""
    if spec is None or spec == "" or (isinstance(spec, str) and spec.lower() in ("none", "identity")):
        return None
    if not isinstance(spec, str):
        return spec
    key = spec.strip().lower()
    if key not in _ATTENTION:
        raise ConfigError(f"model.attention: unknown attention {spec!r}; choose one of {', '.join(_ATTENTION)}")
    return _ATTENTION[key]


__all__ = ["CBAM", "SRM", "ChannelAttention", "SpatialAttention", "SqueezeExcite", "get_attn"]
