"""VGG (Simonyan & Zisserman, 2015): depth from stacks of 3x3 convolutions.

Three stacked 3x3 convs see the same 7x7 window as one 7x7 conv, with 27C^2 instead of 49C^2
weights and two extra non-linearities. Every conv is 3x3/1 p1 (size kept) + ReLU, every pool
2x2/2 (size halved). The configurations below are the paper's columns A, B, D and E
(numbers: output channels, "M": max-pool); ``_bn`` variants put BatchNorm after each conv.

Adaptive average pool to 7x7, then FC 25088 -> 4096 -> 4096 -> n with Dropout 0.5. Module
names and indices follow torchvision, so its weights load unchanged.
"""

from __future__ import annotations

from typing import Union

import torch.nn as nn

from cvpipe.models.base import FeaturesClassifier
from cvpipe.models.layers import LayerSpec, create_act, get_norm_layer
from cvpipe.models.registry import register_model

CONFIGS: dict[str, list[Union[int, str]]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


class VGG(FeaturesClassifier):
    """Shape: (B, in_chans, H, W) -> features (B, 512, H/32, W/32) -> logits (B, num_classes)."""

    def __init__(
        self,
        cfg: list[Union[int, str]],
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        hidden: int = 4096,
        drop_rate: float = 0.5,
        act_layer: LayerSpec = "",
        norm_layer: LayerSpec = "",
    ):
        super().__init__()
        self.num_classes = num_classes
        norm = get_norm_layer(norm_layer) if batch_norm else None
        layers: list[nn.Module] = []
        stage_starts: list[int] = [0]
        chans = in_chans
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                stage_starts.append(len(layers))
                continue
            layers.append(nn.Conv2d(chans, int(v), kernel_size=3, padding=1))
            if norm is not None:
                layers.append(norm(int(v)))
            layers.append(create_act(act_layer, inplace=True))
            chans = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        # ``hidden`` (default 4096 as in the paper) thins the 120 M-parameter classifier for small data.
        self.num_features = hidden
        self.classifier = nn.Sequential(
            nn.Linear(chans * 7 * 7, hidden),
            create_act(act_layer, inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, hidden),
            create_act(act_layer, inplace=True),
            nn.Dropout(drop_rate),
            self._make_head(num_classes),  # 6
        )
        # CAM on the last activation before the final pool.
        self.default_cam_layer = f"features.{len(layers) - 2}"
        # A stage is the run of convs between two pools; index ranges become name tuples.
        self.stem_names = ()
        self.stage_names = tuple(
            tuple(f"features.{i}" for i in range(a, b)) for a, b in zip(stage_starts[:-1], stage_starts[1:])
        ) + ("classifier.0", "classifier.3")
        self.head_names = ("classifier.6",)
        self._init_weights()


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_chans: int, **kwargs) -> VGG:
    return VGG(CONFIGS[cfg], num_classes, in_chans, batch_norm=batch_norm, **kwargs)


@register_model
def vgg11(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-11 (config A): 8 convs + 3 FC."""
    return _vgg("vgg11", False, num_classes, in_chans, **kwargs)


@register_model
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-11 with BatchNorm after every conv."""
    return _vgg("vgg11", True, num_classes, in_chans, **kwargs)


@register_model
def vgg13(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-13 (config B): 10 convs + 3 FC."""
    return _vgg("vgg13", False, num_classes, in_chans, **kwargs)


@register_model
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-13 with BatchNorm after every conv."""
    return _vgg("vgg13", True, num_classes, in_chans, **kwargs)


@register_model
def vgg16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-16 (config D): 13 convs + 3 FC."""
    return _vgg("vgg16", False, num_classes, in_chans, **kwargs)


@register_model
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-16 with BatchNorm after every conv."""
    return _vgg("vgg16", True, num_classes, in_chans, **kwargs)


@register_model
def vgg19(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-19 (config E): 16 convs + 3 FC."""
    return _vgg("vgg19", False, num_classes, in_chans, **kwargs)


@register_model
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VGG:
    """VGG-19 with BatchNorm after every conv."""
    return _vgg("vgg19", True, num_classes, in_chans, **kwargs)
