"""The generic training driver: what every task's ``train`` does, written once; a task supplies hooks.

``load config -> read data -> plan splits -> prepare (model, loaders) -> optional LR finder -> fit with the time
budget, progress and callbacks -> resume / extend -> final scoring -> report``. A task implements
:class:`TaskHooks` (how to read its data, split it, build its module and loaders, score the kept weights) and
calls :func:`train_task`; it then gets ``--resume``/``--extend`` (:mod:`pixlearn.engine.resume`), ``--minutes``
(:mod:`pixlearn.engine.budget`), ``--folds`` (:mod:`pixlearn.engine.kfold`), ``--find-lr``
(:mod:`pixlearn.engine.lr_finder`), ``--progress`` (:mod:`pixlearn.engine.train_progress`), the run folder
(``config.yaml``, ``manifest.json``, ``metrics.csv``, ``metrics.json``, ``weights/``, ``checkpoints/last.ckpt``)
and a ``report.html`` without code of its own.

The pieces are usable one by one as well: :func:`fit_prepared` (callbacks + fit + stop reason + the manifest's
fit block) and :func:`run_lr_finder` (the range test, its plot and a fresh, identically seeded preparation).

Resume after a budget stop
--------------------------
``--resume`` continues from ``checkpoints/last.ckpt``: weights, optimiser, scheduler and every callback's state,
and the epoch-keyed sampler and reseeding draw the same batches, so a run resumed from an epoch end equals
the uninterrupted run bit for bit (tested for every task and the toy task of ``tests/engine/test_driver.py``).
A run that ``--minutes`` stopped *inside* an epoch is not bit-exact when resumed, for two reasons:

* Lightning saves the stop's checkpoint with that epoch counted as done (its loaders keep no position), so the
  resumed run starts the next epoch: the batches the interrupted epoch had left are never trained. Measured on
  the toy task (4 steps per epoch, stopped after step 2 of epoch 1, resumed to 3 epochs): 10 optimiser steps
  instead of 12, the same loss for the first steps and different weights from then on.
* Under a budget a cosine or one-cycle learning rate follows the wall clock, which no rerun repeats.

Making it exact would need a loader that saves its position inside an epoch (a stateful sampler restored
through Lightning's loop state); the resumed run is a valid continuation (same weights, optimiser state and
data order per epoch), not a replay.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = ["Prepared", "RunContext", "TaskHooks", "fit_prepared", "run_lr_finder", "train_task"]

log = logging.getLogger("pixlearn.train")


@dataclass
class Prepared:
    """What a task's :meth:`TaskHooks.prepare` builds for one run.

    Attributes
    ----------
    task : nn.Module
        The engine task (``model``, ``training_loss``, ``validation_update``, ``validation_metrics``).
    loaders : object
        ``train(world, rank)`` / ``val(world, rank)`` loaders; ``train_ds`` (and ``train_loader`` once built).
    save_best : callable
        ``save_best(model)`` writes ``weights/best.safetensors`` and ``weights/model.json`` (picklable).
    n_train, has_val, val_steps
        Training items per epoch, whether there is a val split, validation batches (for the budget).
    metrics_callback : Callback, optional
        The task's ``metrics.csv`` writer (default :class:`~pixlearn.engine.callbacks.EpochMetrics`).
    keep_best : bool
        Keep the best epoch by the monitored val metric (else the last epoch).
    trainer_overrides : dict
        Extra Lightning ``Trainer`` keywords (e.g. ``check_val_every_n_epoch``).
    model : nn.Module, optional
        The network (its ``pixlearn_spec`` goes into the manifest).
    state : object
        Anything the task's own hooks need later (index, splits, pipeline...).
    """

    task: Any
    loaders: Any
    save_best: Callable[[Any], None]
    n_train: int
    has_val: bool
    val_steps: float = 0.0
    metrics_callback: Any = None
    keep_best: bool = True
    trainer_overrides: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    state: Any = None


@dataclass
class RunContext:
    """What :meth:`TaskHooks.evaluate` gets: the run after its fit."""

    cfg: Any
    data: Any
    splits: Any
    prepared: Prepared
    run_dir: Path
    result: Any
    manifest: dict[str, Any]
    fit_seconds: float
    progress: bool


class TaskHooks:
    """A task's part of training; subclass it and override what the defaults do not cover.

    ``name`` (the run folder's ``runs/<name>/``), ``config`` (the :class:`~pixlearn.engine.config.RunConfig`
    class), ``fold_keys`` (the metrics a k-fold run summarises) and ``data_help`` (what ``--data`` is) are
    class attributes; :meth:`read_data`, :meth:`plan`, :meth:`prepare` and :meth:`evaluate` are required.
    """

    name: str = ""
    config: Any = None
    fold_keys: tuple[str, ...] = ()
    data_help: str = "a dataset folder"

    def resolve(self, cfg: Any) -> Any:
        """The config with its defaults filled in (learning rate, hardware...); run before training."""
        return cfg

    def read_data(self, cfg: Any) -> Any:
        raise NotImplementedError

    def fingerprint(self, data: Any) -> str:
        """The data's fingerprint (a resumed run refuses changed data)."""
        return str(data.fingerprint())

    def plan(self, cfg: Any, data: Any) -> Any:
        """The split plan: a dataclass with ``train``, ``val``, ``test`` lists (and ``sources``)."""
        raise NotImplementedError

    def fold_labels(self, data: Any, splits: Any) -> Sequence[Any] | None:
        """One stratum per ``train + val`` item for stratified folds (None: plain folds)."""
        return None

    def prepare(self, cfg: Any, data: Any, splits: Any, run_dir: Path) -> Prepared:
        raise NotImplementedError

    def data_manifest(self, cfg: Any, data: Any, splits: Any) -> dict[str, Any]:
        """manifest.json's ``data`` block."""
        root = getattr(data, "root", None) or cfg.data.path
        return {"root": str(Path(root).resolve()), "fingerprint": self.fingerprint(data),
                "splits": splits.to_dict() if hasattr(splits, "to_dict") else {k: len(getattr(splits, k)) for k in ("train", "val", "test")}}

    def run_name(self, cfg: Any) -> str:
        """The default run folder's name under ``runs/<task>/``."""
        return str(cfg.model.name)

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        """Score the kept weights; return ``metrics.json``'s content (the driver adds the fit fields and writes it)."""
        raise NotImplementedError

    def report(self, ctx: RunContext, metrics: dict[str, Any]) -> None:
        """Write ``report.html`` (default: the engine's run report with the scores, the splits and why training stopped)."""
        from pixlearn.engine.budget import describe_stop
        from pixlearn.engine.report import write_run_report

        cfg, r = ctx.cfg, ctx.result
        s = ctx.splits
        splits = [{"split": k, "images": len(getattr(s, k)), "source": (getattr(s, "sources", {}) or {}).get(k, ""), "used_for": use}
                  for k, use in (("train", "fitting the weights"), ("val", "early stopping and choosing the best epoch"),
                                 ("test", "the final scores only"))]
        write_run_report(
            ctx.run_dir / "report.html", title=f"pixlearn train {self.name}: {self.run_name(cfg)}",
            scores=[{k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}], splits=splits,
            details={"stopped by": describe_stop(r.stop_reason, epochs_run=r.epochs_run, epochs=cfg.train.epochs,
                                                 minutes=cfg.train.minutes),
                     "best epoch": r.best_epoch, "fit seconds": round(ctx.fit_seconds, 1), "run folder": str(ctx.run_dir.resolve())},
        )

    def folds_report(self, run_dir: Path, cfg: Any, metrics: dict[str, Any]) -> None:
        """The k-fold summary page."""
        from pixlearn.engine.runs import write_folds_report

        k = cfg.train.folds
        write_folds_report(run_dir, metrics, title=f"pixlearn train {self.name}: {k}-fold cross-validation of {self.run_name(cfg)}",
                           details={"model": self.run_name(cfg), "folds": k, "seed": cfg.train.seed})


