"""The --minutes budget: checked every step with an injected clock, the LR schedule on the clock, validation at the stop,
stop_reason in every task's results."""

from __future__ import annotations

import json
import math

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pixlearn._core.errors import ConfigError
from pixlearn.engine import budget as budget_mod
from pixlearn.engine.budget import TimeBudget, describe_stop, epochs_for_budget, stop_reason
from pixlearn.engine.fit import quiet_lightning
from tests.engine.clock import FakeClock, Tick


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Linear(2, 1)
        self.lr = lr
        self.lrs: list[float] = []
        self.validations = 0

    def training_step(self, batch, batch_idx):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def on_validation_epoch_end(self):
        self.validations += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        return DataLoader(TensorDataset(torch.randn(16, 2, generator=g), torch.randn(16, 1, generator=g)), batch_size=4)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(4, 2), torch.randn(4, 1)), batch_size=4)


def _fit(budget: TimeBudget, clock: FakeClock, *, epochs: int = 100) -> Tiny:
    module = Tiny()
    with quiet_lightning():
        trainer = L.Trainer(max_epochs=epochs, callbacks=[budget, Tick(clock)], logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
        trainer.fit(module)
    module.trainer_ = trainer
    return module


def test_budget_stops_at_the_step_where_time_runs_out_with_the_lr_at_the_end_of_its_cosine():
    # 4 steps per epoch, 10 s per step, a 1-minute budget; validation takes no (fake) time once measured.
    # after step 5 (50 s): 50 + 10 (a step) + 0 (validation) = 60 <= 60, go on; after step 6: 70 > 60, stop.
    clock = FakeClock(10.0)
    budget = TimeBudget(1.0, schedule="cosine", warmup_epochs=0.0, min_lr_ratio=0.01, val_steps=1, clock=clock)
    m = _fit(budget, clock)
    assert budget.stopped and m.trainer_.global_step == 6
    assert budget.stopped_at == {"epoch": 2, "step": 6, "elapsed_s": 60.0, "minutes": 1.0}
    assert m.validations == 2  # end of epoch 1, and at the stop in the middle of epoch 2
    assert m.lrs[-1] == pytest.approx(0.1 * 0.01)  # the last step runs at the end of the schedule
    # progress = where the coming step ends / (budget - the validation at the stop), here 20 / (60 - 10):
    # before the first validation is timed it counts as val_steps (1) steps
    assert m.lrs[1] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 20 / 50))))
    assert all(a >= b for a, b in zip(m.lrs, m.lrs[1:]))
    assert stop_reason(budget=budget, early_stopping=None) == "budget"


def test_warmup_then_cosine_and_one_cycle_follow_the_clock():
    clock = FakeClock(10.0)
    warm = TimeBudget(1.0, schedule="cosine", warmup_epochs=0.5, min_lr_ratio=0.0, clock=clock)  # 2 warmup steps
    m = _fit(warm, clock)
    assert m.lrs[0] == pytest.approx(0.1 * 0.01) and m.lrs[1] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))
    assert max(m.lrs) == pytest.approx(0.1, rel=1e-4) and m.lrs[-1] == pytest.approx(0.0, abs=1e-9)
    clock = FakeClock(10.0)
    one = TimeBudget(1.0, schedule="onecycle", pct_start=0.5, clock=clock)
    m = _fit(one, clock)
    peak = m.lrs.index(max(m.lrs))
    assert 0 < peak < len(m.lrs) - 1 and m.lrs[-1] < 1e-5


def test_epochs_ending_first_finish_the_schedule_and_constant_schedules_are_left_alone():
    clock = FakeClock(1.0)
    budget = TimeBudget(60.0, schedule="cosine", min_lr_ratio=0.01, clock=clock)
    m = _fit(budget, clock, epochs=2)
    assert not budget.stopped and m.trainer_.global_step == 8
    assert m.lrs[-1] == pytest.approx(0.1 * 0.01)  # by steps: the last of 8
    assert stop_reason(budget=budget, early_stopping=None) == "last_epoch"
    clock = FakeClock(10.0)
    const = TimeBudget(1.0, schedule="constant", clock=clock)
    m = _fit(const, clock)
    assert const.stopped and set(m.lrs) == {0.1}


def test_validation_estimate_before_the_first_validation_stops_early_enough():
    # before any validation is timed, one is estimated at val_steps steps: 3 steps here
    clock = FakeClock(10.0)
    budget = TimeBudget(1.0, val_steps=3, clock=clock)
    m = _fit(budget, clock)
    assert m.trainer_.global_step == 3  # after step 2, 20 + 10 + 30 = 60 fits; after step 3, 30 + 10 + 30 = 70 does not


def test_stop_reason_and_helpers():
    class ES:
        stopped_epoch = 3

    assert stop_reason(budget=None, early_stopping=ES()) == "early_stopping"
    assert stop_reason(budget=None, early_stopping=None) == "last_epoch"
    assert "time budget (2 min)" in describe_stop("budget", epochs_run=3, epochs=10000, minutes=2)
    assert epochs_for_budget(30, minutes=1, options={}) == 10000
    assert epochs_for_budget(30, minutes=1, options={}, set=["train.epochs=3"]) == 30
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="--minutes"):
            TimeBudget(bad)


def test_every_task_stops_on_the_budget_inside_the_epoch(task, tmp_path, monkeypatch):
    # a fake clock: 40 s per step against a 1-minute budget; after step 1, 40 + 40 (another step) > 60
    clock = FakeClock(40.0)
    monkeypatch.setattr(budget_mod, "monotonic", clock)
    res = task.run(tmp_path / "run", minutes=1, callbacks=[Tick(clock)])
    assert res.stop_reason == "budget" and res.epochs_run == 1
    assert res.config.train.epochs == 10000  # --minutes without --epochs: the budget ends the run
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert metrics["stop_reason"] == "budget" and manifest["stop_reason"] == "budget"
    assert manifest["stopped_at"]["step"] == 1 and manifest["stopped_at"]["elapsed_s"] == 40.0
    monitor = res.config.train.monitor
    assert res.history[0][monitor] is not None  # validation ran at the stop
    assert (tmp_path / "run" / "weights" / "best.safetensors").is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "time budget (1 min)" in (tmp_path / "run" / "report.html").read_text()


def test_every_task_says_last_epoch_without_a_budget(task, tmp_path):
    res = task.run(tmp_path / "run", epochs=1)
    assert res.stop_reason == "last_epoch"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["stop_reason"] == "last_epoch"
