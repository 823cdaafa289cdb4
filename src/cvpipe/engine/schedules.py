"""Learning-rate schedules as pure functions of the optimiser step.

``lr_factor(cfg, step, steps_per_epoch, epochs)`` gives the multiplier of every group's initial
LR before optimiser step ``step`` (0-based). Nothing else is remembered, so a resumed run (even
one given more epochs) recomputes the same curve instead of replaying scheduler history.
:func:`build_scheduler` wraps it in a ``LambdaLR`` that the trainer steps once per optimiser
step. Settings are in epochs (``step_size``, ``milestones``, ``warmup_epochs``, may be
fractional) and become steps by ``round(epochs * steps_per_epoch)``.

The shapes, with ``T`` total steps, ``W`` warmup steps and ``t`` the step:

- ``constant``: 1.
- ``step``: ``gamma ** (t // S)`` with ``S`` = step_size in steps (torch ``StepLR``).
- ``multistep``: ``gamma ** (number of milestones <= t)`` (torch ``MultiStepLR``).
- ``exponential``: ``gamma ** (t / steps_per_epoch)``, gamma per epoch applied smoothly
  (torch ``ExponentialLR`` with ``gamma ** (1 / steps_per_epoch)`` per step).
- ``cosine``: from 1 to ``min_lr_ratio`` along half a cosine over the ``T - W`` steps after
  warmup (torch ``CosineAnnealingLR``, ``T_max = T - W``).
- ``linear``: from 1 to ``min_lr_ratio`` in a straight line over the same steps (torch
  ``LinearLR``).
- ``onecycle``: torch ``OneCycleLR`` with cosine annealing (its LR divided by ``cfg.lr``):
  up from ``1 / div_factor`` to 1 over the first ``pct_start * T - 1`` steps, then down to
  ``1 / (div_factor * final_div_factor)`` at step ``T - 1``. It has its own warm-up, so
  ``warmup_epochs`` must be 0. Momentum is not cycled.

Warmup (``warmup_epochs > 0``): over the first ``W`` steps the factor is multiplied by a ramp
from ``warmup_factor`` up to 1 (torch ``LinearLR``). Step, multistep and exponential keep
counting epochs from the start of training, as the config states them (torch's
``ChainedScheduler`` of ``LinearLR`` and the schedule); cosine and linear start their decay
when warmup ends, so the LR reaches the full value and then decays (torch's ``SequentialLR``
with the warmup as first phase). Past the last step the factor stays at its final value.
"""

from __future__ import annotations

import difflib
import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from cvpipe.config import ScheduleConfig
from cvpipe.errors import ConfigError

SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "linear", "onecycle")


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    return int(round(epochs * steps_per_epoch))


