"""Progress on stderr for every training, scoring and prediction loop.

* :class:`~pixlearn.engine.train_progress.TrainProgress` (a Lightning callback): on a terminal, a live ``rich`` bar with the epoch,
  the step, the running loss, the validation metric and the time left (against the ``--minutes``
  budget when there is one); when stderr is not a terminal and progress is forced (``--progress``),
  plain lines -- one per epoch and one every ``every_s`` seconds within an epoch -- that read well
  in CI logs. Without a terminal and without ``--progress`` it is not installed at all.
* :func:`track` and :func:`progress_bar`: the same policy for any loop over images (a bar on a
  terminal, silence otherwise), used by scoring and prediction.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

__all__ = ["show_progress", "track", "progress_bar", "format_seconds"]

T = TypeVar("T")


def show_progress(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show progress: as asked, else when ``stream`` (stderr) is a terminal."""
    if progress is not None:
        return bool(progress)
    s = sys.stderr if stream is None else stream
    return bool(getattr(s, "isatty", lambda: False)())


def format_seconds(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``; ``3725`` -> ``"1:02:05"``.

    >>> format_seconds(75.2), format_seconds(3725), format_seconds(float("nan"))
    ('1:15', '1:02:05', '?')
    """
    if not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def track(items: Iterable[T], *, total: int | None = None, description: str = "", progress: bool | None = None) -> Iterator[T]:
    """Iterate ``items`` with a bar on stderr when ``progress`` (default: when stderr is a terminal).

    >>> list(track([1, 2, 3], progress=False))
    [1, 2, 3]
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not show_progress(progress) or (total is not None and total < 2):
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(file=sys.stderr)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def progress_bar(enabled: bool | None, total: int, description: str) -> tuple[Any, Any]:
    """A ``rich`` bar on stderr and its task, for loops that advance it themselves (``with bar: ... bar.advance(task)``).

    Shown when ``enabled`` (default: when stderr is a terminal); disabled bars cost nothing.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(file=sys.stderr)
    show = console.is_terminal if enabled is None else bool(enabled)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=console, disable=not show, transient=True)
    return bar, bar.add_task(description, total=total)
