"""A new task is its hooks plus a registry entry: resume, budget, k-fold, the LR finder, progress and a report come
from pixlearn.engine.driver, with no code of the task's own.

The toy task here -- a linear regression on points in a CSV -- lives in this file: a config, five hooks and a
``TaskSpec``. Everything else it gets from the engine, through ``pixlearn train toy`` too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
import torch
from pydantic import BaseModel, Field
from torch import nn

from pixlearn.engine.config import EngineTrainConfig, OptimConfig, RunConfig, ScheduleConfig, _Section, flat_keys
from pixlearn.engine.driver import Prepared, RunContext, TaskHooks, train_task
from pixlearn.models import read_state_dict, save_weights
from tests.engine.clock import FakeClock, Tick


# ---------------------------------------------------------------- the toy task: config, data, model, hooks
class ToyData(_Section):
    path: str | None = None
    batch_size: int = Field(8, ge=1)
    val_fraction: float = 0.25
    workers: int = 0


class ToyModel(_Section):
    name: str = "linear"


class ToyTrain(EngineTrainConfig):  # the engine's fields (budget, k-fold, LR finder, hardware...), the toy's defaults
    epochs: int = Field(3, ge=1)
    patience: int = 0
    monitor: str = "val_loss"
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "cpu"
    precision: Literal["auto", "32", "bf16", "16"] = "32"
    channels_last: bool | None = False


_SECTIONS: dict[str, type[BaseModel]] = {"data": ToyData, "model": ToyModel, "optim": OptimConfig, "schedule": ScheduleConfig,
                                         "train": ToyTrain}


class ToyConfig(RunConfig):
    SECTIONS: ClassVar[dict[str, type[BaseModel]]] = _SECTIONS
    FLAT: ClassVar[dict[str, tuple[str, str]]] = flat_keys(_SECTIONS, {"data": ("data", "path"), "model": ("model", "name"),
                                                                      "batch": ("data", "batch_size")})
    TASK: ClassVar[str] = "toy"

    task: str = "toy"
    data: ToyData = Field(default_factory=ToyData)
    model: ToyModel = Field(default_factory=ToyModel)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: ToyTrain = Field(default_factory=ToyTrain)


@dataclass
class Points:
    root: Path
    xy: np.ndarray

    def fingerprint(self) -> str:
        return hashlib.sha256(self.xy.tobytes()).hexdigest()[:16]


@dataclass
class Splits:
    train: list[int]
    val: list[int]
    test: list[int]
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Batch:
    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.fc = nn.Linear(2, 4), nn.Linear(4, 1)
        self.pretrained_cfg = {"classifier": "fc"}  # the head the engine fine-tunes apart

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.body(x)))


class Regression(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._mse: torch.Tensor | None = None

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(self.model(x).squeeze(1), y)

    def validation_update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._mse = nn.functional.mse_loss(self.model(x).squeeze(1), y)

    def validation_metrics(self) -> dict[str, torch.Tensor]:
        return {"val_loss": self._mse}


class Rows(list):
    """Points by index; the engine's epoch sampler hands out ``(index, seed)`` pairs (the seed drives augmentation)."""

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(key[0] if isinstance(key, tuple) else key)


class Loaders:
    def __init__(self, xy: np.ndarray, train: list[int], val: list[int], batch: int, seed: int) -> None:
        self.train_ds, self.val_ds, self.batch, self.seed = Rows(xy[i] for i in train), Rows(xy[i] for i in val), batch, seed
        self.train_loader = None

    @staticmethod
    def _collate(rows: list[np.ndarray]) -> Batch:
        a = torch.as_tensor(np.stack(rows), dtype=torch.float32)
        return Batch(a[:, :2], a[:, 2])

    def train(self, world: int, rank: int) -> Any:
        from torch.utils.data import DataLoader

        from pixlearn.engine.sampling import EpochSampler

        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=self.seed, num_replicas=world, rank=rank)
        self.train_loader = DataLoader(self.train_ds, batch_size=self.batch, sampler=sampler, collate_fn=self._collate)
        return self.train_loader

    def val(self, world: int, rank: int) -> Any:
        from torch.utils.data import DataLoader

        return DataLoader(self.val_ds, batch_size=self.batch, collate_fn=self._collate)


class SaveBest:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def __call__(self, model: nn.Module) -> None:
        save_weights(model, self.run_dir / "weights" / "best.safetensors")


class ToyHooks(TaskHooks):
    name = "toy"
    config = ToyConfig
    fold_keys = ("mse",)
    data_help = "a folder with points.csv"

    def resolve(self, cfg: ToyConfig) -> ToyConfig:
        return ToyConfig.from_overrides(cfg, lr=cfg.optim.lr or 0.05, weight_decay=cfg.optim.weight_decay or 0.0)

    def read_data(self, cfg: ToyConfig) -> Points:
        return Points(Path(cfg.data.path), np.loadtxt(Path(cfg.data.path) / "points.csv", delimiter=","))

    def plan(self, cfg: ToyConfig, data: Points) -> Splits:
        order = np.random.default_rng(cfg.train.seed).permutation(len(data.xy)).tolist()
        n_val, n_test = int(len(order) * cfg.data.val_fraction), 8
        return Splits(order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test])

    def prepare(self, cfg: ToyConfig, data: Points, splits: Splits, run_dir: Path) -> Prepared:
        torch.manual_seed(cfg.train.seed)
        net = Net()
        loaders = Loaders(data.xy, splits.train, splits.val, cfg.data.batch_size, cfg.train.seed)
        return Prepared(task=Regression(net), loaders=loaders, save_best=SaveBest(run_dir), n_train=len(splits.train),
                        has_val=bool(splits.val), val_steps=len(splits.val) / cfg.data.batch_size, model=net)

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        net = Net()
        net.load_state_dict(read_state_dict(ctx.run_dir / "weights" / "best.safetensors"))
        xy = torch.as_tensor(ctx.data.xy[ctx.splits.test], dtype=torch.float32)
        with torch.no_grad():
            mse = float(nn.functional.mse_loss(net(xy[:, :2]).squeeze(1), xy[:, 2]))
        return {"split": "test", "n": len(ctx.splits.test), "mse": mse}


