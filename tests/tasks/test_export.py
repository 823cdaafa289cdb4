"""cvpipe export: the written model computes what the PyTorch model computes, in ONNX Runtime,
TorchScript and torch.export, for other batch sizes too, and carries classes and preprocessing."""

from __future__ import annotations

import json
import os
import stat

import onnx
import onnxruntime
import pytest
import torch

import cvpipe
from cvpipe.cli import main
from cvpipe.config import load_config, to_dict
from cvpipe.data.transforms import make_preprocess
from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.tasks.common import build_model, load_trained


def checkpoint(path, model_name: str, classes=("cat", "dog", "emu"), in_chans: int = 3, size: int = 32, multi_label=False):
    """A cvpipe checkpoint with random (not trained) weights: export must not care."""
    torch.manual_seed(0)
    cfg = load_config(None, [f"model.name={model_name}", f"model.in_chans={in_chans}", f"data.augment.image_size={size}"])
    model = build_model(cfg, len(classes))
    preprocess = make_preprocess(cfg.data.augment, in_chans, [0.5] * in_chans, [0.25] * in_chans)
    state = {"model": model.state_dict(), "config": to_dict(cfg), "classes": list(classes), "preprocess": preprocess,
             "multi_label": multi_label, "data": {"train": 9, "val": 3, "digest": "d1"}}
    return save_checkpoint(state, path)


def eager(ckpt, x):
    with torch.no_grad():
        return load_trained(ckpt).model(x)


