"""ViT specifics: patch embedding forms, pooling, image sizes, position-embedding resampling,
and timm checkpoints (oracle: timm's own VisionTransformer)."""

from __future__ import annotations

import pytest
import torch

from cvpipe.errors import ConfigError
from cvpipe.models import create_model
from cvpipe.models.vit import resample_pos_embed


@pytest.fixture(scope="module")
def vit_conv():
    torch.manual_seed(0)
    return create_model("vit_ti_16", num_classes=4, img_size=32).eval()


def test_split_patch_embedding_equals_the_convolution(vit_conv):
    """Flatten-then-Linear (the paper's form) is the same map as a PxP/P conv."""
    split = create_model("vit_ti_16", num_classes=4, img_size=32, patch_embed="split").eval()
    split.load_state_dict(vit_conv.state_dict())  # conv_proj -> patch_proj on load
    assert not hasattr(split, "conv_proj") and split.patch_proj.weight.shape == (192, 16 * 16 * 3)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(split(x), vit_conv(x), atol=1e-5, rtol=1e-5)
    # and back: a split checkpoint loads into a conv model
    again = create_model("vit_ti_16", num_classes=4, img_size=32).eval()
    again.load_state_dict(split.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(again(x), vit_conv(x), atol=1e-5, rtol=1e-5)


def test_any_size_divisible_by_the_patch(vit_conv):
    with torch.inference_mode():
        assert vit_conv(torch.randn(1, 3, 48, 80)).shape == (1, 4)  # 3x5 grid from a 2x2 one
        tokens = vit_conv.forward_features(torch.randn(1, 3, 48, 80))
        assert tokens.shape == (1, 1 + 15, 192)
        assert vit_conv.tokens_to_map(tokens, (48, 80)).shape == (1, 192, 3, 5)
    with pytest.raises(ConfigError, match="not divisible by the patch size 16"):
        vit_conv(torch.randn(1, 3, 40, 32))


def test_position_embedding_interpolation_preserves_a_smooth_field():
    # A linear ramp over the grid stays a ramp after bicubic resampling; the class slot is kept.
    ramp = torch.linspace(0, 1, 4).repeat(4, 1)  # 4x4, varies along x
    pos = torch.cat([torch.full((1, 1, 1), 7.0), ramp.reshape(1, 16, 1)], dim=1)
    out = resample_pos_embed(pos, (8, 8))
    assert out.shape == (1, 65, 1) and out[0, 0, 0] == 7.0
    grid = out[0, 1:, 0].reshape(8, 8)
    assert torch.allclose(grid[0], grid[5])  # constant along y
    assert torch.all(grid[0, 1:] >= grid[0, :-1])  # monotone along x


def test_checkpoint_from_another_resolution_loads(vit_conv):
    bigger = create_model("vit_ti_16", num_classes=4, img_size=64)
    bigger.load_state_dict(vit_conv.state_dict())  # 2x2 grid resampled to 4x4
    assert bigger.encoder.pos_embedding.shape == (1, 17, 192)
    # At run time the small model resamples the same way for a 64 px input.
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(bigger.eval()(x), vit_conv(x), atol=1e-5, rtol=1e-5)


def test_mean_pooling_uses_patch_tokens(vit_conv):
    mean = create_model("vit_ti_16", num_classes=4, img_size=32, pool="mean").eval()
    mean.load_state_dict(vit_conv.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        tokens = mean.forward_features(x)
        torch.testing.assert_close(mean.forward_head(tokens, pre_logits=True), tokens[:, 1:].mean(1))
        assert not torch.allclose(mean(x), vit_conv(x))
    with pytest.raises(ConfigError, match="pool"):
        create_model("vit_ti_16", pool="max")


def test_timm_vit_checkpoint_gives_identical_outputs(tmp_path):
    timm = pytest.importorskip("timm")
    from cvpipe.models.weights import load_pretrained

    torch.manual_seed(1)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=4, img_size=32).eval()
    with torch.no_grad():  # timm zero-inits the head; give it values so the comparison means something
        ref.head.weight.normal_(0, 0.02)
    path = tmp_path / "deit_tiny.pth"
    torch.save(ref.state_dict(), path)
    ours = create_model("vit_ti_16", num_classes=4, img_size=32).eval()
    report = load_pretrained(ours, path)
    assert not report.missing and not report.unexpected and not report.shape_mismatch
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
