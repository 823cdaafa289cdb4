"""Fine-tuning: freezing, per-group learning rates, layer-wise decay and layer surgery.

Every zoo model names its parts (:class:`cvpipe.models.base.Classifier`): ``stem_names``,
``stage_names`` (ordered, input to output) and ``head_names``; the backbone is everything
outside the head. The functions here read only those names, so they work for every family,
and for ``tv:``/``timm:`` models through their adapters.

Typical use (what ``cvpipe train`` does with ``model.freeze*`` and ``model.lr_groups``)::

    freeze(model, prefixes=["backbone"])          # or stages=2, or ["layer1", "conv1"]
    scale = lr_scale_fn(model, {"backbone": 0.1}, layer_decay=0.0)
    optimizer = build_optimizer(model, cfg.optim, scale)   # only trainable parameters
    ...
    model.train(); keep_frozen_bn_eval(model)      # frozen BN keeps its running statistics
    unfreeze(model)                                # e.g. at model.unfreeze_epoch
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from cvpipe.errors import ConfigError
from cvpipe.utils import strip_wrapper_prefixes, unwrap

_FROZEN_ATTR = "_cvpipe_frozen_params"
_BN_FLAG = "_cvpipe_frozen_bn"




def _under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` itself or inside it (dotted boundary: ``layer1`` does not match ``layer10``)."""
    return name == prefix or name.startswith(prefix + ".")


def _as_tuple(entry) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else tuple(entry)


def model_parts(model: nn.Module) -> tuple[tuple[str, ...], list[tuple[str, ...]], tuple[str, ...]]:
    """``(stem prefixes, [prefixes of stage 1, stage 2, ...], head prefixes)`` of a model."""
    m = unwrap(model)
    stem = _as_tuple(getattr(m, "stem_names", ()) or ())
    stages = [_as_tuple(s) for s in (getattr(m, "stage_names", ()) or ())]
    head = _as_tuple(getattr(m, "head_names", ()) or ())
    return stem, stages, head


def _names_in_head(model: nn.Module) -> Callable[[str], bool]:
    _, _, head = model_parts(model)
    if not head:
        raise ConfigError(f"{type(unwrap(model)).__name__} does not say which modules form its head; "
                          "name prefixes explicitly instead of 'backbone'/'head'")
    return lambda name: any(_under(name, h) for h in head)


def _top_level(model: nn.Module) -> str:
    """The top-level module names; a wrapper's inner network (a ``tv:`` model's ``model``) is
    listed by its children, ``model.conv1, model.bn1, ...``, the names freezing takes."""
    stem, stages, _ = model_parts(model)
    inner = {s.split(".")[0] for stage in stages for s in stage}
    names = []
    for n, child in unwrap(model).named_children():
        if not stem and inner == {n} and all("." in s for stage in stages for s in stage):
            names += [f"{n}.{c}" for c, _ in child.named_children()]
        else:
            names.append(n)
    return ", ".join(names)


def _check_prefixes(model: nn.Module, prefixes: Iterable[str], key: str) -> None:
    names = [strip_wrapper_prefixes(n) for n, _ in unwrap(model).named_parameters()]
    stem, _, _ = model_parts(model)
    for p in prefixes:
        if p == "stem" and not stem:
            raise ConfigError(f"{key}: {type(unwrap(model)).__name__} names no stem; use dotted module names "
                              f"(its top-level modules are {_top_level(model)})")
        if p in ("backbone", "head", "stem"):
            continue
        if not any(_under(n, p) for n in names):
            raise ConfigError(f"{key}: {p!r} matches no parameter of the model; its top-level modules are "
                              f"{_top_level(model)} (use dotted names, e.g. {_example_name(model, names)})")


def _example_name(model: nn.Module, names: Sequence[str]) -> str:
    """A dotted module name this model really has (``layer4.1``; ``model.layer4`` for a ``tv:`` model)."""
    _, _, head = model_parts(model)
    body = [n for n in names if not any(_under(n, h) for h in head)] or list(names)
    if not body:
        return "layer4.1"
    parts = body[-1].split(".")
    return ".".join(parts[: max(1, min(2, len(parts) - 1))])


