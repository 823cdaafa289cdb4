"""Tiny timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Fastest of ``repeats`` wall-clock runs of ``fn()`` in seconds, after ``warmup`` runs.

    The minimum is the least noisy estimate on a shared machine: other load only adds time.
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with three significant figures."""
    return f"{seconds * 1e3:.3g} ms"
