"""Run a model over a loader and collect its outputs from every rank."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from cvpipe.engine.distributed import all_gather_variable
from cvpipe.engine.progress import Progress
from cvpipe.utils import unwrap

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_context(device: torch.device, precision: str):
    """``torch.autocast`` for fp16/bf16, a no-op for fp32: one code path for every precision."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def collect_outputs(
    model: nn.Module,
    loader,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
    desc: str = "eval",
    show_progress: bool = True,
    log_every: int = 50,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) as float32 on the CPU and targets (N,) or (N, C), gathered over ranks.

    With an unpadded distributed sampler every sample is counted exactly once. The model is
    put in eval mode and restored to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    logits, targets = [], []
    try:
        for images, target in Progress(loader, desc=desc, enabled=show_progress, log_every=log_every):
            with autocast_context(device, precision):
                out = model(to_device(images, device, channels_last))
            logits.append(out.float())
            targets.append(target.to(device))
    finally:
        model.train(was_training)
    if logits:
        out_logits, out_targets = torch.cat(logits), torch.cat(targets)
    else:  # a rank with an empty shard still takes part in the gather, with the right shapes
        out_logits = torch.zeros((0, int(getattr(unwrap(model), "num_classes", 0))), device=device)
        known = getattr(loader.dataset, "targets", None)
        out_targets = known[:0].to(device) if isinstance(known, torch.Tensor) else torch.zeros(0, dtype=torch.long, device=device)
    return all_gather_variable(out_logits).cpu(), all_gather_variable(out_targets).cpu()