# ---------------------------------------------------------------- one fit
def fit_prepared(
    cfg: Any, prep: Prepared, run_dir: Path, *, manifest: dict[str, Any], progress: bool | None, callbacks: Sequence[Any] = (),
    rank_zero: bool = True, ckpt_path: Path | None = None, extend: bool = False, options: Any = None,
) -> tuple[Any, Any]:
    """Fit ``prep`` with the run-folder callbacks, the budget and progress; returns ``(TrainResult, FitOutcome)``.

    ``options`` (an :class:`~pixlearn.engine.module.EngineOptions`) defaults to
    :func:`~pixlearn.engine.trainer.engine_options` of ``cfg``. The fit's block of ``manifest`` (seconds, stop
    reason and point, budget, skipped files) is filled in; the caller scores and finishes the run.
    """
    from pixlearn.engine.callbacks import BestWeights, EpochMetrics, LastCheckpoint, ResumableEarlyStopping
    from pixlearn.engine.fit import engine_callbacks, run_fit
    from pixlearn.engine.module import EngineModule
    from pixlearn.engine.runs import write_json
    from pixlearn.engine.trainer import TrainResult, engine_options, trainer_kwargs

    t, sc = cfg.train, cfg.schedule
    has_val = prep.has_val
    options = options if options is not None else engine_options(cfg, has_val=has_val, run_dir=run_dir)
    module = EngineModule(prep.task, options, loaders=prep.loaders)
    metrics_cb = prep.metrics_callback or EpochMetrics(run_dir / "metrics.csv", n_train=prep.n_train,
                                                       freeze_epochs=getattr(cfg.model, "freeze_epochs", 0))
    best_cb = BestWeights(prep.save_best, monitor=options.monitor, mode=options.monitor_mode, has_val=has_val and prep.keep_best)
    cbs: list[Any] = [metrics_cb, best_cb]
    early = None
    if has_val and t.patience > 0:
        early = ResumableEarlyStopping(monitor=options.monitor, mode=options.monitor_mode, patience=t.patience, min_delta=t.min_delta,
                                       check_finite=True, reset_on_load=extend)
        cbs.append(early)
    eng = engine_callbacks(
        minutes=t.minutes, schedule=sc.name, warmup_epochs=sc.warmup_epochs, min_lr_ratio=sc.min_lr_ratio,
        pct_start=sc.pct_start, val_steps=prep.val_steps if has_val else 0.0, progress=progress, monitor=options.monitor if has_val else None,
    )
    cbs = eng.as_list() + cbs
    cbs.append(LastCheckpoint(run_dir / "checkpoints" / "last.ckpt"))
    cbs.extend(callbacks)
    kw = trainer_kwargs(cfg, run_dir, progress=False)
    kw.update(prep.trainer_overrides)
    kw["callbacks"] = cbs

    def failed(exc: BaseException) -> None:
        if rank_zero:
            manifest.update(status="failed", error=f"{type(exc).__name__}: {exc}", epochs_completed=len(metrics_cb.rows))
            write_json(run_dir / "manifest.json", manifest)

    outcome = run_fit(kw, module, ckpt_path=ckpt_path, budget=eng.budget, early_stopping=early, on_failure=failed)
    result = TrainResult(run_dir=run_dir, config=cfg, metrics=None, history=list(metrics_cb.rows), best_epoch=best_cb.best_epoch,
                         epochs_run=len(metrics_cb.rows), stopped_early=outcome.stop_reason == "early_stopping",
                         stop_reason=outcome.stop_reason)
    loader = getattr(prep.loaders, "train_loader", None)
    outcome.record(manifest, skipped=getattr(loader, "skipped", ()) if loader is not None else ())
    return result, outcome


