"""Small models with known structure for the explain tests (random weights, no downloads)."""

import pytest
import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    """conv-bn-relu x3 -> global average pool -> linear: a GAP + linear head, as CAM needs."""

    default_cam_layer = "features.2"

    def __init__(self, num_classes: int = 5, width: int = 8, inplace: bool = False):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace))

        self.features = nn.Sequential(block(3, width, 1), block(width, width, 2), block(width, 2 * width, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


class Gate(nn.Module):
    """Multiplies the feature map by a fixed 0/1 mask."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x):
        return x * self.mask


class QuadrantNet(nn.Module):
    """A classifier that only sees the top-left quadrant of its (B, 3, 32, 32) input.

    Features at stride 2 (16x16) are gated to the top-left 8x8 cells, pooled and fed to a
    linear head with positive weights for class 0, so every faithful saliency map of class 0
    must live in the top-left 16x16 pixels.
    """

    default_cam_layer = "gate"

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()
        )
        mask = torch.zeros(1, 1, 16, 16)
        mask[..., :8, :8] = 1.0
        self.gate = Gate(mask)
        self.fc = nn.Linear(8, 2)
        with torch.no_grad():
            self.fc.weight[0].uniform_(0.5, 1.0)
            self.fc.weight[1].uniform_(-1.0, -0.5)

    def forward(self, x):
        return self.fc(self.gate(self.features(x)).mean(dim=(2, 3)))


@pytest.fixture
def small_cnn():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    with torch.no_grad():  # non-trivial BN statistics so eval mode is not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def quadrant_net():
    torch.manual_seed(0)
    return QuadrantNet().eval()


@pytest.fixture
def make_small_cnn():
    """Factory for SmallCNN variants (e.g. ``inplace=True`` ReLUs after the CAM layer's conv)."""

    def make(**kwargs):
        torch.manual_seed(0)
        return SmallCNN(**kwargs).eval()

    return make


@pytest.fixture
def gate_module():
    return Gate


class TinyViT(nn.Module):
    """Patch embedding (kernel = stride = 8), a class token, two encoder blocks, a linear head.

    No position embedding, so any input size divisible by 8 works.
    """

    def __init__(self, dim: int = 16, num_classes: int = 3):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.Sequential(
            *[nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.0, batch_first=True) for _ in range(2)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.head(self.norm(self.blocks(tokens))[:, 0])


@pytest.fixture
def tiny_vit():
    torch.manual_seed(0)
    return TinyViT().eval()