def frozen_selector(model: nn.Module, prefixes: Sequence[str] = (), stages: int = 0) -> Callable[[str], bool]:
    """A predicate on parameter names: True for the parameters ``freeze`` would freeze."""
    prefixes = list(prefixes or [])
    _check_prefixes(model, prefixes, "model.freeze")
    stem, stage_list, _ = model_parts(model)
    chosen: list[str] = [p for p in prefixes if p not in ("backbone", "head", "stem")]
    if "stem" in prefixes:
        chosen += stem
    if stages:
        if stages < 0 or stages > len(stage_list):
            raise ConfigError(f"model.freeze_stages={stages}: this model has {len(stage_list)} stages "
                              f"(0 to {len(stage_list)} allowed)")
        chosen += list(stem)
        for s in stage_list[:stages]:
            chosen += s
    in_head = _names_in_head(model) if ("backbone" in prefixes or "head" in prefixes) else None

    def selected(name: str) -> bool:
        name = strip_wrapper_prefixes(name)
        if any(_under(name, p) for p in chosen):
            return True
        if in_head is not None:
            if "backbone" in prefixes and not in_head(name):
                return True
            if "head" in prefixes and in_head(name):
                return True
        return False

    return selected


def freeze(
    model: nn.Module,
    prefixes: Sequence[str] = (),
    stages: int = 0,
    bn_stats_frozen: bool = True,
) -> list[str]:
    """Stop gradients to part of the model; return the names of the parameters frozen.

    ``prefixes``: dotted module names (``"layer1"``, ``"features.0"``), or ``"backbone"``
    (everything outside the head), ``"stem"``, ``"head"``. ``stages=N``: the stem and the
    first N stages. Both may be combined. With ``bn_stats_frozen`` every BatchNorm whose
    parameters are all frozen is put in eval mode, so its running mean and variance stop
    changing too (call :func:`keep_frozen_bn_eval` after each ``model.train()``).
    """
    selected = frozen_selector(model, prefixes, stages)
    frozen = set(getattr(unwrap(model), _FROZEN_ATTR, set()))
    newly: list[str] = []
    for name, p in unwrap(model).named_parameters():
        if selected(name) and p.requires_grad:
            p.requires_grad_(False)
            frozen.add(name)
            newly.append(name)
    setattr(unwrap(model), _FROZEN_ATTR, frozen)
    if bn_stats_frozen:
        for m in unwrap(model).modules():
            params = list(m.parameters(recurse=False))
            if isinstance(m, _BatchNorm) and params and not any(p.requires_grad for p in params):
                setattr(m, _BN_FLAG, True)
                m.eval()
    return newly


def unfreeze(model: nn.Module) -> list[str]:
    """Undo :func:`freeze`: gradients flow again and frozen BatchNorm layers follow ``model.train()``."""
    m = unwrap(model)
    names = sorted(getattr(m, _FROZEN_ATTR, set()))
    params = dict(m.named_parameters())
    for name in names:
        if name in params:
            params[name].requires_grad_(True)
    setattr(m, _FROZEN_ATTR, set())
    for mod in m.modules():
        if getattr(mod, _BN_FLAG, False):
            setattr(mod, _BN_FLAG, False)
            mod.train(m.training)
    return names


