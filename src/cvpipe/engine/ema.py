"""Exponential moving average (EMA) of model weights.

After every optimiser step the averaged copy moves a little towards the trained weights::

    ema = d * ema + (1 - d) * weights,   d = decay * (1 - exp(-updates / warmup_steps))

The ramp keeps ``d`` small early on, while the first random weights are still being replaced
quickly (the form Ultralytics uses; ``warmup_steps=0`` turns it off). Buffers (BatchNorm
running statistics, counters) are copied rather than averaged: they are already averages.
Evaluating the EMA copy usually gives a smoother, slightly better model.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional, Union

import torch
import torch.nn as nn

from cvpipe.utils import unwrap


class ModelEMA:
    """An averaged copy of ``model`` (unwrapped from DDP / DataParallel / ``torch.compile``).

    ``module`` is the copy, always in eval mode with gradients off; evaluate or save it like
    any model. ``update(model)`` after each optimiser step; ``state_dict()`` /
    ``load_state_dict()`` hold the weights and the update count for checkpoints (tensors and
    numbers only, so they load with ``weights_only=True``).
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.9998,
        warmup_steps: int = 2000,
        device: Optional[Union[str, torch.device]] = None,
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(unwrap(model)).eval()
        self.module.requires_grad_(False)
        if device is not None:
            self.module.to(device)
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.updates = 0

    def current_decay(self) -> float:
        """Decay used by the latest update (the next one if called before updating)."""
        if self.warmup_steps <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.warmup_steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        source = unwrap(model)
        ema_float, new_float = [], []
        for ema_p, p in zip(self.module.parameters(), source.parameters()):
            if ema_p.is_floating_point():
                ema_float.append(ema_p)
                new_float.append(p.detach().to(device=ema_p.device, dtype=ema_p.dtype))
            else:
                ema_p.copy_(p.detach())
        if ema_float:
            torch._foreach_lerp_(ema_float, new_float, 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), source.buffers()):
            ema_b.copy_(b.detach())

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "updates": self.updates,
            "decay": self.decay,
            "warmup_steps": self.warmup_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights and update count; ``decay``/``warmup_steps`` keep this run's settings."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
