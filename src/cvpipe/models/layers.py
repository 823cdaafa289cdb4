"""Building blocks shared by the zoo: activation and normalisation by name, Conv-Norm-Act.

One small factory resolves ``act_layer`` / ``norm_layer`` given as a class, a callable or a
name, so a config can say ``model.act_layer=silu`` or ``model.norm_layer=gn`` and every
architecture that allows it picks the layer up. An empty string or ``None`` means "the
architecture's default".

- Activations: relu, relu6, leaky_relu (slope 0.01), prelu, elu, gelu, silu (= swish),
  hard_swish, hard_sigmoid, sigmoid, tanh, identity.
- Norms for (B, C, H, W) maps: batchnorm (bn), groupnorm (gn: gcd(C, 32) groups, so 32 when
  C is a multiple of 32), layernorm (ln: over the channels of each pixel, as in ConvNeXt),
  frozen_bn (fixed affine + statistics, torchvision's ``FrozenBatchNorm2d``), identity.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvpipe.errors import ConfigError

LayerSpec = Union[str, Callable[..., nn.Module], None]

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,  # negative slope 0.01 (PyTorch's default)
    "prelu": nn.PReLU,  # one learnable slope per layer
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}
_ACT_ALIASES = {
    "swish": "silu",
    "hardswish": "hard_swish",
    "hswish": "hard_swish",
    "hardsigmoid": "hard_sigmoid",
    "hsigmoid": "hard_sigmoid",
    "leakyrelu": "leaky_relu",
    "lrelu": "leaky_relu",
    "none": "identity",
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def get_act_layer(spec: LayerSpec, default: LayerSpec = nn.ReLU) -> Callable[..., nn.Module]:
    """Resolve an activation given by name, class or callable; ``""``/``None`` gives ``default``."""
    if spec is None or spec == "":
        spec = default
    if not isinstance(spec, str):
        return spec
    key = _key(spec)
    key = _ACT_ALIASES.get(key, key)
    if key not in _ACTIVATIONS:
        raise ConfigError(f"model.act_layer: unknown activation {spec!r}; choose one of {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[key]


def create_act(spec: LayerSpec, inplace: bool = False, default: LayerSpec = nn.ReLU) -> nn.Module:
    """Instantiate an activation, passing ``inplace`` only to the layers that take it."""
    layer = get_act_layer(spec, default)
    if inplace and _accepts(layer, "inplace"):
        return layer(inplace=True)
    return layer()


def _accepts(fn: Callable, arg: str) -> bool:
    try:
        return arg in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) map (ConvNeXt's "LN")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def group_norm(num_channels: int, num_groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """GroupNorm with gcd(``num_channels``, ``num_groups``) groups: ``num_groups`` when it divides
    the channels, else the largest common divisor (C=48 gets 16 groups of 3, C=6 gets 2)."""
    groups = math.gcd(num_channels, num_groups)
    return nn.GroupNorm(groups, num_channels, eps=eps)


def _identity_norm(num_channels: int, **kwargs) -> nn.Module:
    return nn.Identity()


def frozen_batch_norm(num_channels: int, eps: float = 1e-5) -> nn.Module:
    """BatchNorm with fixed statistics and affine parameters (buffers, never trained).

    torchvision's ``FrozenBatchNorm2d``: same state-dict keys as ``BatchNorm2d``, so BN
    weights load into it; imported on use to keep ``import cvpipe.models`` light.
    """
    from torchvision.ops import FrozenBatchNorm2d

    return FrozenBatchNorm2d(num_channels, eps=eps)


_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batchnorm": nn.BatchNorm2d,
    "groupnorm": group_norm,
    "layernorm": LayerNorm2d,
    "frozen_bn": frozen_batch_norm,
    "identity": _identity_norm,
}
_NORM_ALIASES = {
    "bn": "batchnorm",
    "batch_norm": "batchnorm",
    "gn": "groupnorm",
    "group_norm": "groupnorm",
    "ln": "layernorm",
    "layer_norm": "layernorm",
    "frozenbn": "frozen_bn",
    "frozen_batchnorm": "frozen_bn",
    "none": "identity",
}


def get_norm_layer(spec: LayerSpec, default: LayerSpec = nn.BatchNorm2d) -> Callable[..., nn.Module]:
    """Resolve a norm for (B, C, H, W) maps; the result is called as ``norm(num_channels)``."""
    if spec is None or spec == "":
        spec = default
    if not isinstance(spec, str):
        return spec
    key = _key(spec)
    key = _NORM_ALIASES.get(key, key)
    if key not in _NORMS:
        raise ConfigError(f"model.norm_layer: unknown norm {spec!r}; choose one of {', '.join(_NORMS)}")
    return _NORMS[key]


def norm_has_bias(norm_layer: Callable[..., nn.Module]) -> bool:
    """Whether a conv followed by this norm needs no bias of its own (the norm has a shift)."""
    return norm_layer is not _identity_norm


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> activation, as one ``nn.Sequential`` (children ``0``, ``1``, ``2``).

    The numbered children give the same state-dict keys as torchvision's
    ``Conv2dNormActivation``, so MobileNet weights load unchanged. ``padding=None`` keeps the
    size at stride 1 ("same" for odd kernels); the conv has no bias when a norm follows it.
    Shape: (B, in_chs, H, W) -> (B, out_chs, H / stride, W / stride).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: LayerSpec = nn.BatchNorm2d,
        act_layer: LayerSpec = nn.ReLU,
        inplace: bool = True,
        bias: Optional[bool] = None,
    ):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = []
        norm = get_norm_layer(norm_layer) if norm_layer is not None else None  # "" -> BatchNorm
        if bias is None:
            bias = norm is None or not norm_has_bias(norm)
        layers.append(nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=bias))
        if norm is not None:
            layers.append(norm(out_chs))
        if act_layer is not None:
            layers.append(create_act(act_layer, inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_chs


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10% down.

    MobileNet v2/v3 use it so every layer width suits the hardware after the width multiplier.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def init_weights_kaiming(module: nn.Module) -> None:
    """The common CNN initialisation: He-normal convs (fan-out), unit norms, N(0, 0.01) linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


__all__ = [
    "ConvNormAct",
    "LayerNorm2d",
    "create_act",
    "frozen_batch_norm",
    "get_act_layer",
    "get_norm_layer",
    "group_norm",
    "init_weights_kaiming",
    "make_divisible",
    "norm_has_bias",
]
