"""MobileNet v3 small and large (Howard et al., 2019).

v2's inverted residual block, searched per layer (NAS + NetAdapt) and given three additions:

- squeeze-and-excitation inside some blocks, after the depthwise conv, squeezing to
  ``make_divisible(expanded / 4)`` channels and gated by a hard sigmoid;
- the hard-swish non-linearity h-swish(x) = x * ReLU6(x + 3) / 6 in the deeper layers
  (cheap, close to swish), ReLU in the early ones;
- a 16-channel stem and a streamlined last stage: 1x1 conv to 6x the last block's width,
  global pool, then a 1x1 "FC" to 1280 (large) or 1024 (small) with h-swish, then the
  classifier.

The block tables are the paper's (Tables 1 and 2). The module layout follows torchvision, so
its weights load unchanged; BatchNorm uses eps 1e-3 and momentum 0.01 as there.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from cvpipe.models.attention import SqueezeExcite
from cvpipe.models.base import Classifier
from cvpipe.models.layers import ConvNormAct, LayerSpec, get_norm_layer, make_divisible
from cvpipe.models.mobilenet import init_mobilenet_weights
from cvpipe.models.registry import register_model


class BlockCfg(NamedTuple):
    kernel: int
    expanded: int
    out: int
    use_se: bool
    act: str  # "RE" (ReLU) or "HS" (hard-swish)
    stride: int


# MobileNetV3-Large, Table 1: k, exp size, #out, SE, NL, s (input channels follow from the row above)
LARGE_CFG = [
    BlockCfg(3, 16, 16, False, "RE", 1),
    BlockCfg(3, 64, 24, False, "RE", 2),
    BlockCfg(3, 72, 24, False, "RE", 1),
    BlockCfg(5, 72, 40, True, "RE", 2),
    BlockCfg(5, 120, 40, True, "RE", 1),
    BlockCfg(5, 120, 40, True, "RE", 1),
    BlockCfg(3, 240, 80, False, "HS", 2),
    BlockCfg(3, 200, 80, False, "HS", 1),
    BlockCfg(3, 184, 80, False, "HS", 1),
    BlockCfg(3, 184, 80, False, "HS", 1),
    BlockCfg(3, 480, 112, True, "HS", 1),
    BlockCfg(3, 672, 112, True, "HS", 1),
    BlockCfg(5, 672, 160, True, "HS", 2),
    BlockCfg(5, 960, 160, True, "HS", 1),
    BlockCfg(5, 960, 160, True, "HS", 1),
]

# MobileNetV3-Small, Table 2
SMALL_CFG = [
    BlockCfg(3, 16, 16, True, "RE", 2),
    BlockCfg(3, 72, 24, False, "RE", 2),
    BlockCfg(3, 88, 24, False, "RE", 1),
    BlockCfg(5, 96, 40, True, "HS", 2),
    BlockCfg(5, 240, 40, True, "HS", 1),
    BlockCfg(5, 240, 40, True, "HS", 1),
    BlockCfg(5, 120, 48, True, "HS", 1),
    BlockCfg(5, 144, 48, True, "HS", 1),
    BlockCfg(5, 288, 96, True, "HS", 2),
    BlockCfg(5, 576, 96, True, "HS", 1),
    BlockCfg(5, 576, 96, True, "HS", 1),
]

_ACTS = {"RE": nn.ReLU, "HS": nn.Hardswish}


class InvertedResidualV3(nn.Module):
    """[1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear projection (+ shortcut if shapes agree).

    Shape: (B, in_chs, H, W) -> (B, out, H/s, W/s); keys ``block.0..`` as in torchvision.
    """

    def __init__(self, in_chs: int, cfg: BlockCfg, norm: Callable[[int], nn.Module]):
        super().__init__()
        act = _ACTS[cfg.act]
        self.use_res_connect = cfg.stride == 1 and in_chs == cfg.out
        layers: list[nn.Module] = []
        if cfg.expanded != in_chs:
            layers.append(ConvNormAct(in_chs, cfg.expanded, 1, norm_layer=norm, act_layer=act))
        layers.append(
            ConvNormAct(cfg.expanded, cfg.expanded, cfg.kernel, cfg.stride, groups=cfg.expanded,
                        norm_layer=norm, act_layer=act)
        )
        if cfg.use_se:
            rd = make_divisible(cfg.expanded // 4, 8)
            layers.append(SqueezeExcite(cfg.expanded, rd_channels=rd, gate_layer=nn.Hardsigmoid))
        layers.append(ConvNormAct(cfg.expanded, cfg.out, 1, norm_layer=norm, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cfg.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_res_connect else out


class MobileNetV3(Classifier):
    """Shape: (B, in_chans, H, W) -> features (B, 6 * last, H/32, W/32) -> logits (B, num_classes)."""

    def __init__(
        self,
        cfg: list[BlockCfg],
        last_channel: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        drop_rate: float = 0.2,
        norm_layer: LayerSpec = "",
    ):
        super().__init__()
        norm = get_norm_layer(norm_layer)
        if norm is nn.BatchNorm2d:
            norm = functools.partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        ch = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
        cfg = [c._replace(expanded=ch(c.expanded), out=ch(c.out)) for c in cfg]
        stem = ch(16)
        layers: list[nn.Module] = [ConvNormAct(in_chans, stem, 3, 2, norm_layer=norm, act_layer=nn.Hardswish)]
        in_chs = stem
        for c in cfg:
            layers.append(InvertedResidualV3(in_chs, c, norm))
            in_chs = c.out
        last_conv = 6 * in_chs
        layers.append(ConvNormAct(in_chs, last_conv, 1, norm_layer=norm, act_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_classes = num_classes
        self.num_features = ch(last_channel)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, self.num_features),
            nn.Hardswish(inplace=True),
            nn.Dropout(drop_rate, inplace=True),
            self._make_fc(num_classes),  # 3
        )
        self.default_cam_layer = f"features.{len(layers) - 1}"
        stages: list[list[str]] = []
        for i, c in enumerate(cfg, start=1):
            if c.stride != 1 or not stages:
                stages.append([])
            stages[-1].append(f"features.{i}")
        stages[-1].append(f"features.{len(layers) - 1}")
        self.stem_names = ("features.0",)
        self.stage_names = tuple(tuple(s) for s in stages) + ("classifier.0",)
        self.head_names = ("classifier.3",)
        init_mobilenet_weights(self)

    def _make_fc(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        x = self.classifier[:2](x)  # 1x1 "FC" to num_features + h-swish
        return x if pre_logits else self.classifier[3](self.classifier[2](x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[3] = self._make_fc(num_classes)


@register_model
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV3:
    """MobileNetV3-Large: inverted residuals with SE and hard-swish, 1280-wide head."""
    return MobileNetV3(LARGE_CFG, 1280, num_classes, in_chans, **kwargs)


@register_model
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> MobileNetV3:
    """MobileNetV3-Small: inverted residuals with SE and hard-swish, 1024-wide head."""
    return MobileNetV3(SMALL_CFG, 1024, num_classes, in_chans, **kwargs)
