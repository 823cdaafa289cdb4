"""``tv:<name>`` and ``timm:<name>`` models follow the contract; nothing is downloaded."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

from cvpipe.errors import ConfigError
from cvpipe.models import create_model
from cvpipe.models.finetune import freeze
from cvpipe.models.weights import load_pretrained


def test_torchvision_model_follows_the_contract(tmp_path):
    model = create_model("tv:mobilenet_v3_small", num_classes=4, in_chans=1).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        feats = model.forward_features(x)
        assert feats.shape == (2, model.num_features) == (2, 1024)
        torch.testing.assert_close(model.forward_head(feats), model(x))
    assert model.default_cam_layer == "model.features"
    model.reset_classifier(6)
    with torch.inference_mode():
        assert model(x).shape == (2, 6)
    freeze(model, prefixes=["backbone"])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]


def test_torchvision_weights_load_into_the_wrapper(tmp_path):
    torch.manual_seed(0)
    ref = tvm.resnet18(weights=None, num_classes=5).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)  # plain torchvision keys: fc.weight, layer1...
    model = create_model("tv:resnet18", num_classes=5)
    report = load_pretrained(model, path)
    assert report.ok and not report.unexpected and "head.weight" in report.matched
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(x), ref(x))


def test_torchvision_aux_outputs_in_training():
    model = create_model("tv:googlenet", num_classes=3, init_weights=False).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 3) for o in out)


@pytest.mark.parametrize(
    "arch,layer",
    [
        ("googlenet", "inception5b"),  # not aux2: auxiliary heads do not run in eval mode
        ("maxvit_t", "blocks.3"),  # a ModuleList never runs as a whole
        ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1"),  # tokens, not the patch projection
        ("swin_t", "permute"),  # (B, C, H, W), not the channels-last features
        ("resnet18", "layer4"),
    ],
)
def test_torchvision_default_cam_layer(arch, layer):
    with torch.device("meta"):  # names only: no memory, no initialisation
        assert create_model(f"tv:{arch}", num_classes=3).default_cam_layer == f"model.{layer}"


def test_torchvision_default_cam_layers_give_spatial_maps():
    from cvpipe.explain import compute_cam

    swin = create_model("tv:swin_t", num_classes=3)
    googlenet = create_model("tv:googlenet", num_classes=3, init_weights=False)
    for model, size in ((swin, (64, 96)), (googlenet, (64, 96))):
        result = compute_cam(model.eval(), torch.randn(1, 3, *size), "gradcam")
        (grid,) = result.layer_maps.values()
        assert grid.shape == (1, 2, 3), model.default_cam_layer  # the stride-32 grid of a 64x96 input


def test_timm_model_follows_the_contract():
    pytest.importorskip("timm")
    model = create_model("timm:resnet10t", num_classes=4, in_chans=2).eval()
    x = torch.randn(1, 2, 32, 32)
    with torch.inference_mode():
        feats = model.forward_features(x)
        assert feats.ndim == 4
        assert model.forward_head(feats, pre_logits=True).shape == (1, model.num_features)
        assert model(x).shape == (1, 4)
    assert model.default_cam_layer == "model.layer4" and model.head_names == ("model.fc",)
    freeze(model, stages=2)
    assert not model.model.layer1[0].conv1.weight.requires_grad and model.model.fc.weight.requires_grad


def test_timm_stem_is_frozen_and_decayed_like_the_zoo_resnet():
    """timm's feature_info starts at the stem activation (no weights): conv1/bn1 were in no part,
    so freeze_stages=1 and "stem" froze nothing and layer-wise decay gave the stem the head's rate."""
    pytest.importorskip("timm")
    from cvpipe.models.finetune import lr_scale_fn

    with torch.device("meta"):
        timm_net, zoo = create_model("timm:resnet18", num_classes=3), create_model("resnet18", num_classes=3)
    assert timm_net.stem_names == ("model.conv1", "model.bn1")
    assert timm_net.stage_names == tuple(f"model.layer{i}" for i in range(1, 5)) == tuple(f"model.{s}" for s in zoo.stage_names)
    ours, theirs = lr_scale_fn(zoo, {}, 0.5), lr_scale_fn(timm_net, {}, 0.5)
    for name, _ in zoo.named_parameters():
        assert theirs("model." + name) == ours(name), name
    assert freeze(timm_net, ["stem"]) == ["model.conv1.weight", "model.bn1.weight", "model.bn1.bias"]
    with torch.device("meta"):
        vit = create_model("timm:vit_tiny_patch16_224", num_classes=3)
    assert set(vit.stem_names) == {"model.cls_token", "model.pos_embed", "model.patch_embed.proj"}
    decay = lr_scale_fn(vit, {}, 0.5)
    assert decay("model.pos_embed") == decay("model.patch_embed.proj.weight") == 0.5**13 < decay("model.blocks.0.norm1.weight")


def test_timm_channels_last_model_gives_spatial_cam_maps():
    """timm's Swin ends in (B, H, W, C): read as (B, C, H, W) that made a 2x192 'map'."""
    pytest.importorskip("timm")
    from cvpipe.explain import compute_cam

    model = create_model("timm:swin_tiny_patch4_window7_224", num_classes=3, embed_dim=24, depths=(1, 1, 1, 1),
                         num_heads=(1, 1, 1, 1), img_size=(64, 96), window_size=2).eval()  # fmt: skip
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        reference = model.model(x)
        torch.testing.assert_close(model(x), reference)
        features = model.forward_features(x)
        assert features.shape == (2, 192, 2, 3)  # the contract's (B, C, H, W)
        torch.testing.assert_close(model.forward_head(features), reference)
    assert model.default_cam_layer == "to_nchw"
    (grid,) = compute_cam(model, x, "gradcam").layer_maps.values()
    assert grid.shape == (2, 2, 3)


def test_unknown_external_names_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean resnet18"):
        create_model("tv:resnet19")
    with pytest.raises(ConfigError, match="unknown prefix"):
        create_model("hub:resnet18")
    with pytest.raises(ConfigError, match="does not take the option"):
        create_model("tv:resnet18", attention="se")
    pytest.importorskip("timm")
    with pytest.raises(ConfigError, match="timm has no classification model"):
        create_model("timm:no_such_net_v9")


def test_timm_missing_is_a_config_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_timm(name, *args, **kwargs):
        if name == "timm":
            raise ImportError("No module named 'timm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(ConfigError, match="pip install timm"):
        create_model("timm:resnet18")
