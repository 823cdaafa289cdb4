"""Measured forward latency: warm-up runs, then timed runs, synchronising CUDA around each."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class Latency:
    device: str
    batch: int
    runs: int
    median_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @property
    def images_per_second(self) -> float:
        return 1000.0 * self.batch / self.median_ms if self.median_ms > 0 else float("inf")


@torch.inference_mode()
def measure_latency(model: nn.Module, inputs: torch.Tensor, warmup: int = 3, runs: int = 10) -> Latency:
    """Time ``model(inputs)`` on the device ``inputs`` live on (model moved there by the caller).

    The median of ``runs`` timed calls after ``warmup`` untimed ones; CUDA work is synchronised
    before reading the clock, so the time covers the kernels, not just their launch.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    cuda = inputs.device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(inputs.device)

    for _ in range(max(0, warmup)):
        model(inputs)
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(inputs)
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    device = torch.cuda.get_device_name(inputs.device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    return Latency(device, int(inputs.shape[0]), runs, statistics.median(times), statistics.fmean(times), min(times), max(times))
