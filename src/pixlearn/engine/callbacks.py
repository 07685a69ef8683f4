"""Callbacks and plugins that write the run folder: per-epoch metrics, best weights, the last checkpoint.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), by
rank 0 only; a crash can leave an old file but never a half-written one.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping

from pixlearn.engine.runs import atomic_write_text, temp_path

__all__ = [
    "AtomicCheckpointIO",
    "BestWeights",
    "EpochMetrics",
    "LastCheckpoint",
    "ResumableEarlyStopping",
    "METRIC_COLUMNS",
]

#: Columns of ``metrics.csv`` (one row per epoch).
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "lr",
    "backbone_lr",
    "backbone_frozen",
    "epoch_seconds",
    "train_seconds",
    "train_images_per_second",
)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written through a temporary file and ``os.replace``; read back with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        try:
            with open(tmp, "xb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def _value(metrics: dict[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    if v is None:
        return None
    v = float(v.item() if hasattr(v, "item") else v)
    return None if math.isnan(v) else v


def _backbone_parameters(pl_module: Any) -> list[torch.nn.Parameter] | None:
    """The parameters outside the classifier head of the module's task model (None: no task model, or no backbone)."""
    from pixlearn._core.errors import ConfigError
    from pixlearn.models.freeze import split_parameters

    model = getattr(getattr(pl_module, "task", None), "model", None)
    if model is None:
        return None
    try:
        backbone, _ = split_parameters(model)
    except ConfigError:
        return None
    return [p for _, p in backbone] or None


class EpochMetrics(L.Callback):
    """Keeps one row per epoch (losses, val metrics, lr, timings) and rewrites ``metrics.csv`` each epoch.

    ``backbone_frozen`` is what really happened in the epoch: the share of its training steps taken with the
    backbone frozen (1.0 the whole epoch, 0.0 none, in between for the epoch in which a head-only share of the run
    or of the time budget ended), read from the model after every step; ``freeze_epochs`` only stands in for a
    model without a backbone/head split. The rows travel in checkpoints, so a resumed run's CSV holds exactly the
    epochs it resumed from.
    """

    def __init__(self, path: Path, *, n_train: int, freeze_epochs: int = 0, columns: tuple[str, ...] = METRIC_COLUMNS) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)  # every "val_*" column is read from the logged metrics
        self.n_train = int(n_train)
        self.freeze_epochs = int(freeze_epochs)
        self.rows: list[dict[str, Any]] = []
        self._t0 = self._t_val = 0.0
        self._backbone: list[torch.nn.Parameter] | None = None
        self._steps = self._frozen_steps = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._backbone = _backbone_parameters(pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._t_val = 0.0
        self._steps = self._frozen_steps = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._backbone is None:
            return
        self._steps += 1  # the step just taken: the engine froze or unfroze the backbone before it
        self._frozen_steps += not any(p.requires_grad for p in self._backbone)

    def _backbone_frozen(self, epoch: int) -> float | None:
        """Share of this epoch's steps with the backbone frozen (without a backbone split: 1.0 for the ``freeze_epochs``
        epochs, else 0.0; None for an epoch without a step)."""
        if self._backbone is None:
            return 1.0 if epoch <= self.freeze_epochs else 0.0
        return round(self._frozen_steps / self._steps, 4) if self._steps else None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not self._t_val:
            self._t_val = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        train_s = (self._t_val or now) - self._t0
        m = trainer.callback_metrics
        groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
        lr = next((g["lr"] for g in groups if g.get("name", "").startswith("head")), groups[0]["lr"] if groups else None)
        blr = next((g["lr"] for g in groups if g.get("name", "").startswith("backbone")), None)
        epoch = trainer.current_epoch + 1
        row = {
            "epoch": epoch,
            "train_loss": _value(m, "train_loss"),
            **{key: _value(m, key) for key in self.columns if key.startswith("val_")},
            "lr": lr,
            "backbone_lr": blr,
            "backbone_frozen": self._backbone_frozen(epoch),
            "epoch_seconds": round(now - self._t0, 4),
            "train_seconds": round(train_s, 4),
            "train_images_per_second": round(self.n_train / train_s, 2) if train_s > 0 else None,
        }
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
        if trainer.is_global_zero:
            self.write()

    def write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in self.columns})
        atomic_write_text(self.path, buf.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]


class BestWeights(L.Callback):
    """Saves the model as ``weights/best.safetensors`` whenever the monitored validation metric improves.

    Ties on the monitored metric go to the lower validation loss. Without validation the latest
    epoch counts as the best. ``save`` is called with the task's model and writes the files.
    """

    def __init__(self, save: Callable[[Any], None], *, monitor: str, mode: str, has_val: bool) -> None:
        self.save = save
        self.monitor, self.mode, self.has_val = monitor, mode, has_val
        self.best: float | None = None
        self.best_loss: float | None = None
        self.best_epoch = 0

    def _better(self, score: float, loss: float | None) -> bool:
        if self.best is None:
            return True
        if score != self.best:
            return score > self.best if self.mode == "max" else score < self.best
        return loss is not None and (self.best_loss is None or loss < self.best_loss)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not self.has_val:
            self.best, self.best_loss, self.best_epoch = float(epoch), None, epoch
        else:
            score = _value(trainer.callback_metrics, self.monitor)
            loss = _value(trainer.callback_metrics, "val_loss")
            if score is None or not self._better(score, loss):
                return
            self.best, self.best_loss, self.best_epoch = score, loss, epoch
        if trainer.is_global_zero:
            self.save(pl_module.task.model)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_loss": self.best_loss, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_loss = state_dict.get("best_loss")
        self.best_epoch = int(state_dict.get("best_epoch", 0))


class LastCheckpoint(Checkpoint):
    """Writes ``checkpoints/last.ckpt`` (model, optimiser, schedule, loop and callback states) at every epoch end.

    Lightning runs checkpoint callbacks after the others, so the file includes this epoch's
    metrics rows, best score and early-stopping counters.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path)


class ResumableEarlyStopping(EarlyStopping):
    """Lightning's early stopping; with ``reset_on_load`` (extending a run) its patience counter starts afresh."""

    def __init__(self, *args: Any, reset_on_load: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset_on_load = reset_on_load

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.reset_on_load:
            self.wait_count = 0
            self.stopped_epoch = 0