def run_lr_finder(
    cfg: Any, prep: Prepared, run_dir: Path, manifest: dict[str, Any], *, rebuild: Callable[[Any], Prepared], progress: bool | None,
    rank_zero: bool = True, batch_size: int | None = None,
) -> tuple[dict[str, Any], Any, Prepared]:
    """Run the LR finder on ``prep``; returns ``(finder, cfg with its suggestion, rebuild(cfg))``.

    The curve goes to ``plots/lr_find.png`` and ``manifest["lr_find"]``; ``rebuild(cfg)`` builds a fresh, identically
    seeded preparation for the real run (the range test trained the first one).
    """
    from pixlearn.engine.fit import quiet_lightning
    from pixlearn.engine.lr_finder import find_lr
    from pixlearn.engine.module import EngineModule
    from pixlearn.engine.progress import show_progress
    from pixlearn.engine.trainer import engine_options, trainer_kwargs

    module = EngineModule(prep.task, engine_options(cfg, has_val=prep.has_val, run_dir=run_dir), loaders=prep.loaders)
    t = cfg.train
    batch = batch_size or cfg.data.batch_size
    with quiet_lightning():
        out = find_lr(module, trainer_kwargs(cfg, run_dir), steps_per_epoch=prep.n_train // batch,
                      devices=t.devices * t.num_nodes, progress=show_progress(progress))
    if rank_zero:
        from pixlearn.engine.plots import plot_lr_find

        plot_lr_find(out["lrs"], out["losses"], run_dir / "plots" / "lr_find.png", suggestion=out["suggestion"])
    manifest["lr_find"] = {k: out[k] for k in ("suggestion", "num_training")}
    if out["suggestion"]:
        cfg = type(cfg).from_overrides(cfg, lr=out["suggestion"])
    else:
        log.warning("the LR finder gave no suggestion (too few steps before the loss diverged); keeping lr=%g", cfg.optim.lr)
    return out, cfg, rebuild(cfg)


