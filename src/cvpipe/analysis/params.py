"""Parameter counts: total, trainable, and per module."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn as nn


@dataclass
class ParamCount:
    total: int
    trainable: int
    buffers: int  # elements in buffers (BN running statistics...): state, not parameters
    bytes: int  # memory of parameters and buffers
    per_module: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (total, trainable), inclusive

    @property
    def frozen(self) -> int:
        return self.total - self.trainable


def count_parameters(model: nn.Module) -> ParamCount:
    """Count each parameter once, even when modules share it (tied embeddings, reused blocks).

    ``per_module[name]`` includes the module's children, so ``per_module[""]`` is the whole model.
    """
    params = list(model.parameters())  # parameters() already skips duplicates
    buffers = list(model.buffers())
    per_module = {}
    for name, module in model.named_modules(remove_duplicate=False):  # every name of a shared module
        own = list(module.parameters())
        per_module[name] = (sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad))
    return ParamCount(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        buffers=sum(b.numel() for b in buffers),
        bytes=sum(p.numel() * p.element_size() for p in params) + sum(b.numel() * b.element_size() for b in buffers),
        per_module=per_module,
    )
