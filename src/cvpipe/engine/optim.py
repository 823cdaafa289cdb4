"""Optimisers built from :class:`~cvpipe.config.OptimConfig`, with weight-decay-aware groups.

Weight decay pulls weights towards zero. That regularises convolution and linear kernels, but
on a normalisation layer's scale/shift or on a bias it only fights the layer's purpose (a BN
scale shrunk towards zero silences its channel), so by default those parameters are trained
without decay, as in the "bag of tricks" recipe and timm. A parameter goes without decay when

- it belongs to a normalisation layer (any BatchNorm/GroupNorm/LayerNorm/InstanceNorm/RMSNorm,
  or any module whose class name contains ``Norm``, which covers frozen-BN and LayerNorm2d
  variants), or
- it is 1-D (biases, norm scales, layer-scale gammas) or named ``bias``, or
- a model (or any submodule) lists it in an optional ``no_weight_decay()`` method (timm's
  convention; names relative to that module, shell patterns allowed), or its own name is one of
  the position-embedding / class-token names transformers use (``pos_embed``, ``cls_token``...).

Parameters are grouped by (decay?, LR multiplier); the multiplier comes from an optional
``lr_scale(name)`` callable (per-layer learning rates, layer-wise decay). Every group records
its ``lr_scale`` and a readable ``name``; its ``lr`` is ``cfg.lr * lr_scale``, so a scheduler
that multiplies each group's initial LR by one factor keeps the ratios.
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Optional

import torch
import torch.nn as nn

from cvpipe.config import OptimConfig
from cvpipe.errors import ConfigError
from cvpipe.utils import unwrap

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

# Leaf parameter names that transformer families use for embeddings that must not decay.
EMBEDDING_NAMES = frozenset(
    {
        "pos_embed",
        "pos_embedding",
        "absolute_pos_embed",
        "cls_token",
        "class_token",
        "dist_token",
        "reg_token",
        "relative_position_bias_table",
    }
)

_NORM_TYPES = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)




def is_norm_module(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names of the parameters trained without weight decay (see the module docstring).

    The same rules apply whatever ``requires_grad`` says, so the answer is stable across
    freezing and unfreezing.
    """
    names = _explicit_no_weight_decay(model)
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        own = dict(module.named_parameters(recurse=False))
        if is_norm_module(module):
            names.update(prefix + n for n in own)
        for n, p in own.items():
            if p.ndim <= 1 or n == "bias" or n in EMBEDDING_NAMES:
                names.add(prefix + n)
    return names


def _explicit_no_weight_decay(model: nn.Module) -> set[str]:
    """Names listed by ``no_weight_decay()`` methods, prefixed with their module's name."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        listed = getattr(module, "no_weight_decay", None)
        if callable(listed):
            prefix = f"{module_name}." if module_name else ""
            patterns = [str(p) for p in listed()]
            for name, _ in module.named_parameters():
                if any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns):
                    names.add(prefix + name)
    return names


def param_groups(
    model: nn.Module,
    weight_decay: float,
    lr: float,
    decay_norm_and_bias: bool = False,
    lr_scale: Optional[Callable[[str], float]] = None,
) -> list[dict]:
    """Split the trainable parameters into groups keyed by (decay?, LR multiplier).

    Returns dicts with ``params``, ``weight_decay``, ``lr`` (= ``lr * lr_scale``), ``lr_scale``
    and ``name`` (``"decay"``, ``"no_decay"``, ``"decay@x0.1"``...), in a deterministic order
    (first appearance in ``model.named_parameters()``). With ``decay_norm_and_bias`` only
    parameters a model explicitly lists in ``no_weight_decay()`` are exempt.
    """
    model = unwrap(model)
    if decay_norm_and_bias:
        exempt = _explicit_no_weight_decay(model)
    else:
        exempt = no_weight_decay_names(model)
    groups: dict[tuple[bool, float], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = float(lr_scale(name)) if lr_scale is not None else 1.0
        if scale < 0:
            raise ConfigError(f"learning-rate multiplier for parameter {name} is {scale}; it must be >= 0")
        decay = weight_decay > 0 and name not in exempt
        key = (decay, scale)
        if key not in groups:
            label = ("decay" if decay else "no_decay") + ("" if scale == 1.0 else f"@x{scale:g}")
            groups[key] = {
                "params": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr": lr * scale,
                "lr_scale": scale,
                "name": label,
            }
        groups[key]["params"].append(param)
    return list(groups.values())


def check_optim_config(cfg: OptimConfig) -> str:
    """The optimiser's lower-case name, or a ConfigError naming the setting that no model
    could make right (unknown name, with a suggestion; lr <= 0; negative decay; bad betas)."""
    name = cfg.name.lower()
    if name not in OPTIMIZERS:
        close = difflib.get_close_matches(name, OPTIMIZERS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(OPTIMIZERS)}"
        raise ConfigError(f"optim.name {cfg.name!r} is not an optimiser; {hint}")
    if cfg.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.lr}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"optim.weight_decay must be >= 0, got {cfg.weight_decay}")
    if name == "sgd" and cfg.nesterov and cfg.momentum <= 0:
        raise ConfigError("optim.nesterov needs optim.momentum > 0")
    if name in ("adam", "adamw") and (len(cfg.betas) != 2 or not all(0 <= b < 1 for b in cfg.betas)):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {cfg.betas}")
    return name


def build_optimizer(
    model: nn.Module,
    cfg: OptimConfig,
    lr_scale: Optional[Callable[[str], float]] = None,
) -> torch.optim.Optimizer:
    """The optimiser ``cfg.name`` over ``model``'s trainable parameters.

    - ``sgd``: momentum ``cfg.momentum``, Nesterov when ``cfg.nesterov`` (needs momentum > 0);
    - ``adam`` / ``adamw``: ``cfg.betas``, ``cfg.eps`` (Adam adds decay to the gradient, AdamW
      decouples it);
    - ``rmsprop``: ``cfg.momentum``, ``cfg.eps`` (smoothing constant 0.99, torch's default);
    - ``adagrad``: ``cfg.eps``.

    ``lr_scale(param_name) -> float`` multiplies the learning rate per parameter (names as in
    ``model.named_parameters()`` of the unwrapped model). Raises :class:`ConfigError` for an
    unknown name (with a suggestion), impossible values, or a model with nothing to train.
    """
    name = check_optim_config(cfg)
    groups = param_groups(model, cfg.weight_decay, cfg.lr, cfg.decay_norm_and_bias, lr_scale)
    if not groups:
        raise ConfigError("the model has no trainable parameters; check model.freeze / model.freeze_stages")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps)
    return torch.optim.Adagrad(groups, lr=cfg.lr, eps=cfg.eps)
