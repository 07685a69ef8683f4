"""The live progress of a fit: a rich bar on a terminal, plain periodic lines when forced elsewhere (see :mod:`pixlearn.engine.progress`)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import lightning.pytorch as L

from pixlearn.engine.progress import format_seconds

__all__ = ["TrainProgress"]


def _float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v.item() if hasattr(v, "item") else v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


class TrainProgress(L.Callback):
    """Live progress of a fit; see the module docstring.

    Parameters
    ----------
    live : bool
        A ``rich`` live bar (a terminal) instead of plain lines.
    monitor : str, optional
        The validation metric to show (e.g. ``val_miou``).
    budget : TimeBudget, optional
        Shows the time left against it; without one, an estimate from the steps still to run.
    stream : file, optional
        Where to write (default: stderr at the time of writing).
    every_s : float
        Plain mode: at most one line per this many seconds within an epoch (every epoch end prints one).
    clock : callable
        Seconds (default :func:`time.monotonic`).
    """

    def __init__(
        self, *, live: bool, monitor: str | None = None, budget: Any = None, stream: TextIO | None = None, every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live, self.monitor, self.budget = bool(live), monitor, budget
        self._stream = stream
        self.every_s = float(every_s)
        self.clock = clock
        self.loss: float | None = None
        self.t0 = 0.0
        self._last_line = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._steps_done = 0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    # ------------------------------------------------------------ text
    def _left(self, trainer: Any) -> str:
        if self.budget is not None and self.budget.t0 is not None:
            return f"{format_seconds(self.budget.remaining())} left of {self.budget.minutes:g} min"
        elapsed = self.clock() - self.t0
        try:
            total = int(trainer.estimated_stepping_batches)
        except Exception:  # pragma: no cover
            total = 0
        left_steps = max(total - trainer.global_step, 0)
        if not self._steps_done or not total:
            return f"elapsed {format_seconds(elapsed)}"
        return f"elapsed {format_seconds(elapsed)}, ~{format_seconds(elapsed / self._steps_done * left_steps)} left"

    def _info(self, trainer: Any) -> str:
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.monitor:
            v = _float(trainer.callback_metrics.get(self.monitor))
            if v is not None:
                parts.append(f"{self.monitor} {v:.4g}")
        parts.append(self._left(trainer))
        return "  ".join(parts)

    def _epoch_text(self, trainer: Any) -> str:
        epochs = trainer.max_epochs
        shown = "" if epochs is None or epochs < 0 or epochs >= 10_000 else f"/{epochs}"
        return f"epoch {trainer.current_epoch + 1}{shown}"

    def _batches(self, trainer: Any) -> int | None:
        n = trainer.num_training_batches
        return int(n) if isinstance(n, int) or (isinstance(n, float) and math.isfinite(n)) else None

    def _line(self, trainer: Any, batch_idx: int | None) -> None:
        n = self._batches(trainer)
        step = "" if batch_idx is None else f" step {batch_idx + 1}" + (f"/{n}" if n else "")
        self.stream.write(f"{self._epoch_text(trainer)}{step}  {self._info(trainer)}\n")
        self.stream.flush()
        self._last_line = self.clock()

    # ------------------------------------------------------------ hooks
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.t0 = self._last_line = self.clock()
        if self.live and trainer.is_global_zero:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(file=self.stream, force_terminal=True)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), console=console, transient=False)
            self._bar.start()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.update(self._task, visible=True)
            self._task = self._bar.add_task(self._epoch_text(trainer), total=self._batches(trainer), info=self._info(trainer))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = _float(outputs.get("loss") if isinstance(outputs, dict) else outputs)
        if loss is not None:
            self.loss = loss if self.loss is None else 0.9 * self.loss + 0.1 * loss
        self._steps_done += 1
        if not trainer.is_global_zero:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=batch_idx + 1, info=self._info(trainer))
        elif self.clock() - self._last_line >= self.every_s:
            self._line(trainer, batch_idx)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._bar is not None and self._task is not None and trainer.state.fn == "fit":
            self._bar.update(self._task, info=self._info(trainer))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        if self._bar is not None:
            self._bar.update(self._task, info=self._info(trainer))
        else:
            self._line(trainer, None)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def state_dict(self) -> dict[str, Any]:
        return {}
