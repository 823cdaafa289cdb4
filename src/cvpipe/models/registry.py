"""The model registry: every architecture is a named builder function.

``@register_model`` adds a builder to one dict and refuses duplicates; ``create_model`` looks a
name up, drops ``None`` keyword arguments (so a config section can be forwarded untouched) and
builds the model. Two prefixes reach models outside the zoo: ``tv:<name>`` for any torchvision
classification model and ``timm:<name>`` when timm is installed.
"""

from __future__ import annotations

import fnmatch
from typing import Callable

import torch.nn as nn

from cvpipe.errors import ConfigError
from cvpipe.utils import natural_key

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name. Builders take ``num_classes``, ``in_chans``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching ``pattern``, in natural order (resnet18 < resnet101).

    A shell-style pattern (``resnet*``, ``vgg1?``) matches whole names; a plain word matches
    anywhere in the name (``resnet`` finds resnet18 and se_resnet50). Case is ignored."""
    _load_zoo()
    pattern = pattern.lower()
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return sorted((n for n in _MODELS if fnmatch.fnmatchcase(n.lower(), pattern)), key=natural_key)


def is_model(name: str) -> bool:
    _load_zoo()
    return name in _MODELS


def check_model_name(name: str) -> None:
    """ConfigError (with suggestions) unless ``name`` is a zoo model, ``tv:<arch>`` or
    ``timm:<arch>`` that exists; nothing is built."""
    _load_zoo()
    if ":" in name:
        from cvpipe.models.external import check_external_name

        check_external_name(name)
    elif name not in _MODELS:
        import difflib

        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `cvpipe models` to list them"
        raise ConfigError(f"unknown model {name!r}{hint}")


def create_model(name: str, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a registered model.

    ``None`` and ``""`` keyword arguments are dropped so builder defaults apply: a config
    section such as ``ModelConfig`` (where ``attention=""`` means "none") can be forwarded
    untouched. An option the architecture does not take raises :class:`ConfigError`.
    """
    _load_zoo()
    kwargs = {k: v for k, v in kwargs.items() if v is not None and not (isinstance(v, str) and v == "")}
    if ":" in name:  # tv:<name>, timm:<name>; anything else gets a clear "unknown prefix"
        from cvpipe.models.external import create_external

        return create_external(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    check_model_name(name)
    try:
        return _MODELS[name](num_classes=num_classes, in_chans=in_chans, **kwargs)
    except (TypeError, ValueError) as e:
        error = option_error(name, e, kwargs)
        if error is None:
            raise  # no option was given: a bug, not the user's doing
        raise error from None


def option_error(name: str, err: Exception, options: dict) -> ConfigError | None:
    """The ConfigError for a builder that rejected the user's ``options`` (None without options).

    An option the builder does not know, one it sets itself (``depth`` of ``vit_ti_16``), or a
    value of the wrong type or range (``width_mult: abc``) all come from model settings.
    """
    if not options:
        return None
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "unexpected keyword argument" in text:
        bad = text.split("argument")[-1].strip()
        return ConfigError(f"model {name} does not take the option {bad}; remove it from model settings")
    if "multiple values for keyword argument" in text:
        bad = text.split("argument")[-1].strip()
        return ConfigError(f"model {name} sets {bad} itself; remove it from model.kwargs or pick another model")
    given = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return ConfigError(f"model {name} cannot be built with {given} ({text[:160]}); check the model settings")


def _load_zoo() -> None:
    # Importing the package runs every family module's @register_model decorators.
    import cvpipe.models  # noqa: F401


def describe_models(pattern: str = "*", num_classes: int = 1000, in_chans: int = 3) -> list[dict]:
    """One row per registered model matching ``pattern``: name, parameter count, summary.

    Models are built on the ``meta`` device: shapes without memory or initialisation, so
    listing the whole zoo takes well under a second.
    """
    import torch

    rows = []
    for name in list_models(pattern):
        with torch.device("meta"):
            model = _MODELS[name](num_classes=num_classes, in_chans=in_chans)
        doc = (_MODELS[name].__doc__ or "").strip().splitlines()
        rows.append(
            {
                "name": name,
                "params": sum(p.numel() for p in model.parameters()),
                "summary": doc[0] if doc else "",
            }
        )
    return rows
