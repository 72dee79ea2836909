"""Writing evaluation report figures: a matplotlib figure saved atomically as PNG and closed
(so a long evaluation does not keep every figure's memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fileio import atomic_path


def save_png(fig: Any, path: Path, *, dpi: int = 90) -> Path:
    """Save `fig` (a matplotlib Figure) as a PNG at `path` atomically, close it, return `path`."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
