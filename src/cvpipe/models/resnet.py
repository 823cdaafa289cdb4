"""ResNet (He et al., 2016), ResNeXt (Xie et al., 2017) and Wide ResNet (Zagoruyko & Komodakis, 2016).

Deep residual learning: each block learns a residual F(x) and outputs relu(F(x) + x). The
shortcut is the identity except between stages, where a 1x1 conv + BN ("option B") matches
the shape; the sum is element-wise, never a concatenation.

- ``BasicBlock`` (ResNet-18/34, expansion 1): 3x3 (stride s) -> BN -> ReLU -> 3x3 -> BN.
- ``Bottleneck`` (ResNet-50/101/152, expansion 4): 1x1 -> BN -> ReLU -> 3x3 (stride s,
  ``groups``) -> BN -> ReLU -> 1x1 to 4x channels -> BN. The stride sits on the 3x3 rather
  than on the first 1x1 as in the paper: this is "ResNet v1.5" (about +0.5% top-1), the
  layout of torchvision's weights.
- ResNeXt: the bottleneck's 3x3 is a grouped conv, width = planes * width_per_group / 64 * groups
  (cardinality 32, 4 or 8 channels per group).
- Wide ResNet-50-2: the bottleneck is twice as wide (width_per_group 128); outputs unchanged.

Stem: 7x7/2 conv 64 -> BN -> ReLU -> 3x3/2 max-pool; stages ``layer1..4`` with 64/128/256/512
planes and strides 1/2/2/2; global average pool; ``fc``. Module names follow torchvision, so
its state dicts load unchanged. Options: ``attention`` (se | cbam | srm) applied to the residual
branch of every block, ``act_layer``, ``norm_layer``, ``zero_init_residual`` (last BN of each
block starts at 0 so each block starts as the identity) and ``drop_rate`` before ``fc``.
"""

from __future__ import annotations

from typing import Callable, Optional, Type, Union

import torch
import torch.nn as nn

from cvpipe.models.attention import get_attn
from cvpipe.models.base import Classifier
from cvpipe.models.layers import LayerSpec, create_act, get_norm_layer
from cvpipe.models.registry import register_model


def conv3x3(in_chs: int, out_chs: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, 3, stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """(B, in_chs, H, W) -> (B, planes, H/s, W/s)."""

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: LayerSpec = nn.ReLU,
        attn_layer: Optional[Callable[[int], nn.Module]] = None,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(in_chs, planes, stride)
        self.bn1 = norm_layer(planes)
        self.act1 = create_act(act_layer, inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.attn = attn_layer(planes) if attn_layer else nn.Identity()
        self.downsample = downsample
        self.act2 = create_act(act_layer, inplace=True)

    def zero_init_last(self) -> None:
        _zero_weight(self.bn2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        return self.act2(out + shortcut)


class Bottleneck(nn.Module):
    """(B, in_chs, H, W) -> (B, 4 * planes, H/s, W/s); stride on the 3x3 (v1.5)."""

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: LayerSpec = nn.ReLU,
        attn_layer: Optional[Callable[[int], nn.Module]] = None,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_chs = planes * self.expansion
        self.conv1 = conv1x1(in_chs, width)
        self.bn1 = norm_layer(width)
        self.act1 = create_act(act_layer, inplace=True)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = norm_layer(width)
        self.act2 = create_act(act_layer, inplace=True)
        self.conv3 = conv1x1(width, out_chs)
        self.bn3 = norm_layer(out_chs)
        self.attn = attn_layer(out_chs) if attn_layer else nn.Identity()
        self.downsample = downsample
        self.act3 = create_act(act_layer, inplace=True)

    def zero_init_last(self) -> None:
        _zero_weight(self.bn3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        return self.act3(out + shortcut)


def _zero_weight(norm: nn.Module) -> None:
    weight = getattr(norm, "weight", None)
    if isinstance(weight, torch.Tensor):
        with torch.no_grad():
            weight.zero_()


Block = Union[Type[BasicBlock], Type[Bottleneck]]


class ResNet(Classifier):
    """Shape: (B, in_chans, H, W) -> features (B, 512 * expansion, H/32, W/32) -> (B, num_classes)."""

    def __init__(
        self,
        block: Block,
        layers: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
        attention: Union[str, Callable[[int], nn.Module], None] = "",
        act_layer: LayerSpec = "",
        norm_layer: LayerSpec = "",
    ):
        super().__init__()
        norm = get_norm_layer(norm_layer)
        attn = get_attn(attention)
        self.num_classes = num_classes
        self.in_chs = 64
        self._groups, self._base_width = groups, width_per_group
        self._norm, self._act, self._attn = norm, act_layer, attn

        self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.act1 = create_act(act_layer, inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512 * block.expansion
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

        self.default_cam_layer = "layer4"
        self.stem_names = ("conv1", "bn1")
        self.stage_names = ("layer1", "layer2", "layer3", "layer4")
        self.head_names = ("fc",)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_chs != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.in_chs, planes * block.expansion, stride), self._norm(planes * block.expansion)
            )
        common = dict(
            groups=self._groups,
            base_width=self._base_width,
            norm_layer=self._norm,
            act_layer=self._act,
            attn_layer=self._attn,
        )
        layers = [block(self.in_chs, planes, stride, downsample, **common)]
        self.in_chs = planes * block.expansion
        layers += [block(self.in_chs, planes, **common) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Each residual branch starts at 0, so every block starts as the identity map.
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        if pre_logits:
            return x
        return self.fc(self.drop(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


def _resnet(block: Block, layers: list[int], num_classes: int, in_chans: int, **kwargs) -> ResNet:
    return ResNet(block, layers, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-18: BasicBlock x [2, 2, 2, 2]."""
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, **kwargs)


@register_model
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-34: BasicBlock x [3, 4, 6, 3]."""
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, **kwargs)


@register_model
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-50 v1.5: Bottleneck x [3, 4, 6, 3]."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, **kwargs)


@register_model
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-101 v1.5: Bottleneck x [3, 4, 23, 3]."""
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, **kwargs)


@register_model
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNet-152 v1.5: Bottleneck x [3, 8, 36, 3]."""
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes, in_chans, **kwargs)


@register_model
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-50 (32x4d): cardinality 32, 4 channels per group, [3, 4, 6, 3]."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, groups=32, width_per_group=4, **kwargs)


@register_model
def resnext101_32x8d(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """ResNeXt-101 (32x8d): cardinality 32, 8 channels per group, [3, 4, 23, 3]."""
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, groups=32, width_per_group=8, **kwargs)


@register_model
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ResNet:
    """Wide ResNet-50-2: bottleneck width doubled (width_per_group 128), [3, 4, 6, 3]."""
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, width_per_group=128, **kwargs)
