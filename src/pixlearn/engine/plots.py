"""Plot building blocks every task shares: an Agg figure without pyplot, an atomic-enough PNG save, the LR finder's
curve (no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_lr_find"]


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure drawn by the Agg canvas, without pyplot or any global backend change."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], path: str | os.PathLike[str], *, suggestion: float | None = None) -> Path:
    """The LR finder's loss against learning rate (log scale), with the suggested rate marked.

    Examples
    --------
    >>> import tempfile
    >>> plot_lr_find([1e-4, 1e-3, 1e-2], [2.0, 1.5, 3.0], Path(tempfile.mkdtemp()) / "lr.png", suggestion=1e-3).name
    'lr.png'
    """
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (train split)")
    if suggestion:
        ax.axvline(suggestion, color="red", linestyle="--", linewidth=1)
        ax.set_title(f"LR finder: suggestion {suggestion:.3g}")
    else:
        ax.set_title("LR finder")
    return _save(fig, path)
