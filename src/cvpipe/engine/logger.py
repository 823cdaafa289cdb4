"""Run logging: console + ``train.log``, ``metrics.csv`` per epoch, TensorBoard scalars.

Only the main process writes; other DDP ranks get a logger that stays quiet.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
from pathlib import Path
from typing import Optional

LOGGER_NAME = "cvpipe"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (it may be replaced, e.g. by pytest)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property wins
        pass


def get_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class RunLogger:
    """Writes everything a run records. ``enabled=False`` turns it into a no-op (rank != 0)."""

    def __init__(self, run_dir: Optional[Path], enabled: bool = True, tensorboard: bool = True):
        self.run_dir = run_dir
        self.enabled = enabled and run_dir is not None
        # Console messages: also without a run folder (library use), but never on DDP ranks != 0,
        # which would print every line once per process.
        self.speaks = enabled
        self.log = get_logger()
        self._file_handler = None
        self._tb = None
        if not self.enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        self._file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.log.addHandler(self._file_handler)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def info(self, message: str) -> None:
        if self.speaks:
            self.log.info(message)

    def warning(self, message: str) -> None:
        if self.speaks:
            self.log.warning(f"warning: {message}")

    @property
    def metrics_csv(self) -> Optional[Path]:
        return self.run_dir / "metrics.csv" if self.run_dir is not None else None

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Append one row to metrics.csv (new columns extend the header) and to TensorBoard."""
        if not self.enabled:
            return
        row = {"epoch": epoch, **{k: _fmt(v) for k, v in metrics.items()}}
        path = self.metrics_csv
        rows, header = [], list(row)
        if path.exists():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                header = list(reader.fieldnames or []) + [k for k in row if k not in (reader.fieldnames or [])]
        rows.append(row)
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(path)
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, epoch)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._file_handler is not None:
            self.log.removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value
