"""LeNet (LeCun et al., 1998), the first convolutional network trained end to end.

Two variants, both "conv -> pool -> conv -> pool -> FC 120 -> FC 84 -> FC n":

- ``lenet``: the CIFAR-sized variant from the notes, 3x32x32 input:
  conv 3->16 k5 (16x28x28), max-pool 2 (16x14x14), conv 16->32 k5 (32x10x10),
  max-pool 2 (32x5x5), flatten 800 -> 120 -> 84 -> n.
- ``lenet_digits``: LeNet-5 for digit-sized grey images: conv in->6 k5 with padding 2 (a
  28x28 digit is treated like the paper's 32x32 padded canvas), pool, conv 6->16 k5, pool,
  flatten 400 -> 120 -> 84 -> n.

An adaptive average pool to 5x5 before flattening is an identity at the native input size and
lets both variants accept other sizes (a 32 px digit, a 40 px crop) without changing weights.
ReLU and max-pooling replace the paper's squashing function and trainable subsampling, as in
the notes; ``act_layer="tanh"`` brings back the original non-linearity.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cvpipe.models.base import Classifier
from cvpipe.models.layers import LayerSpec, create_act
from cvpipe.models.registry import register_model


class LeNet(Classifier):
    """Shape: (B, in_chans, H, W) -> features (B, c2, H', W') -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        widths: tuple[int, int] = (16, 32),
        first_padding: int = 0,
        drop_rate: float = 0.0,
        act_layer: LayerSpec = "",
    ):
        super().__init__()
        c1, c2 = widths
        self.num_classes = num_classes
        self.features = nn.Sequential()
        self.features.add_module("conv1", nn.Conv2d(in_chans, c1, 5, padding=first_padding))
        self.features.add_module("act1", create_act(act_layer, inplace=True))
        self.features.add_module("pool1", nn.MaxPool2d(2, 2))
        self.features.add_module("conv2", nn.Conv2d(c1, c2, 5))
        self.features.add_module("act2", create_act(act_layer, inplace=True))
        self.features.add_module("pool2", nn.MaxPool2d(2, 2))
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc1 = nn.Linear(c2 * 5 * 5, 120)
        self.act3 = create_act(act_layer, inplace=True)
        self.fc2 = nn.Linear(120, 84)
        self.act4 = create_act(act_layer, inplace=True)
        self.num_features = 84
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()

        self.default_cam_layer = "features.act2"
        self.stem_names = ()
        self.stage_names = ("features.conv1", "features.conv2", "fc1", "fc2")
        self.head_names = ("fc",)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        x = self.act4(self.fc2(self.act3(self.fc1(x))))
        if pre_logits:
            return x
        return self.fc(self.drop(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


@register_model
def lenet(num_classes: int = 10, in_chans: int = 3, **kwargs) -> LeNet:
    """CIFAR-sized LeNet for 3x32x32 images: conv 16/32 k5, FC 800-120-84."""
    return LeNet(num_classes, in_chans, widths=(16, 32), first_padding=0, **kwargs)


@register_model
def lenet_digits(num_classes: int = 10, in_chans: int = 1, **kwargs) -> LeNet:
    """LeNet-5 for 28/32 px digits: conv 6/16 k5 (first padded by 2), FC 400-120-84."""
    return LeNet(num_classes, in_chans, widths=(6, 16), first_padding=2, **kwargs)
