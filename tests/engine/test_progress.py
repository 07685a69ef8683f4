"""Training progress: plain lines on a non-terminal when forced (--progress), silence otherwise; the scoring helper."""

from __future__ import annotations

import io

import lightning.pytorch as L

from pixlearn.cli import main
from pixlearn.engine.budget import TimeBudget
from pixlearn.engine.fit import engine_callbacks, quiet_lightning
from pixlearn.engine.progress import progress_bar, show_progress, track
from pixlearn.engine.train_progress import TrainProgress
from tests.engine.clock import FakeClock, Tick
from tests.engine.test_budget import Tiny


def test_plain_lines_name_epoch_step_loss_metric_and_time_left():
    buf = io.StringIO()
    clock = FakeClock(5.0)
    budget = TimeBudget(1.0, clock=clock)
    bar = TrainProgress(live=False, monitor="val_loss", budget=budget, stream=buf, every_s=0.0, clock=clock)
    with quiet_lightning():
        L.Trainer(max_epochs=2, callbacks=[budget, bar, Tick(clock)], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu").fit(Tiny())
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("epoch 1/2 step 1/4  loss ")
    assert "0:55 left of 1 min" in lines[0]  # 5 s spent of 60
    ends = [ln for ln in lines if " step " not in ln]
    assert len(ends) == 2 and ends[1].startswith("epoch 2/2  loss ") and "val_loss " in ends[1]


def test_progress_policy_and_track_are_quiet_off_a_terminal(capsys):
    assert show_progress(None, io.StringIO()) is False and show_progress(True) is True
    assert engine_callbacks(minutes=None, schedule="cosine", warmup_epochs=0, min_lr_ratio=0, pct_start=0.25, val_steps=0,
                            progress=None, monitor=None).as_list() == []  # pytest's stderr is not a terminal
    assert list(track(range(5), description="scoring")) == [0, 1, 2, 3, 4]
    bar, task = progress_bar(None, 3, "predicting")
    with bar:
        for _ in range(3):
            bar.advance(task)
    assert bar.disable and capsys.readouterr().err == ""
    assert not progress_bar(True, 3, "predicting")[0].disable


def test_every_train_command_prints_progress_lines_only_when_forced(task, tmp_path, capsys):
    base = ["train", task.name, "--data", str(task.data), *task.cli, "--epochs", "1"]
    code = main([*base, "--out", str(tmp_path / "a"), "--progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch 1/1")]
    assert lines and " loss " in f" {lines[-1]}" and "val_" in lines[-1], err
    assert "stopped: last epoch (1 of 1)" in err

    code = main([*base, "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert not any(ln.startswith("epoch") for ln in err.splitlines()), err
    assert "stopped: last epoch (1 of 1)" in err and "run folder:" in err
