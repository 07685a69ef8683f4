"""A wall-clock training budget (``--minutes``) that every task's training honours.

:class:`TimeBudget` is a Lightning callback. After every optimiser step it asks whether one more
step and the validation that must follow the stop still fit in the budget; when they do not, it
stops the run *inside* the epoch, and Lightning validates at the stop (so the best weights, the
last checkpoint and ``metrics.csv`` are written as at any epoch end). For the cosine and
one-cycle schedules the learning rate follows the clock: the schedule's progress is
``elapsed / budget`` (or ``step / total steps`` when the epochs run out first), so the rate reaches
the end of its schedule when the time does.

The clock is injectable (``clock=``), so a test can advance it a fixed amount per step.

A run resumed from its last checkpoint (``--resume``) continues the clock it saved there: the
seconds spent up to that epoch end count against the same budget and the clock-driven schedule goes
on where it was, so an interrupted run stops where an uninterrupted one would. The lost part of the
interrupted epoch is trained again and not charged. A resumed run that gives a different
``--minutes``, or one whose budget had run out (which must give one), starts a new clock.

:func:`stop_reason` names why a run stopped: ``"budget"``, ``"early_stopping"`` or ``"last_epoch"``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as L

def monotonic() -> float:
    """The budget's default clock (:func:`time.monotonic`)."""
    return time.monotonic()


__all__ = ["TimeBudget", "STOP_REASONS", "stop_reason", "describe_stop", "clock_schedule"]

#: The values of ``stop_reason`` in metrics.json, manifest.json and the report.
STOP_REASONS = ("budget", "early_stopping", "last_epoch")

#: Schedules whose progress follows the clock under a budget (the others keep their epoch logic).
_CLOCK_SCHEDULES = ("cosine", "onecycle")
_WARMUP_START = 0.01


def clock_schedule(schedule: str, minutes: float | None) -> bool:
    """Whether ``schedule`` is driven by :class:`TimeBudget` (the engine then keeps its own LR constant)."""
    return bool(minutes) and schedule in _CLOCK_SCHEDULES


def _cos_between(a: float, b: float, t: float) -> float:
    return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


