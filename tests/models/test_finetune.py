"""Freezing, frozen BatchNorm statistics, per-group learning rates, layer decay, surgery."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cvpipe.config import OptimConfig
from cvpipe.engine.optim import build_optimizer
from cvpipe.errors import ConfigError
from cvpipe.models import create_model
from cvpipe.models.finetune import (
    freeze,
    get_module,
    insert_module,
    keep_frozen_bn_eval,
    layer_id_fn,
    lr_scale_fn,
    remove_module,
    replace_module,
    trainable_parameters,
    unfreeze,
)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    torch.manual_seed(0)
    for _ in range(steps):
        model.train()
        keep_frozen_bn_eval(model)  # what the trainer does after every model.train()
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4,))
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_frozen_backbone_and_bn_statistics_do_not_change_while_the_head_does():
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3)
    frozen = freeze(model, prefixes=["backbone"])
    assert frozen and all(not n.startswith("fc.") for n in frozen)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    before = _snapshot(model)
    # SGD with momentum and weight decay: frozen tensors would move if they reached the optimiser.
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-2))
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    _train_steps(model, opt)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # BN running mean/var and counters included


def test_bn_statistics_update_when_asked():
    model = create_model("resnet18", num_classes=3)
    freeze(model, prefixes=["backbone"], bn_stats_frozen=False)
    before = model.bn1.running_mean.clone()
    _train_steps(model, torch.optim.SGD(trainable_parameters(model), lr=0.1), steps=1)
    assert not torch.equal(before, model.bn1.running_mean)
    assert not model.bn1.weight.requires_grad


def test_freeze_by_stage_count_and_prefix_then_unfreeze():
    model = create_model("resnet18", num_classes=3)
    freeze(model, stages=2)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4", "fc"}
    model.train()
    keep_frozen_bn_eval(model)
    assert not model.layer2[0].bn1.training and model.layer3[0].bn1.training
    freeze(model, prefixes=["layer3.1"])
    assert not model.layer3[1].conv1.weight.requires_grad and model.layer3[0].conv1.weight.requires_grad
    names = unfreeze(model)
    assert "conv1.weight" in names and all(p.requires_grad for p in model.parameters())
    model.train()
    keep_frozen_bn_eval(model)
    assert model.layer2[0].bn1.training  # no longer pinned to eval mode


def test_every_family_defines_stages_and_head():
    for name, kw in [("vgg11_bn", {"hidden": 64}), ("googlenet", {}), ("mobilenet_v2", {}),
                     ("mobilenet_v3_small", {}), ("vit_ti_16", {"img_size": 32}), ("lenet", {}), ("alexnet_half", {})]:
        with torch.device("meta"):
            model = create_model(name, num_classes=3, **kw)
        freeze(model, stages=1)
        n_frozen = sum(not p.requires_grad for p in model.parameters())
        assert 0 < n_frozen < len(list(model.parameters())), name
        unfreeze(model)
        freeze(model, prefixes=["backbone"])
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all(any(n.startswith(h) for h in model.head_names) for n in trainable), name
        unfreeze(model)


def test_bad_freeze_settings_are_config_errors():
    model = create_model("resnet18", num_classes=3)
    with pytest.raises(ConfigError, match="layr1.*top-level modules are conv1"):
        freeze(model, prefixes=["layr1"])
    with pytest.raises(ConfigError, match="4 stages"):
        freeze(model, stages=5)


def test_a_stem_the_model_does_not_name_is_a_config_error_not_a_silent_no_op():
    model = create_model("lenet", num_classes=3)
    with pytest.raises(ConfigError, match="model.freeze: LeNet names no stem; use dotted module names"):
        freeze(model, ["stem"])
    with pytest.raises(ConfigError, match="model.lr_groups: LeNet names no stem"):
        lr_scale_fn(model, {"stem": 0.1})


def test_lr_groups_and_layer_decay():
    model = create_model("resnet18", num_classes=3)
    assert lr_scale_fn(model, {}, 0.0) is None
    scale = lr_scale_fn(model, {"backbone": 0.1, "layer4": 0.5}, 0.0)
    assert scale("fc.weight") == 1.0 and scale("conv1.weight") == 0.1
    assert scale("layer4.1.conv2.weight") == 0.5  # the dotted prefix is more specific
    assert scale("module.layer3.0.bn1.bias") == 0.1  # DDP names work too
    decay = lr_scale_fn(model, {}, 0.5)
    ids = layer_id_fn(model)
    assert [ids(n) for n in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.bias", "fc.bias")] == [0, 1, 4, 5]
    assert decay("fc.weight") == 1.0 and decay("layer4.0.conv1.weight") == 0.5 and decay("conv1.weight") == 0.5**5
    both = lr_scale_fn(model, {"head": 2.0}, 0.5)
    assert both("fc.weight") == 2.0 and both("layer1.0.conv1.weight") == 0.5**4
    # The engine's optimiser builds one group per multiplier.
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, weight_decay=0.0), scale)
    assert sorted({round(g["lr"], 6) for g in opt.param_groups}) == [0.01, 0.05, 0.1]
    with pytest.raises(ConfigError, match="lr_groups"):
        lr_scale_fn(model, {"nothing": 0.1}, 0.0)
    with pytest.raises(ConfigError, match="layer_decay"):
        lr_scale_fn(model, {}, 1.5)


def test_vit_layer_decay_orders_blocks():
    with torch.device("meta"):
        vit = create_model("vit_ti_16", num_classes=3, img_size=32)
    scale = lr_scale_fn(vit, {}, 0.9)
    s = [scale(n) for n in ("class_token", "encoder.layers.encoder_layer_0.ln_1.weight",
                              "encoder.layers.encoder_layer_11.mlp.0.weight", "encoder.ln.weight", "heads.head.weight")]
    assert s == sorted(s) and s[-1] == s[-2] == 1.0 and s[0] == pytest.approx(0.9**13)


def test_layer_surgery():
    model = create_model("resnet18", num_classes=3).eval()
    x = torch.randn(1, 3, 32, 32)
    old = replace_module(model, "fc", nn.Linear(512, 7))
    assert isinstance(old, nn.Linear) and model(x).shape == (1, 7)
    remove_module(model, "layer4.1")
    assert isinstance(get_module(model, "layer4.1"), nn.Identity) and model(x).shape == (1, 7)
    insert_module(model, "layer3", nn.Dropout2d(0.1))
    assert isinstance(get_module(model, "layer3.1"), nn.Dropout2d) and "layer3.0.0.conv1.weight" in model.state_dict()
    assert model(x).shape == (1, 7)
    with pytest.raises(ConfigError, match="has children 0, 1"):
        get_module(model, "layer2.5")
    with pytest.raises(ConfigError, match="no module 'head.fc'"):
        replace_module(model, "head.fc", nn.Identity())


def test_a_tv_model_is_frozen_by_the_names_the_guide_and_the_error_give():
    # The guide's example for tv: models, "model.freeze=[conv1,bn1,layer1]", matched nothing: the
    # torchvision network sits under `model.`. The error listed "model, head" and suggested layer4.1.
    model = create_model("tv:resnet18", num_classes=3)
    with pytest.raises(ConfigError) as error:
        freeze(model, prefixes=["conv1"])
    message = str(error.value)
    assert "model.conv1, model.bn1, model.relu, model.maxpool, model.layer1" in message
    assert "e.g. model.layer4)" in message
    freeze(model, prefixes=["model.conv1", "model.bn1", "model.layer1"])  # the guide's example
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(("model.conv1.", "model.bn1.", "model.layer1."))}
    assert frozen and "head.weight" not in frozen
    with pytest.raises(ConfigError, match=r"top-level modules are conv1, bn1, .* \(use dotted names, e.g. layer4.1\)"):
        freeze(create_model("resnet18", num_classes=3), prefixes=["conv1x"])
