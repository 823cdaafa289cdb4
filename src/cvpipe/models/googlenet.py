"""GoogLeNet / Inception v1 (Szegedy et al., 2015), in its BatchNorm form.

An Inception module runs four branches in parallel on the same input and concatenates them
on the channel axis (so their H and W must agree):

    1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 (the paper's 5x5) | 3x3/1 max-pool -> 1x1

The 1x1 convs reduce channels before the expensive convs. Nine modules (3a-3b, 4a-4e, 5a-5b)
sit between max-pools; the table of their widths is ``INCEPTION_CFG``. No FC stack: global
average pooling, Dropout, one linear layer.

Two auxiliary classifiers, after 4a and 4d, feed extra gradient to the middle of the network
while training (``(logits, aux1, aux2)`` in train mode; the engine weights their losses by
``loss.aux_weight``, 0.3 in the paper); in eval mode the model returns logits only. Each is
avg-pool to 4x4 -> 1x1 conv 128 -> FC 2048 -> 1024 -> Dropout 0.7 -> FC n.

Every conv is conv -> BN (eps 1e-3) -> ReLU ("BasicConv2d"), and the third branch uses a 3x3
kernel: this is torchvision's layout (its known deviation from the paper's 5x5, vision #906),
so its weights load unchanged. ``branch3_kernel=5`` builds the paper's 5x5 branch instead.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn as nn

from cvpipe.models.base import Classifier
from cvpipe.models.layers import LayerSpec, create_act, get_norm_layer
from cvpipe.models.registry import register_model

# name: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj); output = 1x1 + 3x3 + 5x5 + pool proj
INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),  # -> 256, 28x28
    "3b": (256, 128, 128, 192, 32, 96, 64),  # -> 480
    "4a": (480, 192, 96, 208, 16, 48, 64),  # -> 512, 14x14
    "4b": (512, 160, 112, 224, 24, 64, 64),  # -> 512
    "4c": (512, 128, 128, 256, 24, 64, 64),  # -> 512
    "4d": (512, 112, 144, 288, 32, 64, 64),  # -> 528
    "4e": (528, 256, 160, 320, 32, 128, 128),  # -> 832
    "5a": (832, 256, 160, 320, 32, 128, 128),  # -> 832, 7x7
    "5b": (832, 384, 192, 384, 48, 128, 128),  # -> 1024
}


class BasicConv2d(nn.Module):
    """conv (no bias) -> norm -> act; keys ``conv.*``, ``bn.*`` as in torchvision."""

    def __init__(self, in_chs: int, out_chs: int, norm: Callable[[int], nn.Module], act: LayerSpec, **conv_kw):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, bias=False, **conv_kw)
        self.bn = norm(out_chs)
        self.act = create_act(act, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Inception(nn.Module):
    """(B, in, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W)."""

    def __init__(self, cfg: tuple[int, ...], norm: Callable[[int], nn.Module], act: LayerSpec, branch3_kernel: int):
        super().__init__()
        in_chs, c1, c3r, c3, c5r, c5, pp = cfg
        conv = lambda i, o, **kw: BasicConv2d(i, o, norm, act, **kw)  # noqa: E731
        self.branch1 = conv(in_chs, c1, kernel_size=1)
        self.branch2 = nn.Sequential(conv(in_chs, c3r, kernel_size=1), conv(c3r, c3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(
            conv(in_chs, c5r, kernel_size=1),
            conv(c5r, c5, kernel_size=branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), conv(in_chs, pp, kernel_size=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: (B, in, H, W) -> avg-pool 4x4 -> 1x1 conv 128 -> FC 1024 -> (B, n)."""

    def __init__(self, in_chs: int, num_classes: int, norm: Callable[[int], nn.Module], act: LayerSpec,
                 drop_rate: float = 0.7):
        super().__init__()
        # Adaptive pooling to 4x4 equals the paper's 5x5/3 average pool on a 14x14 map, and
        # keeps the branch usable at other input sizes.
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_chs, 128, norm, act, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = create_act(act, inplace=True)
        self.dropout = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.avgpool(x)), 1)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class GoogLeNet(Classifier):
    """Shape: (B, in_chans, H, W) -> features (B, 1024, H/32, W/32) -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        drop_rate: float = 0.2,
        aux_drop_rate: float = 0.7,
        branch3_kernel: int = 3,
        act_layer: LayerSpec = "",
        norm_layer: LayerSpec = "",
    ):
        super().__init__()
        bn = get_norm_layer(norm_layer)
        if bn is nn.BatchNorm2d:
            norm: Callable[[int], nn.Module] = lambda c: nn.BatchNorm2d(c, eps=0.001)  # noqa: E731
        else:
            norm = bn
        self._norm, self._act, self._aux_drop = norm, act_layer, aux_drop_rate
        self.num_classes = num_classes
        conv = lambda i, o, **kw: BasicConv2d(i, o, norm, act_layer, **kw)  # noqa: E731
        inception = lambda name: Inception(INCEPTION_CFG[name], norm, act_layer, branch3_kernel)  # noqa: E731

        self.conv1 = conv(in_chans, 64, kernel_size=7, stride=2, padding=3)  # 112x112
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 56x56
        self.conv2 = conv(64, 64, kernel_size=1)
        self.conv3 = conv(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 28x28
        self.inception3a = inception("3a")
        self.inception3b = inception("3b")
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 14x14
        self.inception4a = inception("4a")
        self.inception4b = inception("4b")
        self.inception4c = inception("4c")
        self.inception4d = inception("4d")
        self.inception4e = inception("4e")
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 7x7
        self.inception5a = inception("5a")
        self.inception5b = inception("5b")
        self.aux_logits = aux_logits
        self.aux1: Union[InceptionAux, None] = None
        self.aux2: Union[InceptionAux, None] = None
        self._make_aux(num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = 1024
        self.fc = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

        self.default_cam_layer = "inception5b"
        self.stem_names = ("conv1", "conv2", "conv3")
        self.stage_names = (
            ("inception3a", "inception3b"),
            ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"),
            ("inception5a", "inception5b"),
        )
        self.head_names = ("fc", "aux1", "aux2")
        self._init_weights()

    def _make_aux(self, num_classes: int) -> None:
        if self.aux_logits and num_classes > 0:
            self.aux1 = InceptionAux(512, num_classes, self._norm, self._act, self._aux_drop)  # after 4a
            self.aux2 = InceptionAux(528, num_classes, self._norm, self._act, self._aux_drop)  # after 4d
        else:
            self.aux1 = self.aux2 = None

    def _init_weights(self) -> None:
        # The notes' init: He-normal convs (fan-out), N(0, 0.01) linears, unit norms.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux: list[torch.Tensor] = []
        want_aux = self.training and self.aux1 is not None
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if want_aux:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if want_aux:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(self.dropout(x))

    def forward(self, x: torch.Tensor):
        """Train mode: ``(logits, aux1, aux2)``; eval mode (or no aux heads): logits (B, n)."""
        feats, aux = self._forward(x)
        logits = self.forward_head(feats)
        return (logits, *aux) if aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._make_aux(num_classes)


@register_model
def googlenet(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> GoogLeNet:
    """GoogLeNet (Inception v1) with BN and two auxiliary classifiers (training only)."""
    return GoogLeNet(num_classes, in_chans, **kwargs)