HOOKS = ToyHooks()


def train_toy(data: Any = None, **kw: Any) -> Any:
    """The toy task's whole train function."""
    return train_task(HOOKS, data, **kw)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("points")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 2))
    y = 0.7 * x[:, 0] - 0.3 * x[:, 1] + 0.05 * rng.normal(size=48)
    np.savetxt(root / "points.csv", np.column_stack([x, y]), delimiter=",")
    return root


@pytest.fixture()
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy task in the registry (as its package's ``register(TaskSpec(...))`` would put it), CLI tables fresh."""
    from pixlearn.cli import app as app_module
    from pixlearn.tasks import registry

    spec = registry.TaskSpec(name="toy", summary="Linear regression on points (a test task).", package=__name__,
                             entry={**{k: "builtins:print" for k in registry.ENTRY_POINTS}, "train": f"{__name__}:train_toy"})
    registry.tasks()
    monkeypatch.setitem(registry._REGISTRY, "toy", spec)
    monkeypatch.setattr(app_module, "_LOADED", {})




def _crash_at(epoch: int) -> Any:
    import lightning.pytorch as L

    class CrashAt(L.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.current_epoch == epoch:
                raise RuntimeError("simulated crash")

    return CrashAt()


# ---------------------------------------------------------------- the engine's features on the toy task
def test_a_new_task_gets_the_run_folder_and_a_report(points, tmp_path):
    res = train_toy(points, out=tmp_path / "run", epochs=2, progress=False)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "manifest.json", "metrics.csv", "metrics.json", "weights", "checkpoints", "report.html"} <= names
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "toy" and metrics["split"] == "test" and metrics["stop_reason"] == "last_epoch" and metrics["epochs_run"] == 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["stop_reason"] == "last_epoch" and manifest["data"]["fingerprint"]
    assert "last epoch (2 of 2)" in (tmp_path / "run" / "report.html").read_text()
    assert res.metrics == metrics and len(res.history) == 2


def test_a_new_task_resumes_exactly_and_extends(points, tmp_path):
    whole = train_toy(points, out=tmp_path / "whole", epochs=3, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_toy(points, out=tmp_path / "cut", epochs=3, progress=False, callbacks=[_crash_at(2)])
    resumed = train_toy(resume=tmp_path / "cut", progress=False)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]  # bit for bit
    wa = read_state_dict(tmp_path / "whole" / "weights" / "best.safetensors")
    wb = read_state_dict(tmp_path / "cut" / "weights" / "best.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    longer = train_toy(resume=tmp_path / "cut", extend=2, progress=False)
    assert longer.epochs_run == 5 and json.loads((tmp_path / "cut" / "manifest.json").read_text())["resumed"][-1]["extend"] == 2


def test_a_new_task_stops_on_its_budget(points, tmp_path, monkeypatch):
    import pixlearn.engine.budget as budget

    clock = FakeClock(10.0)  # each step takes 10 s of this clock: a 1-minute budget holds a handful of steps
    monkeypatch.setattr(budget, "monotonic", clock)
    res = train_toy(points, out=tmp_path / "run", minutes=1, progress=False, callbacks=[Tick(clock)])
    assert res.stop_reason == "budget" and res.config.train.epochs == 10_000
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stop_reason"] == "budget" and manifest["budget"]["minutes"] == 1 and manifest["stopped_at"]["step"] <= 6
    assert "time budget (1 min) ran out" in (tmp_path / "run" / "report.html").read_text()


def test_a_new_task_runs_k_fold(points, tmp_path):
    res = train_toy(points, out=tmp_path / "cv", epochs=1, folds=3, progress=False)
    metrics = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert metrics["kind"] == "k-fold" and metrics["cv"]["folds"] == 3 and len(metrics["cv"]["metrics"]["mse"]["per_fold"]) == 3
    assert all((tmp_path / "cv" / f"fold_{i}" / "report.html").is_file() for i in (1, 2, 3))
    assert (tmp_path / "cv" / "report.html").is_file() and len(res.folds) == 3


def test_a_new_task_finds_its_learning_rate(points, tmp_path):
    res = train_toy(points, out=tmp_path / "run", epochs=1, find_lr=True, progress=False)
    assert res.lr_find is not None and (tmp_path / "run" / "plots" / "lr_find.png").is_file()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["lr_find"]["num_training"] == res.lr_find["num_training"]


def test_a_registered_new_task_trains_from_the_cli_with_progress_lines(points, tmp_path, toy_registered, capsys):
    from pixlearn.cli import main

    code = main(["train", "toy", "--data", str(points), "--epochs", "2", "--out", str(tmp_path / "run"), "--progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.startswith("epoch 2/2")], err
    assert "stopped: last epoch (2 of 2)" in err and "run folder:" in err
    code = main(["train", "toy", "--resume", str(tmp_path / "run"), "--extend", "1"])
    assert code == 0 and json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 3
