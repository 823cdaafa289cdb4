"""Atomic checkpoint writes and safe loading."""

import os
import pickle

import pytest
import torch

from cvpipe.engine.checkpoint import load_checkpoint, save_checkpoint
from cvpipe.errors import CheckpointError
from cvpipe.tasks.train import load_resume_checkpoint


def test_round_trip_keeps_tensors_and_builtins(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "classes": ["a", "b"], "best": None}
    save_checkpoint(state, tmp_path / "w" / "last.pt")
    loaded = load_checkpoint(tmp_path / "w" / "last.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["epoch"] == 3 and loaded["classes"] == ["a", "b"] and loaded["version"] == 1


def test_interrupted_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def crash_midway(obj, f, *a, **k):
        f.write(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C during the write

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_loading_never_executes_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps([1, 2])])
def test_broken_files_raise_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "t.pt"
    save_checkpoint({"w": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="t.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_legacy_torch_save_files_still_load_and_a_plain_pickle_is_named_as_such(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(3)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(legacy)["w"], torch.arange(3))
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"w": [1, 2]}))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(plain)


def test_refusal_names_what_was_refused_without_torch_warnings(tmp_path, recwarn):
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="system") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_a_run_folder_given_as_checkpoint_points_at_its_weights(tmp_path):
    save_checkpoint({"w": torch.zeros(1)}, tmp_path / "run" / "weights" / "best.pt")
    with pytest.raises(CheckpointError, match="is a folder.*did you mean .*weights/best.pt"):
        load_checkpoint(tmp_path / "run")
    # resuming needs the full state, which only last.pt keeps
    save_checkpoint({"w": torch.zeros(1)}, tmp_path / "run" / "weights" / "last.pt")
    with pytest.raises(CheckpointError, match="is a folder.*did you mean .*weights/last.pt"):
        load_resume_checkpoint(tmp_path / "run")
