"""The Lightning engine shared by every task: optimisers, schedules with warmup, L1, freezing, seeding, NaN guard.

:class:`EngineModule` wraps a *task* -- an ``nn.Module`` holding ``model`` that offers
``training_loss(images, targets)``, ``validation_update(images, targets)`` and
``validation_metrics()`` (see :class:`pixlearn.tasks.classify.ClassifyTask`) -- and does the rest:

* AdamW or SGD with (Nesterov) momentum; weight decay on weights only (not biases or norms);
  a separate, lower learning rate for the backbone when fine-tuning; an optional L1 penalty;
* cosine, one-cycle, step or constant schedules stepped per optimiser step, all with a linear
  warmup, or reduce-on-plateau with the same warmup;
* freezing the backbone for the first N epochs, or for a share of the run (of the time budget under
  ``--minutes``), its norm layers kept in eval mode; optionally BatchNorm frozen all along (small
  batches) and layer-wise learning-rate decay down the backbone;
* reseeding torch's generators from ``(seed, epoch, rank)`` at every epoch start, so dropout,
  mixup and CutMix draws do not depend on where a run was interrupted and resumed;
* a non-finite loss stops the run with :class:`TrainingDivergedError` before the weights change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as L
import torch
from torch import nn

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn.data.augment import sample_seed
from pixlearn.models.freeze import backbone_depths, backbone_norm_eval, set_backbone_trainable, split_parameters

__all__ = ["EngineOptions", "EngineModule", "TrainingDivergedError", "lr_factor"]


class TrainingDivergedError(PixlearnError, RuntimeError):
    """The training loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class EngineOptions:
    """Everything the engine needs besides the task (resolved values, no ``None`` defaults left)."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.05
    l1: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    step_epochs: int = 10
    gamma: float = 0.1
    plateau_patience: int = 3
    pct_start: float = 0.25
    freeze_epochs: int = 0
    backbone_lr_mult: float = 1.0
    #: Head-only share of the run (of the time budget when a TimeBudget runs, else of the steps); 0: off.
    freeze_fraction: float = 0.0
    #: Layer-wise LR decay in the backbone: depth d below the top gets backbone_lr x layer_decay**d (1: off).
    layer_decay: float = 1.0
    #: Keep the backbone's BatchNorm statistics frozen (eval mode) for the whole run (small batches).
    bn_eval: bool = False
    seed: int = 0
    channels_last: bool = False
    monitor: str = "val_accuracy"
    monitor_mode: str = "max"
    has_val: bool = True
    checkpoint_hint: str = "checkpoints/last.ckpt"


_WARMUP_START = 0.01


def lr_factor(
    kind: str,
    *,
    total_steps: int,
    steps_per_epoch: float,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.01,
    step_epochs: int = 10,
    gamma: float = 0.1,
    pct_start: float = 0.25,
) -> Callable[[int], float]:
    """The multiplier of the peak learning rate at optimiser step ``s`` (a plain function: not saved in checkpoints).

    Examples
    --------
    >>> f = lr_factor("cosine", total_steps=100, steps_per_epoch=10, warmup_steps=10)
    >>> round(f(0), 3), f(10), round(f(55), 3), round(f(100), 3)
    (0.01, 1.0, 0.505, 0.01)
    >>> g = lr_factor("onecycle", total_steps=100, steps_per_epoch=10, pct_start=0.25)
    >>> round(g(0), 3), g(25), g(100) < 1e-4
    (0.04, 1.0, True)
    """
    total = max(int(total_steps), 1)
    warm = max(int(warmup_steps), 0) if kind != "onecycle" else 0

    def cos_between(a: float, b: float, t: float) -> float:
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))

    def factor(step: int) -> float:
        if kind == "onecycle":
            up = max(pct_start * total, 1.0)
            if step <= up:
                return cos_between(1 / 25, 1.0, step / up)
            return cos_between(1.0, 1 / 25e4, (step - up) / max(total - up, 1.0))
        if step < warm:
            return _WARMUP_START + (1.0 - _WARMUP_START) * step / warm
        if kind == "cosine":
            return cos_between(1.0, min_lr_ratio, (step - warm) / max(total - warm, 1))
        if kind == "step":
            return gamma ** int(step // max(step_epochs * steps_per_epoch, 1.0))
        return 1.0

    return factor


def _is_norm_or_bias(name: str, p: nn.Parameter) -> bool:
    return p.ndim <= 1 or name.endswith(".bias")


class EngineModule(L.LightningModule):
    """A LightningModule around a task; see the module docstring."""

    def __init__(self, task: nn.Module, options: EngineOptions, *, loaders: Any = None) -> None:
        super().__init__()
        self.task = task
        self.options = options
        self.lr = float(options.lr)  # the LR finder writes its suggestion here
        self._loaders = loaders
        self.unfrozen_at: dict[str, Any] | None = None  # when a head-only share ended (freeze_fraction)
        backbone, head = split_parameters(task.model)
        self._decayed = [p for n, p in backbone + head if not _is_norm_or_bias(n, p)]

    # ------------------------------------------------------------ data
    def train_dataloader(self) -> Any:
        return self._loaders.train(self.trainer.world_size, self.trainer.global_rank)

    def val_dataloader(self) -> Any:
        if not self.options.has_val:
            return []
        return self._loaders.val(self.trainer.world_size, self.trainer.global_rank)

    # ------------------------------------------------------------ steps
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.task.model(images)

    def _images(self, batch: Any) -> torch.Tensor:
        x = batch.images
        return x.contiguous(memory_format=torch.channels_last) if self.options.channels_last else x

    def on_fit_start(self) -> None:
        if self.options.channels_last:
            self.task.model.to(memory_format=torch.channels_last)

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        torch.manual_seed(sample_seed(self.options.seed, epoch, -(2 + self.global_rank)))
        frozen = epoch < self.options.freeze_epochs or self._frozen_by_fraction()
        set_backbone_trainable(self.task.model, not frozen)
        if frozen or self.options.bn_eval:
            backbone_norm_eval(self.task.model)

    # ------------------------------------------------------------ fine-tuning: head warm-up share, BN
    def run_progress(self) -> float:
        """Share of the run done: the time budget's (a :class:`~pixlearn.engine.budget.TimeBudget` callback), else the steps'."""
        from pixlearn.engine.budget import TimeBudget

        for cb in getattr(self.trainer, "callbacks", None) or ():
            if isinstance(cb, TimeBudget) and cb.t0 is not None:
                return cb.elapsed() / cb.budget_s
        try:
            total = int(self.trainer.estimated_stepping_batches)
        except Exception:  # pragma: no cover - a loader without length
            return 1.0
        return self.global_step / max(total, 1)

    def _frozen_by_fraction(self) -> bool:
        return self.options.freeze_fraction > 0 and self.run_progress() < self.options.freeze_fraction

    def _fine_tune_step(self) -> None:
        """Before every step: unfreeze the backbone once its head-only share is over; keep frozen BN in eval mode."""
        o = self.options
        if o.freeze_fraction <= 0 and not o.bn_eval:
            return
        frozen = self.current_epoch < o.freeze_epochs or self._frozen_by_fraction()
        if o.freeze_fraction > 0 and set_backbone_trainable(self.task.model, not frozen) and not frozen:
            self.unfrozen_at = {"step": int(self.global_step), "progress": round(self.run_progress(), 4)}
        if frozen or o.bn_eval:
            backbone_norm_eval(self.task.model)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        n = len(batch)
        if n == 0:  # every file of this batch was unreadable (reported by the loader)
            return None
        loss = self.task.training_loss(self._images(batch), batch.targets)
        if self.options.l1 > 0:
            loss = loss + self.options.l1 * sum(p.abs().sum() for p in self._decayed if p.requires_grad)
        if not bool(torch.isfinite(loss.detach())):
            raise TrainingDivergedError(
                f"the training loss became {float(loss.detach())} at epoch {self.current_epoch + 1}, "
                f"step {self.global_step + 1} (batch {batch_idx + 1} of the epoch); training stopped before the "
                f"weights changed and {self.options.checkpoint_hint} keeps the last good checkpoint (end of epoch "
                f"{self.current_epoch}). Lower the learning rate (--lr), turn on gradient clipping (optim.grad_clip), "
                "or check the data"
            )
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        n = len(batch)
        if n == 0:
            return
        self.task.validation_update(self._images(batch), batch.targets)
        for name, metric in self.task.validation_metrics().items():
            self.log(name, metric, on_step=False, on_epoch=True, batch_size=n, prog_bar=name == self.options.monitor)

    # ------------------------------------------------------------ optimisation
    def _param_groups(self, lr: float) -> list[dict[str, Any]]:
        backbone, head = split_parameters(self.task.model)
        o = self.options
        groups = []
        parts: list[tuple[str, list[tuple[str, nn.Parameter]], float]] = [("head", head, 1.0)]
        if o.layer_decay < 1.0 and backbone:
            depth = backbone_depths(self.task.model)
            top = max(depth.values())
            for d in range(top, -1, -1):  # the top of the backbone first, at backbone_lr_mult
                named_d = [(n, p) for n, p in backbone if depth[n] == d]
                if named_d:
                    parts.append((f"backbone_{d}", named_d, o.backbone_lr_mult * o.layer_decay ** (top - d)))
        else:
            parts.append(("backbone", backbone, o.backbone_lr_mult))
        for part, named, mult in parts:
            decay = [p for n, p in named if not _is_norm_or_bias(n, p)]
            no_decay = [p for n, p in named if _is_norm_or_bias(n, p)]
            for suffix, params, wd in (("", decay, o.weight_decay), ("_no_decay", no_decay, 0.0)):
                if params:
                    groups.append({"params": params, "lr": lr * mult, "initial_lr": lr * mult, "weight_decay": wd, "name": part + suffix})
        return groups

    def configure_optimizers(self) -> Any:
        o = self.options
        groups = self._param_groups(self.lr)
        if o.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=self.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0)
        elif o.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=self.lr)
        else:
            raise ConfigError(f"optimizer must be adamw or sgd, got {o.optimizer!r}")
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        per_epoch = total / epochs
        warmup = int(round(o.warmup_epochs * per_epoch))
        self._warmup_steps = warmup
        if o.schedule == "plateau":
            if not o.has_val:
                raise ConfigError("the plateau schedule needs a validation split; use another schedule or keep val_fraction > 0")
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=o.monitor_mode, factor=o.gamma, patience=o.plateau_patience)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "monitor": o.monitor, "strict": True}}
        f = lr_factor(
            o.schedule, total_steps=total, steps_per_epoch=per_epoch, warmup_steps=warmup, min_lr_ratio=o.min_lr_ratio,
            step_epochs=o.step_epochs, gamma=o.gamma, pct_start=o.pct_start,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, [f] * len(groups))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._fine_tune_step()
        # linear warmup for reduce-on-plateau (the other schedules build it into their factor)
        if self.options.schedule != "plateau" or self.global_step > getattr(self, "_warmup_steps", 0):
            return
        warm = max(getattr(self, "_warmup_steps", 0), 1)
        f = _WARMUP_START + (1.0 - _WARMUP_START) * min(self.global_step / warm, 1.0)
        for opt in self.trainer.optimizers:
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * f

    def current_lr(self) -> float:
        """The learning rate of the head's parameters now."""
        opt = self.trainer.optimizers[0] if self.trainer.optimizers else None
        return float(opt.param_groups[0]["lr"]) if opt is not None else float("nan")