# ---------------------------------------------------------------- the whole run
def _fold_plan(hooks: TaskHooks, cfg: Any, data: Any) -> Any:
    from pixlearn.engine.kfold import fold_of

    splits = hooks.plan(cfg, data)
    if cfg.train.fold:
        splits = fold_of(splits, folds=max(cfg.train.folds, 1), fold=cfg.train.fold, seed=cfg.train.seed,
                         labels=hooks.fold_labels(data, splits))
    return splits


def _write_start(run_dir: Path, cfg: Any, manifest: dict[str, Any], rank_zero: bool) -> None:
    from pixlearn.engine.runs import atomic_write_text, write_json

    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        write_json(run_dir / "manifest.json", manifest)


def _fit_and_score(
    hooks: TaskHooks, cfg: Any, data: Any, splits: Any, prep: Prepared, run_dir: Path, manifest: dict[str, Any], *,
    progress: bool | None, callbacks: Sequence[Any], rank_zero: bool, ckpt_path: Path | None = None, extend: bool = False,
) -> Any:
    from pixlearn.engine.fit import quiet_lightning
    from pixlearn.engine.progress import show_progress
    from pixlearn.engine.runs import write_json

    with quiet_lightning():
        result, outcome = fit_prepared(cfg, prep, run_dir, manifest=manifest, progress=progress, callbacks=callbacks, rank_zero=rank_zero,
                                       ckpt_path=ckpt_path, extend=extend)
    if not outcome.trainer.is_global_zero or not rank_zero:
        return result
    ctx = RunContext(cfg=cfg, data=data, splits=splits, prepared=prep, run_dir=run_dir, result=result, manifest=manifest,
                     fit_seconds=outcome.fit_seconds, progress=show_progress(progress) and sys.stderr.isatty())
    metrics = dict(hooks.evaluate(ctx))
    metrics.setdefault("task", hooks.name)
    for key, value in (("fit_seconds", round(outcome.fit_seconds, 3)), ("best_epoch", result.best_epoch), ("epochs_run", result.epochs_run),
                       ("stopped_early", result.stopped_early), ("stop_reason", result.stop_reason)):
        metrics.setdefault(key, value)
    hooks.report(ctx, metrics)
    write_json(run_dir / "metrics.json", metrics)
    manifest.update(status="finished", epochs_completed=result.epochs_run, best_epoch=result.best_epoch,
                    stopped_early=result.stopped_early, stop_reason=result.stop_reason)
    write_json(run_dir / "manifest.json", manifest)
    result.metrics = metrics
    return result


def _train_single(hooks: TaskHooks, cfg: Any, data: Any, run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any],
                  rank_zero: bool) -> Any:
    from pixlearn.engine.runs import base_manifest
    from pixlearn.engine.trainer import device_info

    splits = _fold_plan(hooks, cfg, data)
    prep = hooks.prepare(cfg, data, splits, run_dir)
    manifest = base_manifest(seed=cfg.train.seed)
    manifest.update(status="running", task=hooks.name, device=device_info(cfg), data=hooks.data_manifest(cfg, data, splits),
                    run_dir=str(run_dir.resolve()))
    spec = getattr(prep.model, "pixlearn_spec", None)
    if spec is not None:
        manifest["model"] = spec.to_dict()
    finder = None
    if cfg.train.find_lr:
        run_dir.mkdir(parents=True, exist_ok=True)
        finder, cfg, prep = run_lr_finder(cfg, prep, run_dir, manifest, rebuild=lambda c: hooks.prepare(c, data, splits, run_dir),
                                          progress=progress, rank_zero=rank_zero)
    _write_start(run_dir, cfg, manifest, rank_zero)
    result = _fit_and_score(hooks, cfg, data, splits, prep, run_dir, manifest, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
    result.lr_find = finder
    return result


def _train_folds(hooks: TaskHooks, cfg: Any, data: Any, run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any],
                 rank_zero: bool) -> Any:
    from pixlearn.engine.kfold import fold_splits, run_folds
    from pixlearn.engine.runs import atomic_write_text, base_manifest, write_json
    from pixlearn.engine.trainer import TrainResult, device_info

    k = cfg.train.folds
    base = hooks.plan(cfg, data)
    fold_splits(base, folds=k, seed=cfg.train.seed, labels=hooks.fold_labels(data, base))  # fail early on too little data
    manifest = base_manifest(seed=cfg.train.seed)
    manifest.update(device=device_info(cfg), data=hooks.data_manifest(cfg, data, base))

    def one(i: int, fold_dir: Path) -> Any:
        return _train_single(hooks, type(cfg).from_overrides(cfg, fold=i), data, fold_dir, progress=progress, callbacks=callbacks,
                             rank_zero=rank_zero)

    metrics, results = run_folds(k, run_dir, one, task=hooks.name, keys=hooks.fold_keys, config_yaml=cfg.to_yaml(), manifest=manifest,
                                 write_text=atomic_write_text, write_json=write_json)
    hooks.folds_report(run_dir, cfg, metrics)
    return TrainResult(run_dir=run_dir, config=cfg, metrics=metrics, folds=results,
                       history=[{"fold": i + 1, **row} for i, r in enumerate(results) for row in r.history])


