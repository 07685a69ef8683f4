"""One fit, whatever the task: Lightning kept quiet, the budget and progress callbacks, the stop reason.

A task builds its :class:`lightning.pytorch.LightningModule`, its run-folder callbacks and its
trainer keywords; :func:`engine_callbacks` adds the time budget (``--minutes``) and the progress
display, and :func:`run_fit` runs ``trainer.fit`` (from a checkpoint when resuming) and says why
it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["quiet_lightning", "engine_callbacks", "EngineCallbacks", "run_fit", "FitOutcome"]


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's info banners and advice warnings off while pixlearn drives it (restored afterwards)."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PossibleUserWarning)
            for msg in (
                ".*does not have many workers.*",
                ".*smaller than the logging interval.*",
                ".*GPU available but not used.*",
                ".*returned `None`.*",
                ".*exists and is not empty.*",
                ".*_pytree.*",
                ".*LeafSpec.*",
                ".*resuming from a checkpoint that ended before the epoch ended.*",
            ):
                warnings.filterwarnings("ignore", message=msg)
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


@dataclass
class EngineCallbacks:
    """The engine's own callbacks for one fit (either may be ``None``)."""

    budget: Any = None
    progress: Any = None

    def as_list(self) -> list[Any]:
        return [cb for cb in (self.budget, self.progress) if cb is not None]


def engine_callbacks(
    *, minutes: float | None, schedule: str, warmup_epochs: float, min_lr_ratio: float, pct_start: float, val_steps: float,
    progress: bool | None, monitor: str | None,
) -> EngineCallbacks:
    """The time budget (when ``minutes``) and the progress display (when :func:`show_progress` says so)."""
    from pixlearn.engine.budget import TimeBudget
    from pixlearn.engine.progress import show_progress

    budget = None
    if minutes:
        budget = TimeBudget(minutes, schedule=schedule, warmup_epochs=warmup_epochs, min_lr_ratio=min_lr_ratio,
                            pct_start=pct_start, val_steps=val_steps)
    shown = None
    if show_progress(progress):
        import sys

        from pixlearn.engine.train_progress import TrainProgress

        shown = TrainProgress(live=bool(sys.stderr.isatty()), monitor=monitor, budget=budget)
    return EngineCallbacks(budget=budget, progress=shown)


@dataclass
class FitOutcome:
    """How a fit went: its seconds, why it stopped and where."""

    fit_seconds: float
    stop_reason: str
    stopped_at: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    trainer: Any = None

    def record(self, manifest: dict[str, Any], *, skipped: Any = ()) -> None:
        """Write the fit's seconds (added to a resumed run's earlier ones), stop reason, stop point, budget and
        the files the last epoch skipped (objects with ``path`` and ``error``) into ``manifest``."""
        timings = manifest.setdefault("timings", {})
        timings["fit_seconds"] = round(self.fit_seconds + timings.get("fit_seconds_before", 0.0), 3)
        manifest["stop_reason"] = self.stop_reason
        if self.stopped_at:
            manifest["stopped_at"] = self.stopped_at
        if self.budget:
            manifest["budget"] = self.budget
        if skipped:
            manifest["skipped_last_epoch"] = [{"path": s.path, "error": s.error} for s in skipped]


def run_fit(
    trainer_kwargs: dict[str, Any], module: Any, *, ckpt_path: str | Path | None, budget: Any = None, early_stopping: Any = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> FitOutcome:
    """Build the Lightning trainer and fit ``module`` (from ``ckpt_path`` when resuming).

    Lightning sets torch's process-wide deterministic flag when the trainer is built; it is put
    back as it was afterwards, for whatever runs next in this process.
    """
    import lightning.pytorch as L
    import torch

    from pixlearn.engine.budget import stop_reason

    before = torch.are_deterministic_algorithms_enabled()
    t0 = time.perf_counter()
    trainer = None
    try:
        with quiet_lightning():
            trainer = L.Trainer(**trainer_kwargs)
            trainer.fit(module, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    except BaseException as exc:
        if on_failure is not None:
            on_failure(exc)
        raise
    finally:  # Lightning sets the process-wide flag; put it back for whatever runs next in this process
        torch.use_deterministic_algorithms(before)
    reason = stop_reason(budget=budget, early_stopping=early_stopping)
    return FitOutcome(fit_seconds=time.perf_counter() - t0, stop_reason=reason,
                      stopped_at=budget.stopped_at if budget is not None and budget.stopped else None,
                      budget=budget.report() if budget is not None else None, trainer=trainer)
