"""Every family builds, follows the model contract and trains for one optimiser step."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cvpipe.errors import ConfigError
from cvpipe.models import Classifier, create_model, list_models

# (name, input side, extra kwargs): the cheapest member of each family at a tiny input size.
FAMILIES = [
    ("lenet", 32, {}),
    ("lenet_digits", 28, {}),
    ("alexnet_half", 64, {}),
    ("vgg11_bn", 32, {"hidden": 256}),
    ("googlenet", 32, {}),
    ("resnet18", 32, {}),
    ("mobilenet_v1_050", 32, {}),
    ("mobilenet_v2", 32, {"width_mult": 0.5}),
    ("mobilenet_v3_small", 32, {}),
    ("vit_ti_16", 32, {"img_size": 32}),
]


def _one_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """One SGD step; returns the loss before and after (same batch, eval-free)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    loss = nn.functional.cross_entropy(logits, y)
    if isinstance(out, tuple):
        loss = loss + 0.3 * sum(nn.functional.cross_entropy(a, y) for a in out[1:])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item(), logits


@pytest.mark.parametrize("name,size,kw", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_trains_one_step_and_follows_contract(name, size, kw):
    torch.manual_seed(0)
    in_chans = 1 if name == "lenet_digits" else 3
    model = create_model(name, num_classes=5, in_chans=in_chans, **kw)
    assert isinstance(model, Classifier)
    x = torch.randn(4, in_chans, size, size)
    y = torch.tensor([0, 1, 2, 3])
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss, logits = _one_step(model, x, y)
    assert logits.shape == (4, 5) and torch.isfinite(torch.tensor(loss))
    changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) >= 0.9 * len(before), f"only {len(changed)}/{len(before)} parameters moved"

    model.eval()
    with torch.inference_mode():
        out = model(x)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        assert isinstance(out, torch.Tensor) and out.shape == (4, 5)
        torch.testing.assert_close(model.forward_head(feats), out)
        assert pooled.shape == (4, model.num_features)
        # The CAM layer exists and gives a spatial map (CNNs) or tokens (ViT).
        grabbed = []
        layer = dict(model.named_modules())[model.default_cam_layer]
        handle = layer.register_forward_hook(lambda m, i, o: grabbed.append(o))
        model(x)
        handle.remove()
        assert grabbed and grabbed[0].ndim in (3, 4)

    model.reset_classifier(3)
    with torch.inference_mode():
        assert model(x).shape == (4, 3)
    model.reset_classifier(0)
    with torch.inference_mode():
        assert model(x).shape == (4, model.num_features)


def test_googlenet_aux_outputs_only_in_training():
    model = create_model("googlenet", num_classes=4)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 4) for o in out)
    model.eval()
    with torch.inference_mode():
        assert model(x).shape == (2, 4)
    model = create_model("googlenet", num_classes=4, aux_logits=False).train()
    assert isinstance(model(x), torch.Tensor)


def test_lenet_shapes_match_the_notes():
    model = create_model("lenet", num_classes=10).eval()
    with torch.inference_mode():
        f = model.forward_features(torch.randn(2, 3, 32, 32))
    assert f.shape == (2, 32, 5, 5)  # flattened: 800, as in the notes
    assert model.fc1.in_features == 800 and model.fc1.out_features == 120 and model.fc2.out_features == 84
    assert sum(p.numel() for p in model.parameters()) == 121_182
    digits = create_model("lenet_digits", num_classes=10, in_chans=1).eval()
    with torch.inference_mode():
        assert digits.forward_features(torch.randn(1, 1, 28, 28)).shape == (1, 16, 5, 5)
        assert digits(torch.randn(1, 1, 32, 32)).shape == (1, 10)
        assert create_model("lenet_digits", num_classes=10, in_chans=3)(torch.randn(1, 3, 28, 28)).shape == (1, 10)


def test_alexnet_half_matches_the_notes():
    model = create_model("alexnet_half", num_classes=5).eval()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [48, 128, 192, 192, 128]
    with torch.inference_mode():
        assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 128, 6, 6)
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(4608, 2048), (2048, 2048), (2048, 5)]


