"""Training on several processes launched by torchrun (Lightning's TorchElasticEnvironment): only rank 0 writes the run
folder and prints; the --minutes budget stops every process on the same step."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from pixlearn.engine.budget import TimeBudget
from tests.classify.helpers import make_dataset

# what Lightning's own launcher or an outer torchrun would leave behind: the child processes must see only torchrun's
_LAUNCHER_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                  "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def test_torchrun_two_processes_write_one_run_folder(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=8, size=12)  # 24 images, 3 classes
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARS}
    env["OMP_NUM_THREADS"] = "1"  # two processes on a small machine: one thread each
    work = tmp_path / "work"
    work.mkdir()
    # --standalone: a local rendezvous on a port torchrun picks itself (no port to race for)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "pixlearn", "train", "classify", "--data", str(data), "--model", "pixlearn_smallcnn_tiny",
           "--epochs", "2", "--img-size", "12", "--batch", "4", "--workers", "0", "--out", "run",
           "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--no-progress", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    result = json.loads(proc.stdout)  # one JSON document: rank 1 printed nothing
    assert result["task"] == "classify" and sorted(result["per_class"]) == ["blue", "green", "red"]
    assert proc.stderr.count("run folder: ") == 1  # the summary line, once
    run = work / "run"
    assert sorted(p.name for p in work.iterdir()) == ["run"]  # rank 1 made no folder of its own
    for name in ("config.yaml", "manifest.json", "metrics.json", "metrics.csv", "report.html", "weights/best.safetensors"):
        assert (run / name).is_file(), name
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == result["accuracy"]
    device = json.loads((run / "manifest.json").read_text())["device"]
    assert (device["devices"], device["num_nodes"], device["strategy"], device["accelerator"]) == (2, 1, "ddp", "cpu")
    with (run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]  # one row per epoch, written by one process
    assert all(float(r["train_loss"]) > 0 for r in rows)


class _OtherRankOutOfTime:
    """A DDP strategy stand-in whose other process has run out of time."""

    def __init__(self) -> None:
        self.asked: list[tuple[bool, bool]] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:  # noqa: A002 - Lightning's name
        self.asked.append((decision, all))
        return True


def _trainer(world_size: int, strategy: object) -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, strategy=strategy, should_stop=False, global_step=1, current_epoch=0,
                           check_val_every_n_epoch=1, optimizers=[])


def test_budget_stops_every_process_when_one_runs_out_of_time():
    now = [0.0]
    budget = TimeBudget(1.0, clock=lambda: now[0])
    budget.t0 = 0.0
    now[0] = 1.0  # one second of sixty: this process alone would go on
    strategy = _OtherRankOutOfTime()
    trainer = _trainer(2, strategy)

    budget.on_train_batch_end(trainer, None, None, None, 0)

    assert strategy.asked == [(False, False)]  # asked with its own answer; any process out of time stops all
    assert trainer.should_stop and budget.stopped and budget.stopped_at["step"] == 1


def test_budget_of_one_process_asks_no_other():
    now = [0.0]
    budget = TimeBudget(1.0, clock=lambda: now[0])
    budget.t0 = 0.0
    now[0] = 1.0
    strategy = _OtherRankOutOfTime()
    trainer = _trainer(1, strategy)

    budget.on_train_batch_end(trainer, None, None, None, 0)

    assert strategy.asked == [] and not trainer.should_stop and not budget.stopped
