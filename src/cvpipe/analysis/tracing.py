"""One forward pass, watched at two levels: modules (forward hooks) and ATen ops (dispatch).

Counting at the dispatch level sees every op the model really runs, whether it comes from an
``nn.Module``, a functional call (``F.scaled_dot_product_attention``, ``x @ w``, ``torch.cat``) or
a composite op decomposed by PyTorch; the module hooks only tell us *where* (which named module)
each op ran. Observers receive both streams:

- ``on_op(func, args, kwargs, out, scope)``: after each ATen op; ``scope`` is the stack of
  module names running at that moment (outermost first, the root module is ``""``).
- ``on_module_exit(name, module, output)``: after each module's forward.

PyTorch's fused multi-head-attention fast path (one opaque op for the whole block) is switched
off while tracing, so its projections and attention matmuls are seen one by one.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class Observer:
    """Base class: override what you need."""

    def on_op(self, func, args: tuple, kwargs: dict, out: Any, scope: Sequence[str]) -> None:
        pass

    def on_module_exit(self, name: str, module: nn.Module, output: Any) -> None:
        pass


class _OpWatcher(TorchDispatchMode):
    def __init__(self, observers: Sequence[Observer], scope: list[str]):
        super().__init__()
        self.observers = observers
        self.scope = scope

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        scope = tuple(self.scope)
        for observer in self.observers:
            observer.on_op(func, args, kwargs, out, scope)
        return out


@contextlib.contextmanager
def tracing(model: nn.Module, observers: Sequence[Observer]) -> Iterator[None]:
    """Within the block, every forward of ``model`` is reported to ``observers``.

    A module reachable under several names (shared) is reported under the first name
    ``named_modules`` gives it. Hooks are removed and the fast path restored on exit.
    """
    names = {}
    for name, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), name)
    scope: list[str] = []

    def enter(module, args):
        scope.append(names[id(module)])

    def leave(module, args, output):
        name = scope.pop() if scope else names[id(module)]
        for observer in observers:
            observer.on_module_exit(name, module, output)

    handles = []
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave, always_call=True))
        torch.backends.mha.set_fastpath_enabled(False)
        with _OpWatcher(observers, scope):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for handle in handles:
            handle.remove()


def tensors_in(value: Any) -> list[torch.Tensor]:
    """Every tensor inside a (nested) op argument or result."""
    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


def op_name(func) -> str:
    """``aten.addmm.default`` -> ``addmm``."""
    return func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else str(func)