@pytest.mark.parametrize("model_name", ["lenet", "mobilenet_v3_small", "vit_ti_16"])
def test_onnx_runs_in_onnxruntime_like_pytorch_at_any_batch_size(tmp_path, model_name):
    ckpt = checkpoint(tmp_path / "best.pt", model_name, multi_label=model_name == "lenet")
    result = cvpipe.export(ckpt)
    assert result.path == tmp_path / "best.onnx" and result.checked_with == "onnxruntime" and result.max_abs_diff < 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch size stays free
        x = torch.randn(batch, 3, 32, 32)
        (logits,) = session.run(["logits"], {"images": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(logits), eager(ckpt, x), rtol=1e-4, atol=1e-4)
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert json.loads(meta["classes"]) == ["cat", "dog", "emu"] and meta["model"] == model_name
    assert json.loads(meta["preprocess"])["mean"] == [0.5, 0.5, 0.5]
    assert json.loads(meta["multi_label"]) is (model_name == "lenet")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_and_pt2_load_without_cvpipe_and_match(tmp_path):
    ckpt = checkpoint(tmp_path / "best.pt", "resnet18", in_chans=1, size=40)
    x = torch.randn(3, 1, 40, 40)
    for fmt, load in (("torchscript", torch.jit.load), ("pt2", lambda p, **kw: torch.export.load(p, **kw).module())):
        result = cvpipe.export(ckpt, format=fmt)
        assert result.path.suffix == f".{fmt}" and result.max_abs_diff < 1e-5
        extra = {"cvpipe.json": ""}
        loaded = load(str(result.path), **({"_extra_files": extra} if fmt == "torchscript" else {"extra_files": extra}))
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), eager(ckpt, x), rtol=1e-5, atol=1e-5)
        assert json.loads(json.loads(extra["cvpipe.json"])["classes"]) == ["cat", "dog", "emu"]
        assert stat.S_IMODE(os.stat(result.path).st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_fixed_batch_export_and_the_command_line(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "best.pt", "lenet")
    out = tmp_path / "deploy" / "model.onnx"
    assert main(["export", str(ckpt), f"out={out}", "dynamic=false", "batch=4"]) == 0
    assert f"exported onnx to {out} (input 4x3x32x32)" in capsys.readouterr().out
    assert main(["export", str(ckpt), f"out={tmp_path / 'deploy' / 'bare'}"]) == 0  # the format's suffix is added
    assert (tmp_path / "deploy" / "bare.onnx").is_file() and not (tmp_path / "deploy" / "bare").exists()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [4, 3, 32, 32]


def test_bad_requests_fail_in_one_line_and_leave_an_earlier_export_alone(tmp_path, capsys, monkeypatch):
    ckpt = checkpoint(tmp_path / "best.pt", "lenet")
    earlier = tmp_path / "best.onnx"
    earlier.write_bytes(b"an earlier export")
    for args, message in [
        (["format=tflite"], "format='tflite': use onnx or torchscript or pt2"),
        ([f"out={ckpt}"], "that is the checkpoint itself"),
        (["batch=0"], "batch=0: must be at least 1"),
        (["fromat=onnx"], "did you mean format?"),
        (["opset=7"], "opset=7: the ONNX exporter writes opsets 18 to"),  # it fell back to 18 with a traceback
        (["opset=99"], "opset=99: the ONNX exporter writes opsets 18 to"),
        (["format=torchscript", "opset=18"], "only format=onnx has an opset"),
    ]:
        assert main(["export", str(ckpt), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    (tmp_path / "notes").write_text("a file, not a folder")
    os.mkfifo(tmp_path / "pipe")
    for out, message in [(tmp_path / "notes" / "m.onnx", "cannot write in"), (tmp_path / "pipe", "is not a regular file")]:
        assert main(["export", str(ckpt), f"out={out}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"out={out}: {message}" in err, err
    assert (tmp_path / "notes").read_text() == "a file, not a folder" and stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    (tmp_path / "notes").unlink()
    (tmp_path / "pipe").unlink()
    assert main(["export", str(tmp_path / "absent.pt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    # an exported model that disagrees with PyTorch is not written
    import cvpipe.tasks.export as export_module

    monkeypatch.setattr(export_module, "MISMATCH_TOLERANCE", -1.0)
    assert main(["export", str(ckpt)]) == 2
    assert "differ from PyTorch's by up to" in capsys.readouterr().err
    assert earlier.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.onnx", "best.pt"]


def test_an_opset_the_exporter_did_not_write_and_a_failing_model_are_one_line_each(tmp_path, capfd, monkeypatch):
    import cvpipe.tasks.export as export_module

    ckpt = checkpoint(tmp_path / "best.pt", "lenet")
    monkeypatch.setattr(export_module, "OLDEST_OPSET", 7)  # let opset 7 through to the exporter, which writes 18
    assert main(["export", str(ckpt), "opset=7"]) == 2
    err = capfd.readouterr().err  # file descriptors: the exporter's own logging included
    assert err.count("\n") == 1 and "opset=7: the exporter could not convert LeNet to it (it wrote opset 18)" in err, err
    # AlexNet cannot run on 32 px; torch.onnx's generic wrapper is replaced by the reason, without colour codes
    small = checkpoint(tmp_path / "alexnet.pt", "alexnet_half")
    for fmt in ("onnx", "pt2"):
        assert main(["export", str(small), f"format={fmt}"]) == 2
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and "failed: Given input size" in err and "\x1b" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alexnet.pt", "best.pt"]


def test_without_the_onnx_packages_the_user_is_told_what_to_install(tmp_path, monkeypatch, capsys):
    ckpt = checkpoint(tmp_path / "best.pt", "lenet")
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # import fails as if absent
    assert main(["export", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnxscript is missing" in err and "pip install 'cvpipe[export]'" in err
    assert cvpipe.export(ckpt, format="torchscript").max_abs_diff == 0.0  # the others need nothing more
    monkeypatch.delitem(__import__("sys").modules, "onnxscript")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # no runtime: the checker only, said so
    result = cvpipe.export(ckpt)
    assert result.max_abs_diff is None and result.checked_with == "onnx checker"
    assert "install onnxruntime to compare outputs" in result.describe()


def test_eval_and_predict_take_the_exported_onnx_model_and_agree_with_the_checkpoint(tmp_path, capsys):
    from .synthetic import COLOURS, folder_dataset

    data = folder_dataset(tmp_path / "data", per_class=4)
    ckpt = checkpoint(tmp_path / "best.pt", "lenet", classes=sorted(COLOURS), size=24)
    free = cvpipe.export(ckpt).path
    fixed = cvpipe.export(ckpt, out=tmp_path / "fixed.onnx", dynamic=False, batch=5).path  # 12 images: 5 + 5 + 2
    reference = cvpipe.evaluate(ckpt, data=str(data), save=False)
    assert load_trained(free).data_fingerprint == {"train": 9, "val": 3, "digest": "d1"}  # eval can tell changed data
    for exported in (free, fixed):
        report = cvpipe.evaluate(exported, data=str(data), save=False)
        assert report.paths == reference.paths and torch.equal(report.targets, reference.targets)
        torch.testing.assert_close(report.logits, reference.logits, rtol=1e-4, atol=1e-4)
    ours = cvpipe.predict(free, str(data), save=False)
    theirs = cvpipe.predict(ckpt, str(data), save=False)
    assert [(p.source, p.labels) for p in ours] == [(p.source, p.labels) for p in theirs]
    torch.testing.assert_close(torch.tensor([p.probs for p in ours]), torch.tensor([p.probs for p in theirs]), atol=1e-5, rtol=0)
    # nothing to hook in an exported model: CAM says which file to use instead
    assert main(["cam", str(free), str(next(data.rglob("*.png")))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need the PyTorch checkpoint it came from" in err
    assert main(["export", str(free)]) == 2
    assert "already exported; export from the PyTorch checkpoint" in capsys.readouterr().err
    # an ONNX file cvpipe did not write
    foreign = onnx.load(str(free))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    assert main(["eval", str(tmp_path / "foreign.onnx"), f"data={data}"]) == 2
    assert "without cvpipe's metadata" in capsys.readouterr().err