def keep_frozen_bn_eval(model: nn.Module) -> None:
    """Put BatchNorm layers frozen by :func:`freeze` back in eval mode (after ``model.train()``)."""
    for mod in model.modules():
        if getattr(mod, _BN_FLAG, False):
            mod.eval()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that still receive gradients; what an optimiser should get."""
    return [p for p in model.parameters() if p.requires_grad]


def layer_id_fn(model: nn.Module) -> Callable[[str], int]:
    """Depth index of a parameter: 0 for the stem, i for stage i, ``num_stages + 1`` for the rest.

    The rest is the head and the modules after the last stage (a ViT's final norm).
    """
    stem, stages, _ = model_parts(model)
    if not stages:
        raise ConfigError(f"{type(unwrap(model)).__name__} does not define stages; layer-wise decay needs them")
    last = len(stages) + 1

    def layer_id(name: str) -> int:
        name = strip_wrapper_prefixes(name)
        if any(_under(name, p) for p in stem):
            return 0
        for i, prefixes in enumerate(stages, start=1):
            if any(_under(name, p) for p in prefixes):
                return i
        return last

    return layer_id


def lr_scale_fn(
    model: nn.Module, lr_groups: Optional[dict[str, float]] = None, layer_decay: float = 0.0
) -> Optional[Callable[[str], float]]:
    """Map a parameter name to its learning-rate multiplier; None when nothing is configured.

    ``lr_groups``: name prefix -> multiplier. ``"backbone"``, ``"stem"`` and ``"head"`` name the
    model's parts; a dotted prefix (``"layer4"``) is more specific and wins over them, and the
    longest matching prefix wins among dotted ones. Unmatched parameters get 1.
    ``layer_decay`` in (0, 1): a parameter at depth i of L (see :func:`layer_id_fn`) gets
    ``layer_decay ** (L - i)`` in addition, so the head learns at the full rate and the stem
    at the smallest (BEiT / ELECTRA layer-wise decay). 0 or 1 switches it off.
    """
    lr_groups = dict(lr_groups or {})
    if not lr_groups and not layer_decay:
        return None
    if layer_decay < 0 or layer_decay > 1:
        raise ConfigError(f"model.layer_decay={layer_decay}: use a value in (0, 1], or 0 for off")
    for k, v in lr_groups.items():
        if not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"model.lr_groups.{k}={v!r}: a multiplier must be a number >= 0")
    _check_prefixes(model, lr_groups, "model.lr_groups")
    stem, _, _ = model_parts(model)
    needs_head = any(k in lr_groups for k in ("backbone", "head"))
    in_head = _names_in_head(model) if needs_head else (lambda n: False)
    dotted = sorted((k for k in lr_groups if k not in ("backbone", "stem", "head")), key=len, reverse=True)
    layer_id = layer_id_fn(model) if layer_decay and layer_decay < 1 else None
    depth = len(model_parts(model)[1]) + 1 if layer_id else 0

    def scale(name: str) -> float:
        name = strip_wrapper_prefixes(name)
        s = 1.0
        match = next((p for p in dotted if _under(name, p)), None)
        if match is not None:
            s = float(lr_groups[match])
        elif "stem" in lr_groups and any(_under(name, p) for p in stem):
            s = float(lr_groups["stem"])
        elif "head" in lr_groups and in_head(name):
            s = float(lr_groups["head"])
        elif "backbone" in lr_groups and not in_head(name):
            s = float(lr_groups["backbone"])
        if layer_id is not None:
            s *= layer_decay ** (depth - layer_id(name))
        return s

    return scale


# ---- layer surgery -------------------------------------------------------------------------


def _parent(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *path, leaf = dotted.split(".")
    parent = model
    for part in path:
        child = parent._modules.get(part)
        if child is None:
            raise ConfigError(f"no module {dotted!r}: {'.'.join(path)!r} has no child {part!r}; "
                              f"top-level modules: {_top_level(model)}")
        parent = child
    if leaf not in parent._modules:
        where = f"{'.'.join(path)!r}" if path else "the model"
        raise ConfigError(f"no module {dotted!r}: {where} has children {', '.join(parent._modules) or 'none'}")
    return parent, leaf


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    """The submodule at a dotted name (``"layer4.1.conv2"``, ``"features.3"``)."""
    parent, leaf = _parent(model, dotted)
    return parent._modules[leaf]


def replace_module(model: nn.Module, dotted: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``dotted`` in place of the module there; return the old one."""
    parent, leaf = _parent(model, dotted)
    old = parent._modules[leaf]
    setattr(parent, leaf, new)
    return old


def remove_module(model: nn.Module, dotted: str) -> nn.Module:
    """Replace the module at ``dotted`` by ``nn.Identity`` (shapes must still agree); return it.

    An identity rather than a deletion keeps ``forward`` code and ``nn.Sequential`` indices,
    and therefore the state-dict keys of every other layer, valid.
    """
    return replace_module(model, dotted, nn.Identity())


def insert_module(model: nn.Module, dotted: str, module: nn.Module, *, after: bool = True) -> nn.Module:
    """Run ``module`` right after (or before) the module at ``dotted``; return the new wrapper.

    The two become ``nn.Sequential(old, module)`` (or ``(module, old)``) at ``dotted``, so the
    old module's parameters move under ``dotted.0`` (``dotted.1`` when inserted before).
    """
    old = get_module(model, dotted)
    wrapper = nn.Sequential(old, module) if after else nn.Sequential(module, old)
    replace_module(model, dotted, wrapper)
    return wrapper


__all__ = [
    "freeze",
    "frozen_selector",
    "get_module",
    "insert_module",
    "keep_frozen_bn_eval",
    "layer_id_fn",
    "lr_scale_fn",
    "model_parts",
    "remove_module",
    "replace_module",
    "trainable_parameters",
    "unfreeze",
    "unwrap",
]
