"""MobileNet v1 (Howard et al., 2017) and v2 (Sandler et al., 2018).

v1 replaces each standard conv by a depthwise-separable pair: a 3x3 depthwise conv (one filter
per channel, ``groups = C``) then a 1x1 pointwise conv that mixes channels. For a DkxDk kernel,
M inputs, N outputs and a DFxDF map the cost drops from Dk^2 M N DF^2 to (Dk^2 M + M N) DF^2,
about 8-9x less for 3x3. The width multiplier alpha thins every layer.

v2 builds on inverted residuals with linear bottlenecks: 1x1 expand by t -> 3x3 depthwise ->
1x1 project with *no* activation (a ReLU on a thin layer destroys information); ReLU6
elsewhere; the shortcut only when stride is 1 and input and output shapes agree. Channel
counts are rounded by ``make_divisible`` after the width multiplier. The v2 module layout
follows torchvision, so its weights load unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from cvpipe.models.base import Classifier
from cvpipe.models.layers import ConvNormAct, LayerSpec, get_act_layer, get_norm_layer, make_divisible
from cvpipe.models.registry import register_model

# MobileNet v1 body after the stem: (output channels, stride of the depthwise conv)
V1_CFG: list[tuple[int, int]] = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),  # the paper's table lists s2 for the last one, but its output stays 7x7
]

# MobileNet v2: t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
V2_CFG: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def init_mobilenet_weights(model: nn.Module) -> None:
    """torchvision's MobileNet init: He-normal convs (fan-out), unit norms, N(0, 0.01) linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise (stride s) -> norm -> act -> 1x1 pointwise -> norm -> act: (B, C, H, W) -> (B, N, H/s, W/s)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, norm: Callable, act: Callable):
        super().__init__()
        self.dw = ConvNormAct(in_chs, in_chs, 3, stride, groups=in_chs, norm_layer=norm, act_layer=act)
        self.pw = ConvNormAct(in_chs, out_chs, 1, norm_layer=norm, act_layer=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class _MobileNetBase(Classifier):
    """Shared head: global average pool -> Dropout -> Linear (``classifier.1``)."""

    def _build_head(self, num_features: int, num_classes: int, drop_rate: float) -> None:
        self.num_classes = num_classes
        self.num_features = num_features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), self._make_fc(num_classes))
        self.default_cam_layer = f"features.{len(self.features) - 1}"
        self.head_names = ("classifier",)

    def _make_fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.classifier(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[1] = self._make_fc(num_classes)


def _stages_by_stride(strides: list[int]) -> tuple[tuple[str, ...], ...]:
    """Group ``features.1..`` into stages: a block with stride 2 opens a new stage."""
    stages: list[list[str]] = []
    for i, s in enumerate(strides, start=1):
        if s != 1 or not stages:
            stages.append([])
        stages[-1].append(f"features.{i}")
    return tuple(tuple(s) for s in stages)


class MobileNetV1(_MobileNetBase):
    """Shape: (B, in_chans, H, W) -> features (B, 1024 alpha, H/32, W/32) -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        drop_rate: float = 0.0,
        act_layer: LayerSpec = "",
        norm_layer: LayerSpec = "",
    ):
        super().__init__()
        norm, act = get_norm_layer(norm_layer), get_act_layer(act_layer)
        ch = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
        layers: list[nn.Module] = [ConvNormAct(in_chans, ch(32), 3, 2, norm_layer=norm, act_layer=act)]
        in_chs = ch(32)
        for out, stride in V1_CFG:
            layers.append(DepthwiseSeparable(in_chs, ch(out), stride, norm, act))
            in_chs = ch(out)
        self.features = nn.Sequential(*layers)
        self._build_head(in_chs, num_classes, drop_rate)
        self.stem_names = ("features.0",)
        self.stage_names = _stages_by_stride([s for _, s in V1_CFG])
        init_mobilenet_weights(self)


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when t = 1) -> 3x3 depthwise -> 1x1 linear projection (+ shortcut).

    Shape: (B, in_chs, H, W) -> (B, out_chs, H/s, W/s); keys ``conv.0..`` as in torchvision.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int, norm: Callable, act: Callable):
        super().__init__()
        hidden = int(round(in_chs * expand_ratio))
        self.use_res_connect = stride == 1 and in_chs == out_chs
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_chs, hidden, 1, norm_layer=norm, act_layer=act))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, norm_layer=norm, act_layer=act),
            nn.Conv2d(hidden, out_chs, 1, bias=False),  # linear bottleneck: no activation
            norm(out_chs),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(_MobileNetBase):
    """Shape: (B, in_chans, H, W) -> features (B, 1280, H/32, W/32) -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        drop_rate: float = 0.2,
        act_layer: LayerSpec = "",
        norm_layer: LayerSpec = "",
    ):
        super().__init__()
        norm, act = get_norm_layer(norm_layer), get_act_layer(act_layer, default=nn.ReLU6)
        in_chs = make_divisible(32 * width_mult, round_nearest)
        # The last conv is never thinned below 1280 (the paper keeps it for small multipliers).
        last_chs = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers: list[nn.Module] = [ConvNormAct(in_chans, in_chs, 3, 2, norm_layer=norm, act_layer=act)]
        strides: list[int] = []
        for t, c, n, s in V2_CFG:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidual(in_chs, out, stride, t, norm, act))
                strides.append(stride)
                in_chs = out
        layers.append(ConvNormAct(in_chs, last_chs, 1, norm_layer=norm, act_layer=act))
        self.features = nn.Sequential(*layers)
        self._build_head(last_chs, num_classes, drop_rate)
        stages = _stages_by_stride(strides)
        # The final 1x1 conv belongs to the last stage.
        self.stem_names = ("features.0",)
        self.stage_names = stages[:-1] + (stages[-1] + (f"features.{len(layers) - 1}",),)
        init_mobilenet_weights(self)


@register_model
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV1:
    """MobileNet v1, depthwise-separable convs; kwarg width_mult (default 1.0)."""
    return MobileNetV1(num_classes, in_chans, **kwargs)


@register_model
def mobilenet_v1_050(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV1:
    """MobileNet v1 at width multiplier 0.5."""
    kwargs.setdefault("width_mult", 0.5)
    return MobileNetV1(num_classes, in_chans, **kwargs)


@register_model
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV2:
    """MobileNet v2, inverted residuals with linear bottlenecks; kwarg width_mult (default 1.0)."""
    return MobileNetV2(num_classes, in_chans, **kwargs)
