"""Small models with known structure for the explain tests (random weights, no downloads)."""

import numpy as np
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


def write_checkpoint(path, overrides, classes, mean, std):
    """A cvpipe checkpoint with random weights, built the way training builds one."""
    from cvpipe.config import load_config, to_dict
    from cvpipe.data.transforms import make_preprocess
    from cvpipe.engine.checkpoint import save_checkpoint
    from cvpipe.tasks.common import build_model

    cfg = load_config("digits", overrides)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=len(classes))
    preprocess = make_preprocess(cfg.data.augment, cfg.model.in_chans, mean, std)
    save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg), "classes": classes, "preprocess": preprocess}, path)
    return path


@pytest.fixture
def digits_checkpoint(tmp_path):
    """The default digits setup (LeNet, 1 channel, 32 px) and the digits image folder."""
    from cvpipe.data.digits import digits_root

    path = write_checkpoint(tmp_path / "digits.pt", [], [str(i) for i in range(10)], [0.3], [0.37])
    return path, digits_root()


@pytest.fixture
def folder_checkpoint(tmp_path):
    """A user's RGB folder (nested, mixed sizes and formats) and a ResNet-18 checkpoint for it."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for i, (cls, size) in enumerate([("cat", (50, 40)), ("cat", (64, 64)), ("dog", (30, 70)), ("dog", (80, 60))]):
        folder = root / cls / ("nested" if i == 3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.{'jpg' if i % 2 else 'png'}")
    overrides = ["model.name=resnet18", "model.in_chans=3", "data.augment.image_size=48"]
    path = write_checkpoint(tmp_path / "photos.pt", overrides, ["cat", "dog"], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    return path, root