def lr_factor(cfg: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of the initial LR before optimiser step ``step`` (0-based). Pure function."""
    total = steps_per_epoch * epochs
    warmup = min(epochs_to_steps(cfg.warmup_epochs, steps_per_epoch), total)
    t = max(0, step)
    name = cfg.name
    if name == "constant":
        factor = 1.0
    elif name == "step":
        factor = cfg.gamma ** (t // max(1, epochs_to_steps(cfg.step_size, steps_per_epoch)))
    elif name == "multistep":
        passed = sum(1 for m in cfg.milestones if epochs_to_steps(m, steps_per_epoch) <= t)
        factor = cfg.gamma**passed
    elif name == "exponential":
        factor = cfg.gamma ** (t / steps_per_epoch)
    elif name in ("cosine", "linear"):
        span = max(1, total - warmup)
        progress = min(max(t - warmup, 0), span) / span
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if name == "cosine" else 1.0 - progress
        factor = cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape
    elif name == "onecycle":
        factor = _one_cycle(cfg, min(t, total - 1), total)
    else:
        raise ConfigError(_unknown(name))
    if t < warmup:
        factor *= cfg.warmup_factor + (1.0 - cfg.warmup_factor) * t / warmup
    return factor


def _one_cycle(cfg: ScheduleConfig, t: int, total: int) -> float:
    """torch.optim.lr_scheduler.OneCycleLR (two phases, cosine annealing) relative to max_lr."""
    start = 1.0 / cfg.div_factor
    end = start / cfg.final_div_factor
    rise_end = float(cfg.pct_start * total) - 1.0
    if t <= rise_end:
        low, high, pct = start, 1.0, t / rise_end if rise_end > 0 else 1.0
    else:
        span = (total - 1) - rise_end
        low, high, pct = 1.0, end, (t - rise_end) / span if span > 0 else 1.0
    return high + (low - high) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, SCHEDULES, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(SCHEDULES)}"
    return f"schedule.name {name!r} is not a schedule; {hint}"


def validate_schedule(cfg: ScheduleConfig, steps_per_epoch: int, epochs: int) -> None:
    """Raise :class:`ConfigError` naming the key for a setting the schedule cannot use."""
    if cfg.name not in SCHEDULES:
        raise ConfigError(_unknown(cfg.name))
    if steps_per_epoch < 1 or epochs < 1:
        raise ConfigError(f"a schedule needs >= 1 epoch of >= 1 step (got {epochs} x {steps_per_epoch})")
    if cfg.warmup_epochs < 0:
        raise ConfigError(f"schedule.warmup_epochs must be >= 0, got {cfg.warmup_epochs}")
    if not 0.0 <= cfg.warmup_factor <= 1.0:
        raise ConfigError(f"schedule.warmup_factor must be in [0, 1], got {cfg.warmup_factor}")
    if not 0.0 <= cfg.min_lr_ratio <= 1.0:
        raise ConfigError(f"schedule.min_lr_ratio must be in [0, 1], got {cfg.min_lr_ratio}")
    if cfg.name in ("step", "multistep", "exponential") and not cfg.gamma > 0:
        raise ConfigError(f"schedule.gamma must be > 0, got {cfg.gamma}")
    if cfg.name == "step" and cfg.step_size <= 0:
        raise ConfigError(f"schedule.step_size must be > 0 epochs, got {cfg.step_size}")
    if cfg.name == "onecycle":
        if cfg.warmup_epochs > 0:
            raise ConfigError("schedule.warmup_epochs must be 0 with onecycle, which warms up itself (pct_start)")
        if not 0.0 < cfg.pct_start < 1.0:
            raise ConfigError(f"schedule.pct_start must be in (0, 1), got {cfg.pct_start}")
        if cfg.div_factor <= 0 or cfg.final_div_factor <= 0:
            raise ConfigError("schedule.div_factor and schedule.final_div_factor must be > 0")


class StepLambdaLR(LambdaLR):
    """A ``LambdaLR`` whose factor is a pure function of the step.

    ``load_state_dict`` restores the step count and then re-applies the factor for that step,
    so a run resumed with a different number of epochs continues on the new curve at once.
    """

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.set_step(self.last_epoch)

    def set_step(self, step: int) -> None:
        """Jump to optimiser step ``step``: set the count and every group's LR for it."""
        self.last_epoch = step
        values = [base * fn(step) for base, fn in zip(self.base_lrs, self.lr_lambdas)]
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = values


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleConfig,
    steps_per_epoch: int,
    epochs: int,
    start_step: int = 0,
) -> LambdaLR:
    """A per-step ``LambdaLR`` following ``lr_factor``; call ``scheduler.step()`` after each
    ``optimizer.step()``.

    Each group's LR becomes ``initial_lr * lr_factor(step)``, so groups made with different
    ``lr_scale`` keep their ratios. ``start_step`` positions a new scheduler at a given step
    (for instance after rebuilding the optimiser when layers are unfrozen); a resumed run loads
    the saved ``state_dict`` instead.
    """
    validate_schedule(cfg, steps_per_epoch, epochs)

    def factor(step: int) -> float:  # a plain function: LambdaLR.state_dict then stores no config
        return lr_factor(cfg, step, steps_per_epoch, epochs)

    scheduler = StepLambdaLR(optimizer, factor)
    if start_step:
        scheduler.set_step(start_step)
    return scheduler
