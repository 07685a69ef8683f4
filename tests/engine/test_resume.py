"""Resume and extend, written once in pixlearn.engine.resume, on every task: a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json

import lightning.pytorch as L
import pytest
import torch
import yaml

from pixlearn._core.errors import ConfigError
from pixlearn.engine.resume import check_new_run_options, plan_resume
from pixlearn.models import read_state_dict


class Crash(L.Callback):
    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at_epoch:
            raise RuntimeError("simulated crash")


def test_resume_equals_an_uninterrupted_run_then_extend(task, tmp_path):
    whole = task.run(tmp_path / "whole", epochs=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        task.run(tmp_path / "cut", epochs=2, callbacks=[Crash(1)])
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["status"] == "failed"
    resumed = task.train(resume=tmp_path / "cut", progress=False)

    monitor = whole.config.train.monitor
    assert len(resumed.history) == len(whole.history) == 2
    for a, b in zip(whole.history, resumed.history):
        for key in ("train_loss", "val_loss", monitor, "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (task.name, a["epoch"], key)
    wa = read_state_dict(tmp_path / "whole" / "weights" / "best.safetensors")
    wb = read_state_dict(tmp_path / "cut" / "weights" / "best.safetensors")
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)

    with pytest.raises(ConfigError, match="--extend N"):
        task.train(resume=tmp_path / "cut", progress=False)
    with pytest.raises(ConfigError, match="keeps its configuration"):
        task.train(resume=tmp_path / "cut", lr=0.1, progress=False)
    longer = task.train(resume=tmp_path / "cut", extend=1, progress=False)
    assert longer.epochs_run == 3 and [r["epoch"] for r in longer.history] == [1, 2, 3]
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert [r["from_epoch"] for r in manifest["resumed"]] == [1, 2] and manifest["status"] == "finished"
    assert yaml.safe_load((tmp_path / "cut" / "config.yaml").read_text())["train"]["epochs"] == 3


def test_resume_rules_without_a_run(tmp_path):
    with pytest.raises(ConfigError, match="--resume RUN"):
        check_new_run_options(resume=None, extend=2, options={}, config=None, set=())
    with pytest.raises(ConfigError, match="--extend N to train"):
        check_new_run_options(resume=tmp_path, extend=None, options={"epochs": 3}, config=None, set=())
    with pytest.raises(ConfigError, match="--config/--set"):
        check_new_run_options(resume=tmp_path, extend=None, options={}, config=None, set=["train.seed=1"])
    with pytest.raises(ConfigError, match="not a run folder"):
        plan_resume(tmp_path, load_config=None, with_overrides=None, overrides={}, extend=None)  # type: ignore[arg-type]


def test_a_run_stopped_by_its_budget_continues_with_a_new_one(task, tmp_path, monkeypatch):
    from pixlearn.engine import budget as budget_mod
    from tests.engine.clock import FakeClock, Tick

    clock = FakeClock(40.0)  # one 40-s step fits a 1-minute budget, two do not
    monkeypatch.setattr(budget_mod, "monotonic", clock)
    first = task.run(tmp_path / "run", minutes=1, callbacks=[Tick(clock)])
    assert first.stop_reason == "budget"
    with pytest.raises(ConfigError, match="give a new budget"):
        task.train(resume=tmp_path / "run", progress=False)
    again = task.train(resume=tmp_path / "run", minutes=2, progress=False, callbacks=[Tick(clock)])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert again.stop_reason == "budget" and manifest["stopped_at"]["step"] > 1 and manifest["budget"]["minutes"] == 2.0


class _Batches(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.per_epoch = int(trainer.num_training_batches)


def test_an_interrupted_budgeted_run_continues_its_clock(task, tmp_path, monkeypatch):
    """Crashed in its second epoch and resumed without --minutes, a budgeted run stops at the step an uninterrupted one
    does, with the same rates: the seconds spent before the checkpoint count against the same budget."""
    from pixlearn.engine import budget as budget_mod
    from tests.engine.clock import FakeClock, Tick

    probe = _Batches()
    task.run(tmp_path / "probe", epochs=1, callbacks=[probe])
    n = probe.per_epoch
    minutes = (2.5 * n + 0.5) / 60  # one-second steps: the budget runs out in the third epoch

    clock = FakeClock(1.0)
    monkeypatch.setattr(budget_mod, "monotonic", clock)
    whole = task.run(tmp_path / "whole", epochs=20, minutes=minutes, callbacks=[Tick(clock)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        task.run(tmp_path / "cut", epochs=20, minutes=minutes, callbacks=[Tick(clock), Crash(1)])
    clock.t += 500.0  # the time between the crash and the resumption is not charged
    resumed = task.train(resume=tmp_path / "cut", progress=False, callbacks=[Tick(clock)])

    a = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    b = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert whole.stop_reason == resumed.stop_reason == "budget", task.name
    assert b["budget"]["spent_before_resume_s"] == pytest.approx(n * 1.0)  # epoch 1's steps, up to its checkpoint
    assert b["stopped_at"]["step"] == a["stopped_at"]["step"] > 2 * n  # the same stop, in the third epoch
    assert b["budget"]["used_s"] == pytest.approx(a["budget"]["used_s"])
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in whole.history], rel=1e-6)