def _resume(hooks: TaskHooks, run: str | os.PathLike[str], *, data: Any, extend: int | None, options: Mapping[str, Any],
            progress: bool | None, callbacks: Sequence[Any], rank_zero: bool) -> Any:
    from pixlearn.engine.resume import check_same_data, note_resume, plan_resume
    from pixlearn.engine.runs import base_manifest

    C = hooks.config
    overrides = {k: v for k, v in options.items() if v is not None}
    if data is not None:
        overrides["data"] = str(Path(data).resolve())
    plan = plan_resume(run, load_config=C.load, with_overrides=C.from_overrides, overrides=overrides, extend=extend)
    cfg = hooks.resolve(plan.config)
    if cfg.data.path is None:
        raise ConfigError(f"{plan.run_dir / 'config.yaml'}: data.path is missing; pass --data")
    data_obj = hooks.read_data(cfg)
    manifest = plan.manifest or base_manifest(seed=cfg.train.seed)
    check_same_data(manifest, hooks.fingerprint(data_obj), data=cfg.data.path, run_dir=plan.run_dir)
    splits = _fold_plan(hooks, cfg, data_obj)
    prep = hooks.prepare(cfg, data_obj, splits, plan.run_dir)
    note_resume(manifest, plan, epochs=cfg.train.epochs, at=base_manifest(seed=cfg.train.seed)["created"])
    _write_start(plan.run_dir, cfg, manifest, rank_zero)
    return _fit_and_score(hooks, cfg, data_obj, splits, prep, plan.run_dir, manifest, progress=progress, callbacks=callbacks,
                          rank_zero=rank_zero, ckpt_path=plan.checkpoint, extend=extend is not None)


def train_task(
    hooks: TaskHooks,
    data: str | os.PathLike[str] | None = None,
    *,
    config: Any = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    extend: int | None = None,
    set: Sequence[str] = (),
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    **options: Any,
) -> Any:
    """Train ``hooks``' task and write its run folder: a new run, ``resume``/``extend``, k-fold (``folds=K``), the LR
    finder (``find_lr=True``) and the time budget (``minutes=M``), all from the same code.

    Parameters are those of every task's train function (see :func:`pixlearn.tasks.classify.train.train_classifier`);
    ``options`` are the task config's flat names. Returns a :class:`~pixlearn.engine.trainer.TrainResult`.

    Raises
    ------
    ConfigError
        No data, an occupied run folder, ``--find-lr`` with ``--folds``, or a run that cannot be resumed.
    """
    from pixlearn.engine.budget import epochs_for_budget
    from pixlearn.engine.resume import check_new_run_options
    from pixlearn.engine.runs import default_run_dir, env_rank

    rank_zero = env_rank() == 0
    if isinstance(options.get("data"), (str, os.PathLike)) and data is None:
        data = options.pop("data")
    check_new_run_options(resume=resume, extend=extend, options=options, config=config, set=set)
    if resume is not None:
        return _resume(hooks, resume, data=data, extend=extend, options=options, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
    C = hooks.config
    cfg = C.from_overrides(C.coerce(config), data=data, **options)
    if set:
        cfg = cfg.with_set(set)
    cfg = C.from_overrides(cfg, epochs=epochs_for_budget(cfg.train.epochs, minutes=cfg.train.minutes, options=options,
                                                         config=config, set=set))
    if cfg.data.path is None:
        raise ConfigError(f"no data: pass --data DIR ({hooks.data_help})")
    cfg = C.from_overrides(cfg, data=str(Path(cfg.data.path).resolve()))
    data_obj = hooks.read_data(cfg)
    cfg = hooks.resolve(cfg)
    run_dir = Path(out) if out is not None else default_run_dir(hooks.name, hooks.run_name(cfg))
    if rank_zero and (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: already holds a run; choose another --out, or continue it with --resume {run_dir}")
    if cfg.train.folds > 1 and not cfg.train.fold:
        if cfg.train.find_lr:
            raise ConfigError("--find-lr and --folds do not mix; find the learning rate on a single run first")
        return _train_folds(hooks, cfg, data_obj, run_dir, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
    return _train_single(hooks, cfg, data_obj, run_dir, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
