"""Optimiser construction: weight-decay groups against timm's rules, LR multipliers, errors."""

import pytest
import timm
import torch
import torch.nn as nn
import torchvision
from timm.optim import param_groups_weight_decay

from cvpipe.config import OptimConfig
from cvpipe.engine.optim import build_optimizer, no_weight_decay_names, param_groups
from cvpipe.errors import ConfigError


def _ids(params):
    return {id(p) for p in params}


def _split(optimizer):
    decay, no_decay = set(), set()
    for group in optimizer.param_groups:
        (decay if group["weight_decay"] > 0 else no_decay).update(_ids(group["params"]))
    return decay, no_decay


def _tiny_vit():
    return timm.models.vision_transformer.VisionTransformer(
        img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3
    )


@pytest.mark.parametrize("make", [lambda: torchvision.models.resnet18(num_classes=4), _tiny_vit])
def test_decay_split_matches_timm(make):
    model = make()
    cfg = OptimConfig(name="sgd", weight_decay=1e-4)
    ours_decay, ours_no_decay = _split(build_optimizer(model, cfg))
    no_wd_list = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    reference = param_groups_weight_decay(model, 1e-4, no_weight_decay_list=no_wd_list)
    ref = {g["weight_decay"] > 0: _ids(g["params"]) for g in reference}
    assert ours_decay == ref[True]
    assert ours_no_decay == ref[False]


def test_vit_embeddings_and_norms_are_exempt():
    model = _tiny_vit()
    exempt = no_weight_decay_names(model)
    assert {"pos_embed", "cls_token", "norm.weight", "norm.bias", "head.bias"} <= exempt
    assert "head.weight" not in exempt and "patch_embed.proj.weight" not in exempt


def test_norm_detected_by_module_type_even_when_not_1d():
    class LayerNorm2d(nn.Module):  # a user norm whose scale is (C, 1, 1)
        def __init__(self, c):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(c, 1, 1))

        def forward(self, x):
            return x / x.std(1, keepdim=True) * self.weight

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.norm = LayerNorm2d(4)
            self.token = nn.Parameter(torch.zeros(1, 4, 4))

        def no_weight_decay(self):
            return ["tok*"]

    exempt = no_weight_decay_names(Net())
    assert exempt == {"conv.bias", "norm.weight", "token"}
    groups = param_groups(Net(), 0.1, 1.0, decay_norm_and_bias=True)
    # decay_norm_and_bias keeps only the model's explicit list exempt
    assert [len(g["params"]) for g in groups if g["weight_decay"] == 0] == [1]


def test_only_trainable_params_and_lr_scale_groups():
    model = torchvision.models.resnet18(num_classes=4)
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    cfg = OptimConfig(name="adamw", lr=0.1, weight_decay=0.05)
    opt = build_optimizer(model, cfg, lr_scale=lambda name: 1.0 if name.startswith("fc.") else 0.1)
    in_opt = set().union(*(_ids(g["params"]) for g in opt.param_groups))
    assert in_opt == _ids(p for p in model.parameters() if p.requires_grad)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert set(by_name) == {"decay", "no_decay", "decay@x0.1", "no_decay@x0.1"}
    assert by_name["decay@x0.1"]["lr"] == pytest.approx(0.01)
    assert by_name["decay@x0.1"]["lr_scale"] == 0.1
    assert by_name["no_decay"]["weight_decay"] == 0.0
    assert _ids(by_name["decay"]["params"]) == {id(model.fc.weight)}
    assert _ids(by_name["no_decay"]["params"]) == {id(model.fc.bias)}


@pytest.mark.parametrize(
    "name,cls,check",
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
        ("adam", torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-7}),
        ("adamw", torch.optim.AdamW, {"betas": (0.8, 0.99), "eps": 1e-7}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.8, "eps": 1e-7}),
        ("adagrad", torch.optim.Adagrad, {"eps": 1e-7}),
    ],
)
def test_each_optimiser_steps_like_torch(name, cls, check):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    twin = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    twin.load_state_dict(model.state_dict())
    cfg = OptimConfig(name=name.upper(), lr=0.05, momentum=0.8, nesterov=True, betas=[0.8, 0.99], eps=1e-7,
                      weight_decay=0.01)
    opt = build_optimizer(model, cfg)
    assert type(opt) is cls
    for key, value in check.items():
        assert opt.defaults[key] == value
    # Reference: torch directly, decay only on the two Linear weights.
    decay = [twin[0].weight, twin[2].weight]
    rest = [p for p in twin.parameters() if all(p is not d for d in decay)]
    ref = cls([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=0.05, **check)
    x = torch.randn(8, 5)
    for _ in range(3):
        for m, o in ((model, opt), (twin, ref)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)


def test_ddp_like_wrapper_is_unwrapped():
    model = nn.Sequential(nn.Linear(3, 3))
    names = []
    build_optimizer(nn.DataParallel(model), OptimConfig(), lr_scale=lambda n: names.append(n) or 1.0)
    assert names == ["0.weight", "0.bias"]


def test_errors():
    model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="did you mean adamw"):
        build_optimizer(model, OptimConfig(name="admw"))
    with pytest.raises(ConfigError, match="nesterov"):
        build_optimizer(model, OptimConfig(momentum=0.0, nesterov=True))
    with pytest.raises(ConfigError, match="betas"):
        build_optimizer(model, OptimConfig(name="adam", betas=[0.9]))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable"):
        build_optimizer(model, OptimConfig())
