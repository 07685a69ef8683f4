"""Plan a training run to fit a wall-clock budget (``--minutes``): measure, then choose.

A task that trains under ``--minutes N`` without ``--epochs`` does not know in advance how fast
this machine is (or how busy). It offers *candidates* -- settings ordered from the cheapest to
the most expensive, e.g. ``[{"img_size": 96}, {"img_size": 128}, {"img_size": 160}]`` or model
widths or patches per epoch -- and a *probe* that times a few real optimiser steps of one
candidate. :func:`choose` probes from the most expensive candidate down and keeps the first
that completes ``min_epochs`` passes over the data within the budget (the cheapest when none
does), and returns a :class:`BudgetPlan` that prints itself and goes into ``manifest.json``.

Nothing here knows about a task or about torch: a probe is any callable returning seconds per
step, and :func:`probe_seconds_per_step` turns a ``step_fn`` into one. The clock is injectable,
so tests drive the planner with a fake clock.

Examples
--------
>>> speed = {96: 0.2, 128: 0.35, 160: 0.6}            # seconds per step, as a probe would measure
>>> plan = choose([{"img_size": s} for s in (96, 128, 160)], lambda c: speed[c["img_size"]],
...               budget_s=600, steps_per_epoch_fn=lambda c: 79, min_epochs=20)
>>> plan.choice, plan.epochs
({'img_size': 128}, 20.6)
>>> print(plan.lines()[0])
plan: 10 min; measured 0.35 s/step at img_size 128 -> ~1,628 steps = ~20.6 epochs of 79 steps; chose img_size 128 (img_size 160 would give 12 epochs, < 20 wanted)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = ["BudgetPlan", "CandidateTiming", "probe_seconds_per_step", "choose", "describe_choice"]


def _perf_counter() -> float:
    return time.perf_counter()


def probe_seconds_per_step(
    step_fn: Callable[[], Any],
    *,
    steps: int = 3,
    warmup: int = 1,
    clock: Callable[[], float] | None = None,
) -> float:
    """Mean seconds of ``step_fn()`` over ``steps`` calls, after ``warmup`` untimed calls.

    The warm-up calls absorb one-off costs (allocator, kernel selection, lazy imports), so the
    result is what a step costs in a long run.

    Examples
    --------
    >>> t = [0.0]
    >>> def step():
    ...     t[0] += 0.25
    >>> probe_seconds_per_step(step, steps=4, warmup=2, clock=lambda: t[0])
    0.25
    """
    if steps < 1 or warmup < 0:
        raise ConfigError(f"probe_seconds_per_step: steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    now = clock or _perf_counter
    for _ in range(warmup):
        step_fn()
    t0 = now()
    for _ in range(steps):
        step_fn()
    return max(now() - t0, 0.0) / steps


def describe_choice(choice: Mapping[str, Any]) -> str:
    """``{"img_size": 128, "batch": 64}`` -> ``"img_size 128, batch 64"``."""
    return ", ".join(f"{k} {v}" for k, v in choice.items()) or "the defaults"


@dataclass
class CandidateTiming:
    """One probed candidate: its settings, the measured step time and what the budget gives it."""

    choice: dict[str, Any]
    seconds_per_step: float
    steps_per_epoch: int
    steps: int
    epochs: float


@dataclass
class BudgetPlan:
    """The plan of a budgeted run: what was chosen, what was measured, and why.

    Attributes
    ----------
    minutes : float
        The budget.
    choice : dict
        The chosen candidate's settings (the task applies them).
    seconds_per_step : float
        Measured seconds of one optimiser step of the chosen candidate.
    steps_per_epoch : int
        Optimiser steps in one pass over the training data with the chosen candidate.
    steps : int
        Steps the budget affords (``budget_s / seconds_per_step``, validation reserve removed).
    epochs : float
        ``steps / steps_per_epoch``, rounded to 0.1.
    min_epochs : float
        Passes over the data a candidate had to afford to be chosen.
    reasons : list of str
        Why the others were not chosen (one short sentence each).
    probed : list of CandidateTiming
        Every candidate that was timed.
    probe_s : float
        Wall-clock seconds the probing took (outside the fit's budget).
    """

    minutes: float
    choice: dict[str, Any]
    seconds_per_step: float
    steps_per_epoch: int
    steps: int
    epochs: float
    min_epochs: float
    reasons: list[str] = field(default_factory=list)
    probed: list[CandidateTiming] = field(default_factory=list)
    probe_s: float = 0.0

    def lines(self) -> list[str]:
        """The plan in words: one headline, then nothing else (the reasons are in the headline)."""
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        head = (
            f"plan: {self.minutes:g} min; measured {self.seconds_per_step:.3g} s/step at {describe_choice(self.choice)} "
            f"-> ~{self.steps:,} steps = ~{_epochs(self.epochs)} of {self.steps_per_epoch:,} steps; "
            f"chose {describe_choice(self.choice)}{why}"
        )
        return [head]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``manifest.json["plan"]``."""
        d = asdict(self)
        d["seconds_per_step"] = round(self.seconds_per_step, 4)
        d["probe_s"] = round(self.probe_s, 3)
        for p in d["probed"]:
            p["seconds_per_step"] = round(p["seconds_per_step"], 4)
        d["text"] = self.lines()[0]
        return d


def _epochs(n: float) -> str:
    return f"{n:g} epoch" + ("" if n == 1 else "s")


def _afford(budget_s: float, seconds_per_step: float, steps_per_epoch: int, reserve: float) -> tuple[int, float]:
    usable = max(budget_s * (1.0 - reserve), 0.0)
    steps = int(usable / seconds_per_step) if seconds_per_step > 0 else 1 << 30
    return steps, round(steps / max(steps_per_epoch, 1), 1)


def choose(
    candidates: Sequence[Mapping[str, Any]],
    probe: Callable[[Mapping[str, Any]], float],
    *,
    budget_s: float,
    steps_per_epoch_fn: Callable[[Mapping[str, Any]], int],
    min_epochs: float,
    reserve: float = 0.05,
    clock: Callable[[], float] | None = None,
) -> BudgetPlan:
    """Probe ``candidates`` from the last (most expensive) down; keep the first that affords ``min_epochs``.

    Parameters
    ----------
    candidates : sequence of mappings
        Settings ordered from the cheapest to the most expensive. Must not be empty.
    probe : callable
        ``probe(candidate) -> seconds per optimiser step`` (see :func:`probe_seconds_per_step`).
        Called once per candidate examined, never for candidates cheaper than the chosen one.
    budget_s : float
        The training budget in seconds.
    steps_per_epoch_fn : callable
        ``steps_per_epoch_fn(candidate) -> optimiser steps per pass over the data``.
    min_epochs : float
        Passes over the data the chosen candidate must afford. When none does, the cheapest
        is chosen and the plan says so.
    reserve : float
        Share of the budget kept for validation and the stop (default 5 %).
    clock : callable, optional
        Seconds as a float, to time the probing itself (default :func:`time.perf_counter`).

    Returns
    -------
    BudgetPlan

    Raises
    ------
    ConfigError
        No candidates, a non-positive budget, or a probe that returned a negative or NaN time.
    """
    if not candidates:
        raise ConfigError("choose: no candidates to plan with; pass at least one setting")
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise ConfigError(f"choose: the budget must be a positive number of seconds, got {budget_s!r}")
    now = clock or _perf_counter
    t0 = now()
    probed: list[CandidateTiming] = []
    reasons: list[str] = []
    chosen: CandidateTiming | None = None
    for cand in reversed(list(candidates)):
        sps = float(probe(cand))
        if not (sps >= 0 and math.isfinite(sps)):
            raise ConfigError(f"choose: the probe of {describe_choice(cand)} returned {sps!r} seconds per step; expected a time >= 0")
        per_epoch = max(int(steps_per_epoch_fn(cand)), 1)
        steps, epochs = _afford(budget_s, sps, per_epoch, reserve)
        timing = CandidateTiming(dict(cand), sps, per_epoch, steps, epochs)
        probed.append(timing)
        if epochs >= min_epochs:
            chosen = timing
            break
        reasons.append(f"{describe_choice(cand)} would give {_epochs(epochs)}, < {min_epochs:g} wanted")
    if chosen is None:  # nothing affords min_epochs: the cheapest, said plainly
        chosen = probed[-1]
        reasons[-1] = f"even the cheapest gives only {_epochs(chosen.epochs)}, < {min_epochs:g} wanted"
    return BudgetPlan(
        minutes=round(budget_s / 60.0, 4), choice=chosen.choice, seconds_per_step=chosen.seconds_per_step,
        steps_per_epoch=chosen.steps_per_epoch, steps=chosen.steps, epochs=chosen.epochs, min_epochs=float(min_epochs),
        reasons=reasons, probed=probed, probe_s=max(now() - t0, 0.0),
    )
