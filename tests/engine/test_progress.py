"""Progress: a bar only where a bar can be seen, plain lines with an ETA everywhere else."""

import fcntl
import io
import logging
import os
import pty
import struct
import sys
import termios

import pytest

from cvpipe.engine.progress import Progress
from cvpipe.utils import can_draw_bar


def _set_columns(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")
def test_bar_needs_a_terminal_with_columns(monkeypatch):
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as terminal:
            monkeypatch.setattr(sys, "stderr", terminal)
            _set_columns(slave, 100)
            assert can_draw_bar()
            _set_columns(slave, 0)  # a pty nobody sized: tqdm would draw nothing at all
            assert not can_draw_bar()
    finally:
        os.close(master)
        os.close(slave)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not can_draw_bar()


def test_plain_lines_carry_count_stats_and_eta(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    logger = logging.getLogger("cvpipe.test_progress")
    progress = Progress(range(10), desc="epoch 1/3", log_every=4, logger=logger, unit="batch")
    with caplog.at_level(logging.INFO, logger=logger.name):
        for i in progress:
            progress.update(loss=1.0 / (i + 1))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # after items 4 and 8
    assert lines[0].startswith("epoch 1/3 4/10 loss=")
    assert "batch/s ETA " in lines[0]
