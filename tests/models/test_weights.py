"""Pretrained loading: file formats, prefixes, head reset, in_chans adaptation, the report."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.models import create_model
from cvpipe.models.weights import adapt_input_conv, load_pretrained, read_state_dict


@pytest.fixture(scope="module")
def source():
    """A ResNet-18 trained (here: randomised) for 10 classes, in eval mode."""
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).eval()
    with torch.no_grad():  # non-trivial BN statistics, so loading them is visible
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), atol=1e-5, rtol=1e-5)


def test_torchvision_state_dict_loads_completely(tmp_path, source):
    path = tmp_path / "tv.pth"
    torch.save(source.state_dict(), path)
    target = create_model("resnet18", num_classes=10)
    report = load_pretrained(target, path)
    assert not report.missing and not report.unexpected and not report.shape_mismatch and report.ok
    assert len(report.matched) == len([k for k in source.state_dict() if "num_batches" not in k])
    _same(target, source, torch.randn(2, 3, 32, 32))


def test_mismatched_checkpoint_report(tmp_path, source):
    """10-class checkpoint into a 3-class model with a different first conv: the head is reset,
    the rest loads, and the report says so (printed and as JSON)."""
    sd = dict(source.state_dict())
    sd["extra.weight"] = torch.zeros(3)  # something the model does not have
    del sd["layer1.0.bn1.running_var"]  # something the model misses
    path = tmp_path / "mismatch.pth"
    torch.save(sd, path)
    target = create_model("resnet18", num_classes=3)
    fresh_head = target.fc.weight.detach().clone()
    report = load_pretrained(target, path)
    assert sorted(report.head_reset) == ["fc.bias", "fc.weight"]
    assert {m["key"] for m in report.shape_mismatch} == {"fc.weight", "fc.bias"}
    assert report.unexpected == ["extra.weight"]
    assert report.missing == ["layer1.0.bn1.running_var", "fc.weight", "fc.bias"]
    assert not report.ok  # a non-head tensor is missing
    torch.testing.assert_close(target.fc.weight, fresh_head)  # head left at its initialisation
    torch.testing.assert_close(target.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    text = str(report)
    assert "head re-initialised" in text and "extra.weight" in text and "layer1.0.bn1.running_var" in text
    out = report.write(tmp_path / "run" / "pretrained_load_report.json")
    data = json.loads(out.read_text())
    assert data["head_reset"] == report.head_reset and data["source"] == str(path)


def test_prefixes_wrappers_and_formats(tmp_path, source):
    sd = source.state_dict()
    ddp = {f"module._orig_mod.{k}": v for k, v in sd.items()}
    files = {
        "ddp.pth": lambda p: torch.save(ddp, p),
        "timm_style.pth": lambda p: torch.save({"state_dict": sd, "epoch": 3}, p),
        "weights.safetensors": lambda p: save_file({k: v.contiguous() for k, v in sd.items()}, str(p)),
        "cvpipe.pt": lambda p: save_checkpoint({"model": ddp, "epoch": 1, "classes": ["a"]}, p),
    }
    x = torch.randn(1, 3, 32, 32)
    for name, write in files.items():
        write(tmp_path / name)
        assert set(read_state_dict(tmp_path / name)) == set(sd), name
        target = create_model("resnet18", num_classes=10)
        report = load_pretrained(target, tmp_path / name)
        assert report.ok and not report.unexpected, name
        _same(target, source, x)


def test_lightning_checkpoint_with_a_model_prefix_loads(tmp_path, source):
    """A LightningModule holding the network as ``self.model`` saves ``state_dict`` keys
    ``model.conv1.weight``...; the shared leading name is dropped because that fits the model."""
    sd = {f"model.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.4"}, tmp_path / "l.ckpt")
    target = create_model("resnet18", num_classes=10)
    report = load_pretrained(target, tmp_path / "l.ckpt")
    assert report.ok and not report.unexpected and report.prefix_removed == "model."
    assert "without the 'model.' prefix" in str(report)
    _same(target, source, torch.randn(1, 3, 32, 32))
    # tv: models are themselves wrapped under "model."; their own keys still win
    tv = create_model("tv:resnet18", num_classes=10)
    wrapped = {f"model.{k}" if not k.startswith("fc.") else f"head.{k[3:]}": v for k, v in source.state_dict().items()}
    torch.save(wrapped, tmp_path / "tv.pth")
    report = load_pretrained(tv, tmp_path / "tv.pth")
    assert report.ok and report.prefix_removed == ""


def test_ema_weights_win_as_in_predict(tmp_path, source):
    """A cvpipe run with EMA validated, saved as best and predicts with ``ema.module``; timm's
    ``state_dict_ema`` is its default too. Fine-tuning from such a file must start from them."""
    ema = {k: (v + 1 if v.is_floating_point() else v) for k, v in source.state_dict().items()}
    save_checkpoint({"model": source.state_dict(), "ema": {"module": ema, "updates": 7}, "epoch": 1}, tmp_path / "best.pt")
    torch.save({"state_dict": source.state_dict(), "state_dict_ema": ema}, tmp_path / "timm.pth")
    for name, entry in (("best.pt", "ema.module"), ("timm.pth", "state_dict_ema")):
        target = create_model("resnet18", num_classes=10)
        report = load_pretrained(target, tmp_path / name)
        assert report.entry == entry and f"({entry})" in str(report)
        torch.testing.assert_close(target.conv1.weight, ema["conv1.weight"])
    save_checkpoint({"model": source.state_dict(), "ema": None, "epoch": 1}, tmp_path / "no_ema.pt")
    target = create_model("resnet18", num_classes=10)
    assert load_pretrained(target, tmp_path / "no_ema.pt").entry == "model"
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight)


def test_unreadable_or_foreign_files_are_one_line_errors(tmp_path, source):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_pretrained(create_model("resnet18"), bad)
    with pytest.raises(CheckpointError, match="no such weights file"):
        load_pretrained(create_model("resnet18"), tmp_path / "missing.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_pretrained(create_model("resnet18"), tmp_path / "bad.safetensors")
    torch.save(source.state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_pretrained(create_model("mobilenet_v3_small"), tmp_path / "resnet.pth")
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_pretrained(create_model("resnet18"), tmp_path / "empty.pth")
    with pytest.raises(CheckpointError) as info:
        load_pretrained(create_model("resnet18"), bad)
    assert "\n" not in str(info.value)


def test_in_chans_sum_reproduces_the_rgb_model_on_grey_images(tmp_path, source):
    """Oracle: the RGB network applied to a grey image replicated over R, G and B."""
    path = tmp_path / "rgb.pth"
    torch.save(source.state_dict(), path)
    grey_model = create_model("resnet18", num_classes=10, in_chans=1)
    report = load_pretrained(grey_model, path, in_chans_mode="sum")
    assert report.adapted == ["conv1.weight"] and report.ok
    grey = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(grey_model.eval()(grey), source(grey.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-4)


def test_in_chans_repeat_keeps_colour_filters():
    torch.manual_seed(0)
    w = torch.randn(8, 3, 3, 3)
    four = adapt_input_conv(w, 4, "repeat")
    torch.testing.assert_close(four[:, :3], w * 0.75)
    torch.testing.assert_close(four[:, 3], w[:, 0] * 0.75)
    # A 4-channel image whose 4th channel repeats R responds like the RGB filter on RGB.
    x = torch.randn(1, 3, 5, 5)
    x4 = torch.cat([x, x[:, :1]], dim=1)
    ref = torch.nn.functional.conv2d(x, w)
    got = torch.nn.functional.conv2d(x4, four)
    # float sums in another order: compare with a tolerance (exact allclose failed 1 run in 5)
    torch.testing.assert_close(got, ref * 0.75 + torch.nn.functional.conv2d(x[:, :1], w[:, :1] * 0.75), atol=1e-5, rtol=1e-5)
    two = adapt_input_conv(w, 2, "sum")
    torch.testing.assert_close(two[:, 0], w.sum(1) / 2)
    with pytest.raises(ConfigError):
        adapt_input_conv(w, 2, "mean")
