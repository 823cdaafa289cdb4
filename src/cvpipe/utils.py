"""Small helpers with no dependencies inside cvpipe, usable from every layer."""

from __future__ import annotations

import re


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``"2" < "10"``, ``"img9" < "img10"``.

    Case-insensitive first, then the exact string, so the order is total and deterministic.
    """
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in re.split(r"(\d+)", text) if p)
    return parts, text
