"""Weight compatibility with torchvision: same state-dict keys and shapes, same parameter
counts, and identical outputs after copying torchvision's (random) weights into ours.

Oracle: torchvision's own model definitions, built with ``weights=None`` (nothing is
downloaded). To keep the suite cheap, both networks are created on the ``meta`` device (no
memory, no initialisation); torchvision's is then materialised and filled with random values
in one pass, including non-trivial BatchNorm statistics so a misplaced norm layer would show.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.models as tvm
from torchvision.models.vision_transformer import VisionTransformer as TvViT

from cvpipe.models import create_model

# Every torchvision classifier the zoo re-implements, with the input side used for outputs.
ARCHS = {
    "alexnet": 64,
    "vgg11": 32, "vgg11_bn": 32, "vgg13": 32, "vgg13_bn": 32,
    "vgg16": 32, "vgg16_bn": 32, "vgg19": 32, "vgg19_bn": 32,
    "googlenet": 64,
    "resnet18": 64, "resnet34": 64, "resnet50": 64, "resnet101": 64, "resnet152": 64,
    "resnext50_32x4d": 64, "resnext101_32x8d": 64, "wide_resnet50_2": 64,
    "mobilenet_v2": 64, "mobilenet_v3_small": 64, "mobilenet_v3_large": 64,
}
def _tv(name: str, **kw) -> torch.nn.Module:
    if name == "googlenet":
        kw = dict(aux_logits=True, init_weights=True, **kw)
    return getattr(tvm, name)(weights=None, **kw)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Materialise a meta model on the CPU with random, well-scaled values everywhere."""
    model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                t.zero_()  # num_batches_tracked
            elif name.endswith("running_var"):
                t.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.normal_(0, 0.1, generator=g)
            elif t.ndim == 1:  # norm scales
                t.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("weight"):
                t.normal_(0, 1 / math.sqrt(t[0].numel()), generator=g)
            else:  # class token, position embedding
                t.normal_(0, 0.02, generator=g)
    return model.eval()


def _ours_from(name: str, tv: torch.nn.Module, **kw) -> torch.nn.Module:
    with torch.device("meta"):
        ours = create_model(name, **kw)
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    assert not any(t.is_meta for t in ours.state_dict().values())
    return ours.eval()


def _same_structure(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb), set(sa) ^ set(sb)
    bad = [k for k in sa if sa[k].shape != sb[k].shape]
    assert not bad, [(k, sa[k].shape, sb[k].shape) for k in bad[:5]]
    assert _count(a) == _count(b)


@pytest.mark.parametrize("name", list(ARCHS))
def test_same_keys_shapes_and_parameter_count(name):
    with torch.device("meta"):
        tv, ours = _tv(name), create_model(name)
    _same_structure(tv, ours)


def test_documented_parameter_counts():
    with torch.device("meta"):
        assert _count(create_model("resnet50")) == 25_557_032
        assert _count(create_model("alexnet")) == 61_100_840


@pytest.mark.parametrize("name", list(ARCHS))
def test_identical_outputs_with_torchvision_weights(name):
    with torch.device("meta"):
        tv = _tv(name)
    tv = _randomise(tv)
    ours = _ours_from(name, tv)
    x = torch.randn(2, 3, ARCHS[name], ARCHS[name], generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, got = tv(x), ours(x)
    assert expected.abs().max() > 1e-3  # a meaningful comparison, not two zero vectors
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,patch,size", [("vit_b_16", 16, 32), ("vit_b_32", 32, 64)])
def test_vit_matches_torchvision(name, patch, size):
    # The full-size models: structure and parameter count at 224 px ...
    with torch.device("meta"):
        _same_structure(getattr(tvm, name)(), create_model(name))
    # ... and outputs on a small image (torchvision fixes the image size at construction).
    with torch.device("meta"):
        tv = TvViT(image_size=size, patch_size=patch, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)
    tv = _randomise(tv)
    ours = _ours_from(name, tv, img_size=size)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=0)


def test_googlenet_aux_heads_match_in_training_mode():
    """Training mode returns (logits, aux1, aux2); the aux heads equal torchvision's."""
    with torch.device("meta"):
        tv = _tv("googlenet")
    tv = _randomise(tv)
    ours = _ours_from("googlenet", tv)
    for m in (tv, ours):  # train mode, but without dropout noise or BN statistic updates
        m.train()
        for mod in m.modules():
            if isinstance(mod, (torch.nn.Dropout, torch.nn.BatchNorm2d)):
                mod.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        out_tv, out = tv(x), ours(x)
    assert isinstance(out, tuple) and len(out) == 3
    torch.testing.assert_close(out[0], out_tv.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], out_tv.aux_logits1, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[2], out_tv.aux_logits2, atol=1e-5, rtol=0)
