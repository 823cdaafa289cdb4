"""Small helpers with no dependencies inside cvpipe, usable from every layer."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import torch.nn as nn

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / DataParallel (``.module``) and ``torch.compile`` (``_orig_mod``)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def strip_wrapper_prefixes(name: str) -> str:
    """``module._orig_mod.layer1.0.weight`` -> ``layer1.0.weight`` (any order, any number)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``"2" < "10"``, ``"img9" < "img10"``.

    Case-insensitive first, then the exact string, so the order is total and deterministic.
    """
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in re.split(r"(\d+)", text) if p)
    return parts, text


def can_draw_bar() -> bool:
    """True when stderr is a terminal a bar fits on. A pseudo-terminal that reports zero
    columns (some containers, `script` without a size) gets plain lines instead: tqdm would
    draw nothing there and the user would see no progress at all."""
    if not sys.stderr.isatty():
        return False
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):
        return False


def sibling_temp_file(path: Path) -> Path:
    """A new empty file beside ``path`` for writing aside and then ``os.replace``-ing into place
    (same folder, so the rename is atomic), with the permissions any new file gets under the
    umask rather than mkstemp's owner-only 0600."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent)  # tools check the suffix
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def file_threads() -> int:
    """Threads for reading and decoding image files: I/O and Pillow's decoders release the GIL,
    so twice the cores keeps them busy while some threads wait on the disk."""
    return min(32, 2 * (os.cpu_count() or 1))
