"""Pieces every task shares: run folders, rebuilding a trained model from its checkpoint alone,
and ``key=value`` command options."""

from __future__ import annotations

import contextlib
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn

from cvpipe.config import Config, from_dict, parse_override
from cvpipe.engine.checkpoint import load_checkpoint
from cvpipe.errors import CheckpointError, ConfigError


def increment_run_dir(project: Union[str, Path], name: str, exist_ok: bool = False) -> Path:
    """``project/name``, or ``name2``, ``name3``... if taken: an earlier run is never overwritten.

    The folder is created here (``mkdir`` without ``exist_ok`` is atomic), so two processes
    starting at once still get different folders.
    """
    project = Path(project)
    try:
        project.mkdir(parents=True, exist_ok=True)
        if exist_ok:
            path = project / name
            path.mkdir(parents=True, exist_ok=True)
            return path
        base = re.sub(r"\d+$", "", name) or name
        for candidate in [name] + [f"{base}{i}" for i in range(2, 100000)]:
            path = project / candidate
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:  # a file where a folder should be, no permission, a read-only disk...
        raise ConfigError(f"cannot create the output folder {project / name} ({e.strerror}); choose another project folder") from None
    raise ConfigError(f"{project}: too many runs named {name}; choose another name")


@contextlib.contextmanager
def new_run_dir(project: Union[str, Path], name: str) -> Iterator[Path]:
    """A new numbered output folder (:func:`increment_run_dir`), removed again when the command
    fails before writing to it: a mistyped layer or setting must not leave ``exp``, ``exp2``,
    ... behind."""
    out_dir = increment_run_dir(project, name)
    try:
        yield out_dir
    except BaseException:
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


@dataclass
class Trained:
    """A model rebuilt from a checkpoint, with everything prediction needs."""

    model: nn.Module  # eval mode, CPU, EMA weights when the run kept them
    classes: list[str]
    preprocess: dict[str, Any]
    config: Config
    multi_label: bool
    transform: Callable[[torch.Tensor], torch.Tensor]  # uint8 (C, H, W) -> normalised float
    path: Path
    data_fingerprint: Optional[dict] = None  # the training data's Splits.fingerprint(), when the checkpoint has it

    @property
    def in_chans(self) -> int:
        return int(self.preprocess.get("in_chans", 3))

    @property
    def image_mode(self) -> str:
        return "L" if self.in_chans == 1 else "RGB"


def load_trained(path: Union[str, Path]) -> Trained:
    """Rebuild the trained model from a cvpipe checkpoint alone (``weights_only`` loading)."""
    from cvpipe.data.transforms import build_eval_transform

    from cvpipe.models.registry import is_model

    path = Path(path)
    if not path.exists() and (is_model(str(path)) or str(path).startswith(("tv:", "timm:"))):
        raise CheckpointError(
            f"{path} is a model name; this command needs a trained model: give a run's checkpoint, "
            "e.g. runs/train/exp/weights/best.pt (train one with `cvpipe train model.name=...`)"
        )
    if path.suffix.lower() == ".onnx" and path.is_file():  # an exported model, run by ONNX Runtime
        from cvpipe.tasks.export import load_onnx

        return load_onnx(path)
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path}: bare weights, without the classes and preprocessing a cvpipe checkpoint holds; "
            f"fine-tune from them with `cvpipe train model.pretrained={path}` and use the run's weights/best.pt "
            "(`cvpipe profile` also takes a model name)"
        )
    ckpt = load_checkpoint(path)
    missing = [k for k in ("model", "config", "classes", "preprocess") if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: not a cvpipe training checkpoint (missing {', '.join(missing)}); "
            "plain weights go in model.pretrained=PATH instead"
        )
    config = from_dict(Config, ckpt["config"])
    classes = list(ckpt["classes"])
    model = build_model(config, num_classes=len(classes))
    weights = ckpt.get("ema") or ckpt["model"]
    if isinstance(weights, dict) and "module" in weights and "updates" in weights:  # an EMA state
        weights = weights["module"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit model {config.model.name} ({first})") from None
    model.eval()
    return Trained(
        model=model,
        classes=classes,
        preprocess=dict(ckpt["preprocess"]),
        config=config,
        multi_label=bool(ckpt.get("multi_label", False)),
        transform=build_eval_transform(ckpt["preprocess"]),
        path=path,
        data_fingerprint=ckpt.get("data") if isinstance(ckpt.get("data"), dict) else None,
    )


def build_model(config: Config, num_classes: int) -> nn.Module:
    """The configured architecture with the options the config names (empty means default)."""
    from cvpipe.models import create_model

    m = config.model
    options = {
        "drop_rate": m.drop_rate,
        "attention": m.attention or None,
        "act_layer": m.act_layer or None,
        "norm_layer": m.norm_layer or None,
        **m.kwargs,
    }
    return create_model(m.name, num_classes=num_classes, in_chans=m.in_chans, **options)


def parse_options(
    items: Sequence[str], known: dict[str, Callable[[Any], Any]], command: str, dotted_prefixes: Sequence[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Split ``key=value`` items into known options (converted) and dotted config overrides.

    ``known`` maps an option name to a converter; keys starting with one of ``dotted_prefixes``
    (e.g. ``data.``) are returned untouched as overrides. Anything else is an error with a hint.
    """
    options: dict[str, Any] = {}
    overrides: list[str] = []
    for item in items:
        key, value = parse_override(item)
        if any(key.startswith(p) for p in dotted_prefixes):
            overrides.append(item)
            continue
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else f"; options: {', '.join(sorted(known))}"
            raise ConfigError(f"unknown option {key} for `cvpipe {command}`{hint}")
        try:
            options[key] = known[key](value)
        except (TypeError, ValueError):
            raise ConfigError(f"option {key}={value!r} for `cvpipe {command}`: expected {known[key].__name__}") from None
    return options, overrides


def device_for(spec: str) -> torch.device:
    """The device a ``device=`` option of eval/predict/explain names (errors say ``device``)."""
    from cvpipe.engine.distributed import select_device

    return select_device(spec, key="device")


def check_at_least(minimum: int, **options: int) -> None:
    """ConfigError naming the first ``option=value`` below ``minimum`` (e.g. ``batch=0``)."""
    for name, value in options.items():
        if value < minimum:
            raise ConfigError(f"{name}={value}: must be at least {minimum}")


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    if isinstance(value, int):
        return bool(value)
    raise ValueError(value)


as_bool.__name__ = "true/false"


def optional_path(value: Any) -> Optional[str]:
    return None if value in (None, "") else str(value)
