"""Figure creation and saving without a display (matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import matplotlib

matplotlib.use("Agg")  # no screen needed; must run before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.4, 4.8), **kwargs):
    """A figure and its axes (squeezed like ``plt.subplots``)."""
    return plt.subplots(nrows, ncols, figsize=size, **kwargs)


def save_figure(fig, path: Union[str, Path], dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` (parents created) and close it to free memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path