def test_mobilenet_v1_width_multiplier_thins_every_layer():
    full = create_model("mobilenet_v1", num_classes=10)
    half = create_model("mobilenet_v1", num_classes=10, width_mult=0.5)
    assert full.num_features == 1024 and half.num_features == 512
    depthwise = [m for m in full.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 13 and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    # Cost is roughly quadratic in the width multiplier.
    ratio = sum(p.numel() for p in half.parameters()) / sum(p.numel() for p in full.parameters())
    assert 0.2 < ratio < 0.35


@pytest.mark.parametrize("attention", ["se", "cbam", "srm"])
def test_resnet_attention_switch_inserts_into_every_block(attention):
    model = create_model("resnet18", num_classes=3, attention=attention)
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and all(not isinstance(b.attn, nn.Identity) for b in blocks)
    loss, _ = _one_step(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    assert loss == loss  # finite, not NaN
    with torch.device("meta"):  # structure only: the bottleneck path shares the code above
        bottleneck = create_model("resnext50_32x4d", num_classes=3, attention=attention)
    assert all(not isinstance(b.attn, nn.Identity) for b in bottleneck.layer4)
    assert bottleneck.eval().layer4[0].attn(torch.empty(1, 2048, 1, 1, device="meta")).shape == (1, 2048, 1, 1)


@pytest.mark.parametrize(
    "act,norm", [("silu", "gn"), ("prelu", "ln"), ("leaky_relu", "frozen_bn"), ("hard_swish", "bn"), ("gelu", "")]
)
def test_activation_and_norm_by_name(act, norm):
    model = create_model("resnet18", num_classes=2, act_layer=act, norm_layer=norm)
    acts = {type(m).__name__ for m in model.modules()}
    expected_act = {"silu": "SiLU", "prelu": "PReLU", "leaky_relu": "LeakyReLU", "hard_swish": "Hardswish", "gelu": "GELU"}
    expected_norm = {"gn": "GroupNorm", "ln": "LayerNorm2d", "frozen_bn": "FrozenBatchNorm2d", "bn": "BatchNorm2d", "": "BatchNorm2d"}
    assert expected_act[act] in acts and "ReLU" not in acts
    assert expected_norm[norm] in acts
    model.eval()
    with torch.inference_mode():
        assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()


def test_zero_init_residual_starts_every_block_as_identity():
    model = create_model("resnet50", num_classes=2, zero_init_residual=True).eval()
    block = model.layer3[1]  # identity shortcut
    assert torch.count_nonzero(block.bn3.weight) == 0
    x = torch.randn(1, 1024, 4, 4)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), torch.relu(x))
    default = create_model("resnet50", num_classes=2)
    assert torch.count_nonzero(default.layer3[1].bn3.weight) > 0


def test_empty_options_mean_default_and_unknown_options_are_config_errors():
    a = create_model("resnet18", num_classes=2, attention="", act_layer="", norm_layer="", drop_rate=None)
    assert {type(m).__name__ for m in a.modules()} >= {"ReLU", "BatchNorm2d"}
    with pytest.raises(ConfigError, match="attention"):
        create_model("vgg11", num_classes=2, attention="se")
    with pytest.raises(ConfigError, match="unknown activation"):
        create_model("resnet18", act_layer="swishy")
    with pytest.raises(ConfigError, match="unknown norm"):
        create_model("resnet18", norm_layer="nope")
    with pytest.raises(ConfigError, match="unknown attention"):
        create_model("resnet18", attention="eca")
    with pytest.raises(ConfigError, match="did you mean resnet18"):
        create_model("resnet19")


def test_registry_lists_every_family():
    names = set(list_models())
    expected = {
        "lenet", "lenet_digits", "alexnet", "alexnet_half", "googlenet",
        *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
        *(f"resnet{d}" for d in (18, 34, 50, 101, 152)), "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
        "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
        *(f"vit_{s}_{p}" for s in ("ti", "s", "b") for p in (16, 32)),
    }
    assert expected <= names
    assert list_models("vit_b*") == ["vit_b_16", "vit_b_32"]


def test_check_input_size_names_the_fix_and_leaves_the_model_alone():
    from cvpipe.models import check_input_size

    model = create_model("alexnet_half", num_classes=3).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_input_size(model, (8, 3, 64, 64))  # fits: nothing happens
    with pytest.raises(ConfigError, match=r"alexnet_half cannot run on a 3x32x32 .*too small.*data.augment.image_size"):
        check_input_size(model, (8, 3, 32, 32), setting="data.augment.image_size", name="alexnet_half")
    with pytest.raises(ConfigError, match="not divisible by the patch size"):  # the model's own message
        check_input_size(create_model("vit_ti_16", img_size=32), (1, 3, 40, 40))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("resnet18", {"foo": 1}, "does not take the option 'foo'"),
        ("vit_ti_16", {"depth": 6}, "sets 'depth' itself"),  # the builder fixes it: not a TypeError traceback
        ("mobilenet_v2", {"width_mult": "abc"}, "cannot be built with width_mult='abc'"),
        ("vgg11", {"hidden": "x"}, "cannot be built with hidden='x'"),
        ("tv:resnet18", {"num_classes_typo": 1}, "does not take the option"),
    ],
)
def test_bad_model_options_are_config_errors(name, options, message):
    with torch.device("meta"), pytest.raises(ConfigError, match=message) as info:
        create_model(name, **options)
    assert "\n" not in str(info.value)
