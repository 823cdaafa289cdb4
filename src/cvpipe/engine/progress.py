"""Progress with an ETA: a tqdm bar on a terminal, periodic plain lines otherwise (logs, CI)."""

from __future__ import annotations

import logging
import time
from typing import Iterable, Iterator, Optional

from tqdm import tqdm

from cvpipe.utils import can_draw_bar


def format_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Wrap an iterable; ``update(**stats)`` shows the latest numbers beside the bar.

    On a TTY the bar redraws in place. Otherwise every ``log_every`` items (and at the end) one
    line goes to ``logger``: ``desc 120/500 loss=0.12 lr=0.01 | 45.1 it/s ETA 00:08``.
    ``enabled=False`` (non-main DDP ranks) shows nothing.
    """

    def __init__(
        self,
        iterable: Iterable,
        total: Optional[int] = None,
        desc: str = "",
        enabled: bool = True,
        log_every: int = 50,
        logger: Optional[logging.Logger] = None,
        unit: str = "it",
    ):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc = desc
        self.enabled = enabled
        self.log_every = max(1, log_every)
        self.logger = logger or logging.getLogger("cvpipe")
        self.unit = unit
        self.stats: dict[str, str] = {}
        self.tty = enabled and can_draw_bar()
        self._bar = None
        self._count = 0
        self._start = time.perf_counter()

    def __iter__(self) -> Iterator:
        self._start = time.perf_counter()
        if self.tty:
            self._bar = tqdm(self.iterable, total=self.total, desc=self.desc, unit=self.unit, leave=False, dynamic_ncols=True)
            source = self._bar
        else:
            source = self.iterable
        try:
            for item in source:
                yield item
                self._count += 1
                if self.enabled and not self.tty and (self._count % self.log_every == 0):
                    self._log_line()
        finally:
            if self._bar is not None:
                self._bar.close()

    def update(self, **stats) -> None:
        self.stats = {k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in stats.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.stats, refresh=False)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def _log_line(self) -> None:
        rate = self._count / max(self.elapsed, 1e-9)
        total = f"/{self.total}" if self.total else ""
        eta = f" ETA {format_seconds((self.total - self._count) / rate)}" if self.total and rate > 0 else ""
        stats = " ".join(f"{k}={v}" for k, v in self.stats.items())
        self.logger.info(f"{self.desc} {self._count}{total} {stats} | {rate:.1f} {self.unit}/s{eta}".strip())
