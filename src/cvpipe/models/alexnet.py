"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012).

Five convolutions with ReLU (instead of tanh/sigmoid), overlapping 3x3/2 max-pooling, and a
three-layer classifier with Dropout 0.5. Local response normalisation is left out, as in the
notes and in torchvision (it adds nothing measurable).

- ``alexnet``: torchvision's single-tower variant, 64/192/384/256/256 channels, adaptive
  average pool to 6x6, FC 9216 -> 4096 -> 4096 -> n (61,100,840 params at 1000 classes).
  Module names and indices follow torchvision, so its weights load unchanged.
- ``alexnet_half``: one GPU tower of the original two-GPU network, as in the notes:
  48/128/192/192/128 channels, FC 4608 -> 2048 -> 2048 -> n.

Layout for a 3x224x224 input: conv 11x11/4 p2 -> 55x55, pool -> 27x27, conv 5x5 p2, pool ->
13x13, three 3x3 convs, pool -> 6x6. The adaptive pool makes smaller inputs (>= 63 px) work.
"""

from __future__ import annotations

import torch.nn as nn

from cvpipe.models.base import FeaturesClassifier
from cvpipe.models.layers import LayerSpec, create_act
from cvpipe.models.registry import register_model


class AlexNet(FeaturesClassifier):
    """Shape: (B, in_chans, H, W) -> features (B, widths[-1], h, w) -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        widths: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256),
        hidden: int = 4096,
        drop_rate: float = 0.5,
        act_layer: LayerSpec = "",
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.num_classes = num_classes
        act = lambda: create_act(act_layer, inplace=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, kernel_size=11, stride=4, padding=2),  # 0
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),  # 3
            act(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),  # 6
            act(),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),  # 8
            act(),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),  # 10
            act(),  # 11: last activation, the CAM layer
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.num_features = hidden
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Linear(c5 * 6 * 6, hidden),
            act(),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, hidden),
            act(),
            self._make_head(num_classes),  # 6
        )
        self.default_cam_layer = "features.11"
        self.stem_names = ()
        self.stage_names = ("features.0", "features.3", "features.6", "features.8", "features.10",
                            "classifier.1", "classifier.4")
        self.head_names = ("classifier.6",)
        self._init_weights()


@register_model
def alexnet(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> AlexNet:
    """AlexNet as in torchvision: 64/192/384/256/256 channels, FC 9216-4096-4096."""
    return AlexNet(num_classes, in_chans, **kwargs)


@register_model
def alexnet_half(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> AlexNet:
    """One tower of the original AlexNet (the notes): 48/128/192/192/128, FC 4608-2048-2048."""
    return AlexNet(num_classes, in_chans, widths=(48, 128, 192, 192, 128), hidden=2048, **kwargs)
