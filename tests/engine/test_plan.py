"""The budget planner: a fake clock and fake probes, no timing of this machine."""

from __future__ import annotations

import pytest

from pixlearn._core.errors import ConfigError
from pixlearn.engine.plan import BudgetPlan, choose, probe_seconds_per_step

SIZES = [{"img_size": s} for s in (96, 128, 160)]
SPEED = {96: 0.2, 128: 0.35, 160: 0.6}


def _probe(calls):
    def probe(c):
        calls.append(c["img_size"])
        return SPEED[c["img_size"]]
    return probe


def test_probe_times_only_the_steps_after_warmup():
    t = [0.0]
    costs = iter([5.0, 0.5, 0.5, 0.5])  # the warm-up step is slow (allocations): not counted

    def step():
        t[0] += next(costs)

    assert probe_seconds_per_step(step, steps=3, warmup=1, clock=lambda: t[0]) == pytest.approx(0.5)


def test_chooses_largest_candidate_that_affords_min_epochs_and_says_why():
    calls: list[int] = []
    plan = choose(SIZES, _probe(calls), budget_s=600, steps_per_epoch_fn=lambda c: 79, min_epochs=20)
    assert plan.choice == {"img_size": 128}
    assert calls == [160, 128]  # the cheapest was never probed
    assert plan.steps == int(600 * 0.95 / 0.35)
    assert plan.epochs == pytest.approx(plan.steps / 79, abs=0.05)
    text = plan.lines()[0]
    assert "measured 0.35 s/step at img_size 128" in text and "img_size 160 would give 12 epochs, < 20 wanted" in text
    d = plan.to_dict()
    assert d["choice"] == {"img_size": 128} and [p["choice"]["img_size"] for p in d["probed"]] == [160, 128]


def test_largest_when_the_budget_is_ample_and_cheapest_when_nothing_fits():
    big = choose(SIZES, _probe([]), budget_s=6000, steps_per_epoch_fn=lambda c: 79, min_epochs=20)
    assert big.choice == {"img_size": 160} and big.reasons == []
    small = choose(SIZES, _probe([]), budget_s=60, steps_per_epoch_fn=lambda c: 79, min_epochs=20)
    assert small.choice == {"img_size": 96}
    assert "even the cheapest gives only" in small.lines()[0]


def test_steps_per_epoch_may_depend_on_the_candidate():
    # patches per epoch: more patches cost more steps per epoch at the same step time
    cands = [{"patches": n} for n in (1000, 4000)]
    plan = choose(cands, lambda c: 0.1, budget_s=100, steps_per_epoch_fn=lambda c: c["patches"] // 10, min_epochs=5)
    assert plan.choice == {"patches": 1000}  # 4000 patches -> 400 steps/epoch -> 2.4 epochs < 5


def test_probe_seconds_are_measured_with_the_injected_clock():
    t = [0.0]

    def probe(c):
        t[0] += 2.0
        return 0.1

    plan = choose(SIZES, probe, budget_s=1000, steps_per_epoch_fn=lambda c: 10, min_epochs=1, clock=lambda: t[0])
    assert plan.probe_s == pytest.approx(2.0)
    assert isinstance(plan, BudgetPlan)


@pytest.mark.parametrize("kw", [{"budget_s": 0}, {"budget_s": float("nan")}])
def test_bad_budget_is_a_config_error(kw):
    with pytest.raises(ConfigError, match="budget"):
        choose(SIZES, _probe([]), steps_per_epoch_fn=lambda c: 1, min_epochs=1, **kw)


def test_no_candidates_and_bad_probe_are_config_errors():
    with pytest.raises(ConfigError, match="no candidates"):
        choose([], _probe([]), budget_s=10, steps_per_epoch_fn=lambda c: 1, min_epochs=1)
    with pytest.raises(ConfigError, match="seconds per step"):
        choose(SIZES, lambda c: float("nan"), budget_s=10, steps_per_epoch_fn=lambda c: 1, min_epochs=1)