class TimeBudget(L.Callback):
    """Stop training when the budget runs out (checked every step) and, optionally, drive the LR by the clock.

    Parameters
    ----------
    minutes : float
        The wall-clock budget of the fit (from the start of the first step; data and model set-up
        and the final scoring after the fit are outside it).
    schedule : str
        The run's LR schedule; ``cosine`` and ``onecycle`` follow the clock, others are left alone.
    warmup_epochs, min_lr_ratio, pct_start : float
        The schedule's parameters (linear warmup over this many epochs of steps; cosine floor; one-cycle rise).
    val_steps : float
        What one validation costs in training steps before the first one is timed: the
        validation images over the training batch size (a validation image's forward pass is
        counted like a training image's forward and backward pass: a cautious guess).
    clock : callable, optional
        Seconds as a float (default: this module's :func:`monotonic`).

    Examples
    --------
    >>> t = [0.0]
    >>> b = TimeBudget(1.0, clock=lambda: t[0])
    >>> b.budget_s
    60.0
    """

    def __init__(
        self,
        minutes: float,
        *,
        schedule: str = "constant",
        warmup_epochs: float = 0.0,
        min_lr_ratio: float = 0.01,
        pct_start: float = 0.25,
        val_steps: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
            from pixlearn._core.errors import ConfigError

            raise ConfigError(f"--minutes must be a positive number of minutes, got {minutes!r}")
        self.minutes = float(minutes)
        self.budget_s = self.minutes * 60.0
        self.schedule = schedule
        self.follow_clock = schedule in _CLOCK_SCHEDULES
        self.warmup_epochs, self.min_lr_ratio, self.pct_start = float(warmup_epochs), float(min_lr_ratio), float(pct_start)
        self.val_steps = float(val_steps)
        self._clock = clock
        self.t0: float | None = None
        self.spent_s = 0.0  # seconds of this budget spent before a resumption (restored from the checkpoint)
        self.steps = 0  # optimiser steps taken in this process
        self.val_seconds_total = 0.0
        self.val_seconds_last: float | None = None
        self._v0: float | None = None
        self.warm_steps = 0
        self.t_warm_end: float | None = None
        self.total_steps = 1
        self.start_step = 0
        self.stopped = False
        self.stopped_at: dict[str, Any] | None = None
        self.used_s: float | None = None  # seconds from the first step to the end of the fit (set at the end)
        self._t_setup: float | None = None
        self.setup_s: float | None = None  # Lightning's set-up before the first step (outside the budget)
        self.lr_factor_now = 1.0
        self._base_lrs: list[list[float]] | None = None

    # ------------------------------------------------------------ clock
    def clock(self) -> float:
        """Now, in seconds: the injected clock, else :func:`monotonic` (looked up at call time, so tests can patch it)."""
        return (self._clock or monotonic)()

    def elapsed(self) -> float:
        """Seconds of the budget spent: since the fit started, plus what the run spent before a resumption."""
        return self.spent_s + self._own()

    def _own(self) -> float:
        """Seconds since this process's fit started (0 before it does)."""
        return 0.0 if self.t0 is None else self.clock() - self.t0

    def remaining(self) -> float:
        return max(self.budget_s - self.elapsed(), 0.0)

    def step_seconds(self) -> float:
        """Mean seconds of one training step in this process (validation excluded)."""
        if not self.steps:
            return 0.0
        return max(self._own() - self.val_seconds_total, 0.0) / self.steps

    def validation_estimate(self) -> float:
        """Seconds one validation is expected to take (the last one measured, else ``val_steps`` steps)."""
        if self.val_seconds_last is not None:
            return self.val_seconds_last
        return self.val_steps * self.step_seconds()

    def _fits_another_step(self) -> bool:
        return self.elapsed() + self.step_seconds() + self.validation_estimate() <= self.budget_s

    def _out_of_time(self, trainer: Any) -> bool:
        """Whether to stop now. In a run of several processes (DDP) every process asks on the same step and all stop
        when any is out of time: one that stopped alone would leave the others waiting in their next collective."""
        out = not self._fits_another_step()
        if int(getattr(trainer, "world_size", 1) or 1) > 1:
            out = bool(trainer.strategy.reduce_boolean_decision(out, all=False))
        return out

    # ------------------------------------------------------------ learning rate
    def progress(self, trainer: Any) -> float:
        """Schedule progress in [0, 1] at the end of the coming step: the clock's, or the steps' when they end first."""
        avail = max(self.budget_s - self.validation_estimate(), 1e-9)
        by_clock = (self.elapsed() + self.step_seconds()) / avail
        by_steps = (trainer.global_step + 1) / max(self.total_steps, 1)
        return min(max(by_clock, by_steps, 0.0), 1.0)

    def factor(self, trainer: Any) -> float:
        """The multiplier of the peak learning rate for the coming step."""
        p = self.progress(trainer)
        if self.schedule == "onecycle":
            if p <= self.pct_start:
                return _cos_between(1 / 25, 1.0, p / self.pct_start)
            return _cos_between(1.0, 1 / 25e4, (p - self.pct_start) / max(1.0 - self.pct_start, 1e-9))
        step = trainer.global_step
        if step < self.warm_steps:
            return _WARMUP_START + (1.0 - _WARMUP_START) * step / self.warm_steps
        if self.t_warm_end is None:
            # the first step after the warmup runs at the peak: the cosine starts where it ends
            self.t_warm_end = self.elapsed() + self.step_seconds() if self.warm_steps else 0.0
        # cosine from the end of the warmup to the end of the budget (or of the steps)
        avail = max(self.budget_s - self.validation_estimate(), 1e-9)
        tw = min(self.t_warm_end, avail * 0.999)
        q_clock = (self.elapsed() + self.step_seconds() - tw) / (avail - tw)
        sw = self.start_step + self.warm_steps
        q_steps = (step + 1 - sw) / max(self.total_steps - sw, 1)
        return _cos_between(1.0, self.min_lr_ratio, max(q_clock, q_steps))

    def _apply_lr(self, trainer: Any) -> None:
        if not self.follow_clock:
            return
        f = self.factor(trainer)
        self.lr_factor_now = f
        if self._base_lrs is None:  # the peak rates (a scheduler's initial_lr, else the rate the optimiser started with)
            self._base_lrs = [[g.get("initial_lr", g["lr"]) for g in opt.param_groups] for opt in trainer.optimizers]
        for opt, bases in zip(trainer.optimizers, self._base_lrs):
            for g, base in zip(opt.param_groups, bases):
                g["lr"] = base * f

    # ------------------------------------------------------------ hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._t_setup = self.clock()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.t0 = self.clock()
        if self._t_setup is not None:
            self.setup_s = round(self.t0 - self._t_setup, 3)
        per_epoch = trainer.num_training_batches if isinstance(trainer.num_training_batches, int) else 1
        self.warm_steps = 0 if self.schedule == "onecycle" else max(int(round(self.warmup_epochs * max(per_epoch, 1))), 0)
        self.start_step = int(trainer.global_step)
        try:
            self.total_steps = max(int(trainer.estimated_stepping_batches), 1)
        except Exception:  # pragma: no cover - an iterable without length
            self.total_steps = 1 << 30
        self.warm_steps = min(self.warm_steps, self.total_steps)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._apply_lr(trainer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.steps += 1
        if not self.stopped and self._out_of_time(trainer):
            self._stop(trainer, where="step")
        self._apply_lr(trainer)  # after the engine's per-step scheduler: metrics.csv shows the rate in use

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._v0 = self.clock()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._v0 is None:
            return
        took = self.clock() - self._v0
        self._v0 = None
        self.val_seconds_last = took
        self.val_seconds_total += took

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.stopped and self.steps and self._out_of_time(trainer):
            self._stop(trainer, where="epoch_end")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.used_s = round(self.elapsed(), 3)

    def report(self) -> dict[str, Any]:
        """What the budget did, for manifest.json: the budget, the seconds used, Lightning's set-up, where it stopped."""
        out = {"minutes": self.minutes, "used_s": self.used_s, "setup_s": self.setup_s, "stopped_at": self.stopped_at,
               "validation_s": None if self.val_seconds_last is None else round(self.val_seconds_last, 3)}
        if self.spent_s:
            out["spent_before_resume_s"] = round(self.spent_s, 3)
        return out

    def _stop(self, trainer: Any, *, where: str) -> None:
        trainer.should_stop = True
        # validate at the stop even between two val_every epochs
        if where == "step" and getattr(trainer, "check_val_every_n_epoch", None):
            trainer.check_val_every_n_epoch = 1
        self.stopped = True
        self.stopped_at = {
            "epoch": int(trainer.current_epoch) + 1, "step": int(trainer.global_step),
            "elapsed_s": round(self.elapsed(), 3), "minutes": self.minutes,
        }

    def state_dict(self) -> dict[str, Any]:
        """The clock as a checkpoint keeps it, for a resumed run to continue (see the module's notes)."""
        return {"minutes": self.minutes, "elapsed_s": self.elapsed(), "stopped": self.stopped, "t_warm_end": self.t_warm_end,
                "val_seconds_last": self.val_seconds_last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the saved clock, unless the saved budget ran out or this run has another ``minutes``: then a new one."""
        spent = state_dict.get("elapsed_s")
        if state_dict.get("stopped") or state_dict.get("minutes") != self.minutes or not isinstance(spent, (int, float)):
            return  # a new budget (checkpoints from before the clock was saved hold {})
        self.spent_s = max(float(spent), 0.0)
        self.t_warm_end = state_dict.get("t_warm_end")
        self.val_seconds_last = state_dict.get("val_seconds_last")


def stop_reason(*, budget: TimeBudget | None, early_stopping: Any | None) -> str:
    """Why a fit ended: ``"budget"``, ``"early_stopping"`` or ``"last_epoch"``."""
    if budget is not None and budget.stopped:
        return "budget"
    if early_stopping is not None and getattr(early_stopping, "stopped_epoch", 0) > 0:
        return "early_stopping"
    return "last_epoch"


def describe_stop(reason: str, *, epochs_run: int, epochs: int, minutes: float | None = None) -> str:
    """A short sentence for the summary and the report, e.g. ``"budget (1 min) after 3 of 30 epochs"``."""
    if reason == "budget":
        return f"time budget ({minutes:g} min) ran out in epoch {epochs_run} of at most {epochs}"
    if reason == "early_stopping":
        return f"early stopping after {epochs_run} of {epochs} epochs"
    return f"last epoch ({epochs_run} of {epochs})"


#: Epochs of a run given ``--minutes`` but not ``--epochs``: the budget, not the epoch count, ends it.
BUDGET_EPOCHS = 10_000


def epochs_for_budget(epochs: int, *, minutes: float | None, options: Any, config: Any = None, set: Any = ()) -> int:
    """``epochs``, or :data:`BUDGET_EPOCHS` when a budget is given and no epoch count was (flag, config or ``--set``).

    >>> epochs_for_budget(30, minutes=2, options={}), epochs_for_budget(30, minutes=2, options={"epochs": 5})
    (10000, 30)
    >>> epochs_for_budget(30, minutes=None, options={})
    30
    """
    if not minutes or config is not None or (options or {}).get("epochs") is not None:
        return epochs
    if any(str(text).split("=", 1)[0].strip().split(".")[-1] == "epochs" for text in set or ()):
        return epochs
    return max(int(epochs), BUDGET_EPOCHS)
