"""Loading pretrained weights into a model that may not match them exactly.

``load_pretrained(model, path)`` reads a torchvision ``.pth`` (a bare state dict), a timm
``.pth``/``.bin``/``.safetensors`` file or a cvpipe checkpoint (its EMA weights when it has
them, as ``predict`` uses, else ``model``), never running code from the file
(``weights_only=True``; safetensors holds tensors only). Then:

1. strips the ``module.`` (DataParallel / DDP) and ``_orig_mod.`` (``torch.compile``) prefixes,
   and a leading name all keys share when that fits the model better (Lightning's ``model.``);
2. lets the model translate foreign layouts (``Classifier.adapt_state_dict``: e.g. timm ViT
   key names, a position embedding learnt at another resolution);
3. adapts the first convolution when the file was trained on another number of input
   channels (``in_chans_mode``: ``sum`` or ``repeat`` the RGB filters, see
   :func:`adapt_input_conv`);
4. keeps every tensor whose name and shape match; a head trained for another number of
   classes is left at the model's fresh initialisation; anything else that does not fit is
   reported, never silently forced.

The returned :class:`LoadReport` says what happened; print it and ``write`` it to the run folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn as nn

from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.utils import strip_wrapper_prefixes

# Containers other tools wrap a state dict in, most specific first. The exponential moving
# average comes before the raw weights: a cvpipe run trained with EMA validated, saved as best
# and predicts with ``ema.module``, and timm loads ``state_dict_ema`` by default too.
_WRAPPER_KEYS = ("ema.module", "state_dict_ema", "model_ema", "model", "state_dict", "model_state",
                 "model_state_dict", "net")


@dataclass
class LoadReport:
    """What ``load_pretrained`` did with each tensor of the file."""

    source: str
    entry: str = ""  # the file's entry the tensors came from (e.g. "ema.module"); "" for a bare state dict
    prefix_removed: str = ""  # a leading name every key had (a Lightning module's "model."), dropped
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file: left at init
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model: ignored
    shape_mismatch: list[dict[str, Any]] = field(default_factory=list)  # {key, file, model}: left at init
    head_reset: list[str] = field(default_factory=list)  # head tensors re-initialised (class count differs)
    adapted: list[str] = field(default_factory=list)  # first-conv tensors adapted to in_chans

    @property
    def ok(self) -> bool:
        """True when every model tensor outside a reset head came from the file."""
        return not self.missing or set(self.missing) <= set(self.head_reset)

    def __str__(self) -> str:
        notes = ([self.entry] if self.entry else []) + ([f"without the {self.prefix_removed!r} prefix"] if self.prefix_removed else [])
        entry = f" ({', '.join(notes)})" if notes else ""
        lines = [
            f"pretrained weights from {self.source}{entry}: {len(self.matched)} tensors loaded, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.shape_mismatch)} shape mismatches"
        ]
        if self.head_reset:
            lines.append(f"  head re-initialised (class count differs): {', '.join(self.head_reset)}")
        if self.adapted:
            lines.append(f"  adapted to the input channels: {', '.join(self.adapted)}")
        other = [m for m in self.shape_mismatch if m["key"] not in self.head_reset]
        for m in other[:10]:
            lines.append(f"  shape mismatch {m['key']}: file {tuple(m['file'])} vs model {tuple(m['model'])}")
        if len(other) > 10:
            lines.append(f"  ... {len(other) - 10} more shape mismatches")
        for title, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            keys = [k for k in keys if k not in self.head_reset]
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys) - 8} more)" if len(keys) > 8 else "")
                lines.append(f"  {title}: {shown}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Union[str, Path]) -> Path:
        """Write the report as JSON (e.g. ``<run>/pretrained_load_report.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def read_state_dict(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, with ``module.`` / ``_orig_mod.`` prefixes removed.

    Accepts ``.safetensors``, a bare state dict, or a dict wrapping one under ``model``,
    ``state_dict`` (timm, Lightning), ``model_state``, ``model_state_dict`` or ``net``; EMA
    weights (a cvpipe checkpoint's ``ema``, timm's ``state_dict_ema``, ``model_ema``) win when
    the file has them.
    """
    return _read_state_dict(path)[0]


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _read_state_dict(path: Union[str, Path]) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, the entry they came from, "" for a bare state dict) of a weights file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file; check model.pretrained")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({str(e)[:120]})") from None
    else:
        from cvpipe.engine.checkpoint import load_checkpoint

        obj = load_checkpoint(path)
    entry = ""
    for key in _WRAPPER_KEYS:
        outer, _, inner = key.partition(".")
        value = obj.get(outer)
        value = value.get(inner) if inner and isinstance(value, dict) else value
        if _is_state_dict(value):
            obj, entry = value, key
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) < len(obj) / 2:
        raise CheckpointError(
            f"{path}: holds no state dict (top-level keys: {', '.join(map(str, list(obj)[:6]))}); "
            "expected a state dict or a checkpoint with a 'model' or 'state_dict' entry"
        )
    return strip_prefixes(tensors), entry


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading ``module.`` and ``_orig_mod.`` (in any order, any number of times)."""
    return {strip_wrapper_prefixes(key): value for key, value in state_dict.items()}


def adapt_input_conv(weight: torch.Tensor, in_chans: int, mode: str = "sum") -> torch.Tensor:
    """Turn a first-conv weight (O, C, kh, kw) trained on C channels into one for ``in_chans``.

    - ``sum``: every new channel gets the sum of the old filters divided by ``in_chans``; for
      one channel that is the sum of the RGB filters. A grey image (all channels equal) then
      gives exactly the response the RGB network gave to its grey version. Colour-blind.
    - ``repeat``: the old filters are tiled cyclically (R, G, B, R, ...) and scaled by
      C / ``in_chans``, keeping colour selectivity, e.g. for RGB + near-infrared.
    """
    out_c, old_c = weight.shape[:2]
    if mode == "sum":
        new = weight.sum(dim=1, keepdim=True).div(in_chans).expand(out_c, in_chans, *weight.shape[2:])
        return new.clone()
    if mode == "repeat":
        reps = -(-in_chans // old_c)
        return weight.repeat(1, reps, 1, 1)[:, :in_chans].mul(old_c / in_chans).clone()
    raise ConfigError(f"in_chans_mode={mode!r}: use sum or repeat")


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes if p)


def _fit_names(model: nn.Module, state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> tuple[dict, str]:
    """The file's tensors under the model's names, and the leading name dropped ("" if none).

    The model translates foreign layouts itself (``adapt_state_dict``). When every key of the
    file shares one leading name, as in a PyTorch Lightning module that holds the network as
    ``self.model`` or ``self.net``, the translation is also tried without it; whichever version
    fits more tensors (same name and shape) wins.
    """
    adapt = getattr(model, "adapt_state_dict", None)

    def translate(sd: dict) -> dict:
        return adapt(dict(sd)) if callable(adapt) else dict(sd)

    def fits(sd: dict) -> int:
        return sum(k in own and own[k].shape == v.shape for k, v in sd.items())

    best, dropped = translate(state), ""
    leading = {key.partition(".")[0] for key in state}
    if len(leading) == 1 and all("." in key for key in state):
        prefix = leading.pop() + "."
        other = translate({key[len(prefix):]: value for key, value in state.items()})
        if fits(other) > fits(best):
            best, dropped = other, prefix
    return best, dropped


def load_pretrained(
    model: nn.Module,
    path: Union[str, Path],
    *,
    in_chans_mode: str = "sum",
    strict_shapes: bool = False,
) -> LoadReport:
    """Load the weights in ``path`` into ``model`` as far as they fit; return what happened.

    Raises :class:`CheckpointError` when the file cannot be read or not one tensor of it fits
    the model (a checkpoint of another architecture), and, with ``strict_shapes``, when a
    tensor outside the head has the wrong shape.
    """
    if in_chans_mode not in ("sum", "repeat"):
        raise ConfigError(f"in_chans_mode={in_chans_mode!r}: use sum or repeat")
    target = getattr(model, "module", model)  # a DDP / DataParallel wrapper
    target = getattr(target, "_orig_mod", target)  # a compiled model
    state, entry = _read_state_dict(path)
    own = target.state_dict()
    state, prefix = _fit_names(target, state, own)
    report = LoadReport(source=str(path), entry=entry, prefix_removed=prefix)

    # The stem: the first 4-D weight of the model (its first conv, or a ViT's patch projection).
    first_conv = next((k for k, v in own.items() if v.ndim == 4), None)
    if first_conv in state:
        w, mine = state[first_conv], own[first_conv]
        if w.ndim == 4 and w.shape[0] == mine.shape[0] and w.shape[2:] == mine.shape[2:] and w.shape[1] != mine.shape[1]:
            state[first_conv] = adapt_input_conv(w.float(), mine.shape[1], in_chans_mode).to(w.dtype)
            report.adapted.append(first_conv)

    head = tuple(getattr(target, "head_names", ()) or ())
    to_load: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            if not key.endswith("num_batches_tracked"):
                report.unexpected.append(key)
            continue
        if value.shape != own[key].shape:
            report.shape_mismatch.append({"key": key, "file": list(value.shape), "model": list(own[key].shape)})
            if _under(key, head):
                report.head_reset.append(key)
            continue
        to_load[key] = value
        if not key.endswith("num_batches_tracked"):
            report.matched.append(key)
    report.missing = [k for k in own if k not in to_load and not k.endswith("num_batches_tracked")]
    # Head tensors absent from the file (e.g. an aux classifier) stay at init as well.
    report.head_reset += [k for k in report.missing if _under(k, head) and k not in report.head_reset]

    if not report.matched:
        raise CheckpointError(
            f"{path}: none of its {len(state)} tensors fits this model "
            f"(first keys: {', '.join(list(state)[:3])}); is it a checkpoint of another architecture?"
        )
    bad = [m for m in report.shape_mismatch if m["key"] not in report.head_reset]
    if strict_shapes and bad:
        raise CheckpointError(f"{path}: {bad[0]['key']} has shape {tuple(bad[0]['file'])}, "
                              f"the model expects {tuple(bad[0]['model'])} ({len(bad)} mismatches)")
    target.load_state_dict(to_load, strict=False)
    return report


__all__ = ["LoadReport", "adapt_input_conv", "load_pretrained", "read_state_dict", "strip_prefixes"]
