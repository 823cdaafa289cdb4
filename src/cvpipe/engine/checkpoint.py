"""Checkpoints: plain dicts written atomically and read without executing code.

A training checkpoint holds ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``ema``,
``epoch``, ``step``, ``best``, ``config`` (resolved, as a plain dict), ``classes``,
``preprocess`` (what prediction needs to rebuild the eval transform), ``rng`` and ``version``.
Everything in it is a tensor or a builtin, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Union

import torch

from cvpipe.errors import CheckpointError
from cvpipe.utils import sibling_temp_file

FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: Union[str, Path]) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A crash or Ctrl-C mid-write leaves the previous file at ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_temp_file(path)
    try:
        with open(tmp, "wb") as f:
            torch.save({**state, "version": FORMAT_VERSION}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Union[str, Path], in_run_folder: str = "best.pt") -> dict[str, Any]:
    """Read a file written by :func:`save_checkpoint` (or any ``torch.save`` of safe types).

    Always on the CPU and with ``weights_only=True``: loading never runs code from the file.
    Raises :class:`CheckpointError` naming the file for a missing, truncated or unsafe file;
    for a run folder, it suggests the run's ``weights/<in_run_folder>``.
    """
    path = Path(path)
    if path.is_dir():
        inside = path / "weights" / in_run_folder
        hint = f"did you mean {inside}?" if inside.is_file() else f"give a .pt file, e.g. RUN/weights/{in_run_folder}"
        raise CheckpointError(f"{path}: is a folder, not a checkpoint; {hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a file written by torch.save); check the path")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol before refusing
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data ({_unpickler_reason(e)}); "
            "checkpoints are read with weights_only=True so that loading never runs code"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a PyTorch file: {str(e)[:120]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


# torch.save's legacy (pre-1.6) format opens with a protocol-2 pickle of a 10-byte magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (``PK``), or in the legacy format a pickle that starts
    with its magic number; a plain ``pickle.dump`` of anything is neither."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    return head.startswith(b"PK") or head == _LEGACY_MAGIC


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights-only message that names what was refused."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported global" in line or "Unsupported operand" in line or line.startswith("Trying to"):
            return line[:160]
    return lines[-1][:160] if lines else "unsafe content"
