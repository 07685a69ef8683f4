"""Train an image classifier from a labelled folder: the run folder, resume / extend, k-fold, LR finder.

:func:`train_classifier` is the Python face of ``pixlearn train classify``. A run writes
``runs/classify/<name>/``::

    config.yaml               the resolved configuration (rerun it with --config)
    manifest.json             versions, seed, data fingerprint and splits, git commit, device, timings
    metrics.csv               one row per epoch: train/val loss, val metrics, lr, epoch time
    metrics.json              final scores on the test (or held-out) split, in the schema of
                              pixlearn.tasks.classify.metrics.classification_metrics, plus "split" and the val scores
    weights/best.safetensors  the best epoch's weights (by the monitored val metric)
    weights/model.json        the model spec, classes and preprocessing that rebuild it
    checkpoints/last.ckpt     the full training state at the last epoch end (resume / extend)
    plots/*.png               training curves, confusion matrices, ROC, PR, per-class, mistakes
    report.html               everything above in one page, every number named by its split

A k-fold run (``folds=K``) writes the same files for each fold under ``fold_1/`` ... and a
summary (``config.yaml``, ``manifest.json``, ``metrics.csv``, ``metrics.json``, ``report.html``)
with the mean and standard deviation of every metric at the top.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.engine.resume import HARDWARE_KEYS  # re-exported: the options a resumed run may change
from pixlearn.tasks.classify.config import ClassifyConfig, load_config
from pixlearn.engine.trainer import TrainResult, device_info, engine_options, resolve_hardware
from pixlearn.engine.sampling import ShardSampler
from pixlearn.engine.runs import atomic_write_text, base_manifest, default_run_dir, env_rank, write_json

__all__ = ["TrainResult", "train_classifier", "HARDWARE_KEYS"]

log = logging.getLogger("pixlearn.train")


_SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top5_accuracy", "roc_auc_macro")


# ---------------------------------------------------------------- config resolution
def _default_lr(optimizer: str, batch_size: int) -> float:
    if optimizer == "sgd":
        return 0.05 * batch_size / 64  # linear scaling
    return 2e-3 * math.sqrt(batch_size / 64)  # square-root scaling for Adam-style optimisers


def _resolve(cfg: ClassifyConfig, *, img_size: int) -> ClassifyConfig:
    d = cfg.to_dict()
    o, m = d["optim"], d["model"]
    if o["lr"] is None:
        o["lr"] = _default_lr(o["optimizer"], d["data"]["batch_size"])
    if o["weight_decay"] is None:
        o["weight_decay"] = 0.05 if o["optimizer"] == "adamw" else 5e-4
    if m["backbone_lr_mult"] is None:
        from pixlearn.tasks.classify.recipe import BACKBONE_LR_MULT

        m["backbone_lr_mult"] = BACKBONE_LR_MULT if (m["pretrained"] or m["weights"]) else 1.0
    d["data"]["img_size"] = img_size
    d["train"].update(resolve_hardware(cfg))
    _resolve_fine_tune(d)
    return ClassifyConfig.from_dict(d)


# ---------------------------------------------------------------- loaders


@dataclass
class _Loaders:
    train_ds: Any
    val_ds: Any
    batch_size: int
    workers: int
    seed: int
    sample_weights: list[float] | None
    pin_memory: bool = False
    train_loader: Any = None

    def _loader(self, dataset: Any, sampler: Any, *, drop_last: bool) -> Any:
        from pixlearn.data.loader import SkippingLoader, collate_skip_none, seed_worker

        extra: dict[str, Any] = {}
        if self.workers > 0:
            extra = {"persistent_workers": True, "worker_init_fn": seed_worker, "multiprocessing_context": "forkserver"}
        return SkippingLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers,
            collate_fn=functools.partial(collate_skip_none, mean=dataset.mean, std=dataset.std),
            drop_last=drop_last, pin_memory=self.pin_memory, **extra,
        )

    def train(self, world: int, rank: int) -> Any:
        from pixlearn.engine.sampling import EpochSampler

        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=self.seed, weights=self.sample_weights, num_replicas=world, rank=rank)
        # drop a last partial batch (batch-norm cannot train on one image) when there is more than one batch
        self.train_loader = self._loader(self.train_ds, sampler, drop_last=len(sampler) > self.batch_size)
        return self.train_loader

    def val(self, world: int, rank: int) -> Any:
        return self._loader(self.val_ds, ShardSampler(len(self.val_ds), world, rank), drop_last=False)


# ---------------------------------------------------------------- quiet Lightning
def _quiet_lightning() -> Any:
    from pixlearn.engine.fit import quiet_lightning

    return quiet_lightning()


# ---------------------------------------------------------------- one run
@dataclass
class _Prepared:
    cfg: ClassifyConfig
    index: Any
    splits: Any
    model: Any
    task: Any
    loaders: _Loaders
    classes: list[str]


def _prepare(cfg: ClassifyConfig, index: Any, splits: Any, *, spec: Mapping[str, Any] | None = None) -> _Prepared:
    """Model, task and datasets for ``cfg`` (already resolved) on ``splits``."""
    import torch

    from pixlearn.models import build_from_spec, create_model
    from pixlearn.tasks.classify.module import ClassifyTask, inverse_frequency_weights
    from pixlearn.tasks.classify.data import make_dataset

    classes = list(index.classes)
    torch.manual_seed(cfg.train.seed)
    size = cfg.data.img_size
    if spec is not None:  # resuming: the exact architecture of the run, no download
        model = build_from_spec(spec)
    else:
        m = cfg.model
        model = create_model(
            m.name, num_classes=len(classes), pretrained=m.pretrained, weights=m.weights,
            drop_rate=m.drop_rate, drop_path_rate=m.drop_path_rate, img_size=size,
        )
        _record_pipeline_preprocess(model)
        _init_new_head(model, cfg)
    pre = model.pixlearn_spec.preprocess
    counts = splits.class_counts("train")
    weights = None
    if cfg.data.class_weights is not None:
        if len(cfg.data.class_weights) != len(classes):
            raise ConfigError(f"data.class_weights has {len(cfg.data.class_weights)} values but there are {len(classes)} classes {classes}")
        weights = list(cfg.data.class_weights)
    elif cfg.data.balance == "loss":
        weights = inverse_frequency_weights(counts)
    t = cfg.train
    task = ClassifyTask(
        model, num_classes=len(classes), label_smoothing=t.label_smoothing, class_weights=weights,
        mixup_alpha=t.mixup_alpha, cutmix_alpha=t.cutmix_alpha, mix_prob=t.mix_prob,
    )
    train_ds = make_dataset(index, splits.train, img_size=pre.img_size, mean=pre.mean, std=pre.std, augment=cfg.data.augment)
    val_ds = make_dataset(index, splits.val, img_size=pre.img_size, mean=pre.mean, std=pre.std) if splits.val else None
    sample_weights = None
    if cfg.data.balance == "sampler":
        per_class = [1.0 / c if c else 0.0 for c in counts]
        sample_weights = [per_class[index.records[i].label] for i in splits.train]
    loaders = _Loaders(train_ds, val_ds, cfg.data.batch_size, cfg.data.workers, t.seed, sample_weights,
                       pin_memory=cfg.train.accelerator in ("gpu", "cuda"))
    return _Prepared(cfg, index, splits, model, task, loaders, classes)


def _record_pipeline_preprocess(model: Any) -> None:
    """pixlearn's loader resizes bilinearly without a centre crop: record that, not the recipe the model shipped with."""
    from dataclasses import replace

    spec = model.pixlearn_spec
    model.pixlearn_spec = replace(spec, preprocess=replace(spec.preprocess, interpolation="bilinear", crop_pct=1.0))


def _show_progress(progress: bool | None) -> bool:
    from pixlearn.engine.progress import show_progress

    return show_progress(progress)


def _engine_prep(prep: _Prepared, run_dir: Path) -> Any:
    """The engine's view of a preparation (:class:`pixlearn.engine.driver.Prepared`)."""
    from pixlearn.engine.driver import Prepared

    has_val = bool(prep.splits.val)
    return Prepared(task=prep.task, loaders=prep.loaders, n_train=len(prep.splits.train), has_val=has_val,
                    val_steps=len(prep.splits.val) / prep.cfg.data.batch_size if has_val else 0.0,
                    save_best=_SaveBest(run_dir, prep.classes), model=prep.model)


def _run_lr_finder(prep: _Prepared, cfg: ClassifyConfig, run_dir: Path, manifest: dict[str, Any], *, rank_zero: bool,
                   progress: bool | None) -> tuple[dict[str, Any], ClassifyConfig, _Prepared]:
    """The engine's LR finder: its result, the config with its suggestion and a fresh, identically seeded preparation."""
    from pixlearn.engine.driver import run_lr_finder

    rebuilt: list[_Prepared] = []

    def rebuild(c: ClassifyConfig) -> Any:
        rebuilt.append(_prepare(c, prep.index, prep.splits))
        return rebuilt[-1]

    finder, cfg, _ = run_lr_finder(cfg, _engine_prep(prep, run_dir), run_dir, manifest, rebuild=rebuild, progress=progress,
                                   rank_zero=rank_zero)
    return finder, cfg, rebuilt[-1]


class _SaveBest:
    """Writes ``weights/best.safetensors`` and ``weights/model.json`` (a class, so that it pickles)."""

    def __init__(self, run_dir: Path, classes: list[str]) -> None:
        self.run_dir, self.classes = Path(run_dir), list(classes)

    def __call__(self, model: Any) -> None:
        from pixlearn.models import save_weights
        from pixlearn.tasks.classify.predict import model_card

        card = model_card(model, self.classes)
        save_weights(model, self.run_dir / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(card)})
        write_json(self.run_dir / "weights" / "model.json", card)


def _fit(
    prep: _Prepared,
    run_dir: Path,
    *,
    ckpt_path: Path | None,
    extend: bool,
    progress: bool | None,
    callbacks: Sequence[Any],
    manifest: dict[str, Any],
    rank_zero: bool,
) -> TrainResult:
    """The engine's fit (:func:`pixlearn.engine.driver.fit_prepared`) with the fine-tuning options, then the final scoring."""
    from pixlearn.engine.driver import fit_prepared

    cfg = prep.cfg
    options = _fine_tune_options(engine_options(cfg, has_val=bool(prep.splits.val), run_dir=run_dir), cfg)
    result, outcome = fit_prepared(cfg, _engine_prep(prep, run_dir), run_dir, manifest=manifest, progress=progress, callbacks=callbacks,
                                   rank_zero=rank_zero, ckpt_path=ckpt_path, extend=extend, options=options)
    if not outcome.trainer.is_global_zero or not rank_zero:
        return result
    result.metrics = _final_evaluation(prep, run_dir, result, manifest, fit_seconds=outcome.fit_seconds,
                                       progress=_show_progress(progress) and sys.stderr.isatty())  # scoring bars: terminals only
    return result


def _split_rows(prep: _Prepared) -> list[dict[str, Any]]:
    s = prep.splits
    rows = [{"split": "train", "images": len(s.train), "source": s.sources.get("train", ""), "used_for": "fitting the weights"}]
    rows.append({"split": "val", "images": len(s.val), "source": s.sources.get("val", ""),
                 "used_for": "early stopping and choosing the best epoch (its scores are not unbiased)" if s.val else "nothing (no validation)"})
    rows.append({"split": s.test_name, "images": len(s.test), "source": s.sources.get(s.test_name, ""),
                 "used_for": "the final scores only: never for training, early stopping or model selection" if s.test else "nothing (no test split)"})
    return rows


def _final_evaluation(
    prep: _Prepared, run_dir: Path, result: TrainResult, manifest: dict[str, Any], *, fit_seconds: float, progress: bool = False,
) -> dict[str, Any]:
    from pixlearn.engine.budget import describe_stop
    from pixlearn.tasks.classify.evaluate import evaluate_split, write_evaluation
    from pixlearn.tasks.classify.predict import load_classifier

    cfg = prep.cfg
    t0 = time.perf_counter()
    clf = load_classifier(run_dir, device="auto" if cfg.train.accelerator in ("gpu", "cuda") else "cpu")  # rebuilt from the folder alone
    bs, workers = cfg.data.batch_size, cfg.data.workers
    s = prep.splits
    evaluations = []
    notes = []
    if s.test:
        evaluations.append(evaluate_split(clf, prep.index, s.test, split=s.test_name, source=s.sources.get(s.test_name, ""), batch_size=bs,
                                          workers=workers, progress=progress))
    if s.val:
        val = evaluate_split(clf, prep.index, s.val, split="val", source=s.sources.get("val", ""), batch_size=bs, workers=workers,
                             progress=progress)
        val.metrics["note"] = "used for early stopping and to choose the best epoch: optimistic"
        evaluations.append(val)
    if not s.test:
        notes.append("This run has no test split (test_fraction=0 and no test/ folder): the headline scores are on the val split, "
                     "which chose the best epoch, so they are optimistic.")
    if not evaluations:
        raise ConfigError("no val or test images to score the model on; keep val_fraction or test_fraction above 0")
    head = evaluations[0]
    eval_seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {"task": "classify", **{k: v for k, v in head.metrics.items() if k != "note"}}
    metrics.update(
        fit_seconds=round(fit_seconds, 3),
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        stopped_early=result.stopped_early,
        stop_reason=result.stop_reason,
        monitor=cfg.train.monitor,
        splits={r["split"]: {"images": r["images"], "source": r["source"], "used_for": r["used_for"]} for r in _split_rows(prep)},
    )
    for ev in evaluations[1:]:
        metrics[ev.split] = {k: v for k, v in ev.metrics.items()}
    metrics["verdict"] = _verdict(head, prep.classes)
    extra = []
    if (run_dir / "plots" / "lr_find.png").is_file():
        extra.append((run_dir / "plots" / "lr_find.png", "LR finder: training loss (train split) against the learning rate."))
    title = f"pixlearn train classify: {cfg.model.name} on {Path(prep.index.root).name}"
    details = {
        "model": cfg.model.name,
        "initialisation": "pretrained" if cfg.model.pretrained else (f"weights {cfg.model.weights}" if cfg.model.weights else "random (from scratch)"),
        "image size": cfg.data.img_size,
        "classes": len(prep.classes),
        "epochs run": f"{result.epochs_run} of {cfg.train.epochs}",
        "stopped by": describe_stop(result.stop_reason, epochs_run=result.epochs_run, epochs=cfg.train.epochs, minutes=cfg.train.minutes),
        "best epoch": f"{result.best_epoch} (by {cfg.train.monitor} on val)" if s.val else f"{result.best_epoch} (last epoch; no val split)",
        "optimizer": f"{cfg.optim.optimizer}, lr {cfg.optim.lr:.3g}, weight decay {cfg.optim.weight_decay:g}, schedule {cfg.schedule.name}",
        "device": f"{cfg.train.accelerator} x {cfg.train.devices}, precision {cfg.train.precision}",
        "fit seconds": round(fit_seconds, 1),
        "data": str(Path(prep.index.root).resolve()),
        "run folder": str(run_dir.resolve()),
    }
    write_evaluation(
        run_dir, evaluations, classes=prep.classes, title=title, details=details, history=result.history,
        splits=_split_rows(prep), extra_plots=extra, notes=notes, verdict=metrics["verdict"],
    )
    write_json(run_dir / "metrics.json", metrics)
    manifest["verdict"] = metrics["verdict"]
    manifest["timings"]["eval_seconds"] = round(eval_seconds, 3)
    manifest.update(status="finished", epochs_completed=result.epochs_run, best_epoch=result.best_epoch, stopped_early=result.stopped_early,
                    stop_reason=result.stop_reason)
    if any(ev.errors for ev in evaluations):
        manifest["skipped_in_evaluation"] = {ev.split: ev.errors for ev in evaluations if ev.errors}
    write_json(run_dir / "manifest.json", manifest)
    return metrics


def _verdict(head: Any, classes: Sequence[str]) -> dict[str, Any]:
    """metrics.json's verdict: the headline split's accuracy against chance and that split's majority class."""
    from pixlearn.tasks.classify.evaluate import classification_verdict

    return classification_verdict(head, classes).to_dict()


# ---------------------------------------------------------------- public entry point
def _data_manifest(index: Any, splits: Any) -> dict[str, Any]:
    return {
        "root": str(Path(index.root).resolve()),
        "format": index.format,
        "fingerprint": index.fingerprint(),
        "classes": list(index.classes),
        "splits": splits.to_dict(),
    }


def _plan(cfg: ClassifyConfig, index: Any) -> Any:
    from pixlearn.tasks.classify.data import fold_splits, plan_splits

    splits = plan_splits(index, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction, seed=cfg.train.seed)
    if cfg.train.fold:
        if cfg.train.fold > max(cfg.train.folds, 1):
            raise ConfigError(f"train.fold={cfg.train.fold} but train.folds={cfg.train.folds}")
        splits = fold_splits(splits, folds=cfg.train.folds, seed=cfg.train.seed)[cfg.train.fold - 1]
    return splits


def _default_img_size(name: str) -> int:
    from pixlearn.models.registry import TORCHVISION_MODELS, _REGISTRY, check_model_name

    check_model_name(name)
    if name in _REGISTRY:
        return _REGISTRY[name].preprocess.input_size[1]
    if name in TORCHVISION_MODELS:
        return TORCHVISION_MODELS[name]["input_size"][1]
    import timm.models

    pc = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    return int(pc.input_size[1]) if pc is not None and pc.input_size else 224


# ---------------------------------------------------------------- fine-tuning recipe and budget plan (tasks.classify.recipe)
def _resolve_fine_tune(d: dict[str, Any]) -> None:
    from pixlearn.tasks.classify.recipe import resolve_fine_tune_fields

    resolve_fine_tune_fields(d)


def _init_new_head(model: Any, cfg: ClassifyConfig) -> None:
    if cfg.model.head_init == "zero":
        from pixlearn.models.freeze import init_head

        init_head(model, std=0.0)


def _fine_tune_options(options: Any, cfg: ClassifyConfig) -> Any:
    m = cfg.model
    options.freeze_fraction = float(m.freeze_fraction or 0.0)
    options.layer_decay = float(m.layer_decay or 1.0)
    options.bn_eval = bool(m.bn_eval)
    return options


def _start_run(cfg: ClassifyConfig, index: Any, *, options: Mapping[str, Any], config: Any, set: Sequence[str],
               progress: bool | None) -> tuple[ClassifyConfig, Any]:
    from pixlearn.tasks.classify.recipe import start_run

    return start_run(cfg, index, options=options, config=config, set=set, progress=progress,
                     n_train=lambda c: len(_plan(c, index).train))


def _train_one(
    cfg: ClassifyConfig, index: Any, run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any], rank_zero: bool,
    lr_find: bool, start: Mapping[str, Any] | None = None,
) -> TrainResult:
    splits = _plan(cfg, index)
    prep = _prepare(cfg, index, splits)
    manifest = base_manifest(seed=cfg.train.seed)
    manifest.update(status="running", task="classify", device=device_info(cfg), data=_data_manifest(index, splits),
                    model=prep.model.pixlearn_spec.to_dict(), run_dir=str(run_dir.resolve()))
    manifest.update(start or {})
    finder = None
    if lr_find:  # then a fresh, identically seeded model for the real run
        finder, cfg, prep = _run_lr_finder(prep, cfg, run_dir, manifest, rank_zero=rank_zero, progress=progress)
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        write_json(run_dir / "manifest.json", manifest)
    with _quiet_lightning():
        result = _fit(prep, run_dir, ckpt_path=None, extend=False, progress=progress, callbacks=callbacks, manifest=manifest, rank_zero=rank_zero)
    result.lr_find = finder
    return result


def _train_folds(
    cfg: ClassifyConfig, index: Any, run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any], rank_zero: bool,
) -> TrainResult:
    """k-fold cross-validation through :func:`pixlearn.engine.kfold.run_folds` (the loop, summary and files every task uses)."""
    from pixlearn.engine.kfold import run_folds
    from pixlearn.engine.runs import write_folds_report
    from pixlearn.tasks.classify.data import fold_splits, plan_splits

    k = cfg.train.folds
    base = plan_splits(index, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction, seed=cfg.train.seed)
    fold_splits(base, folds=k, seed=cfg.train.seed)  # fail early when the data is too small for k folds
    manifest = base_manifest(seed=cfg.train.seed)
    manifest.update(device=device_info(cfg), data=_data_manifest(index, base))

    def one(i: int, fold_dir: Path) -> TrainResult:
        log.info("fold %d/%d", i, k)
        return _train_one(ClassifyConfig.from_overrides(cfg, fold=i), index, fold_dir, progress=progress, callbacks=callbacks,
                          rank_zero=rank_zero, lr_find=False)

    metrics, results = run_folds(k, run_dir, one, task="classify", keys=_SUMMARY_METRICS, config_yaml=cfg.to_yaml(), manifest=manifest,
                                 write_text=atomic_write_text, write_json=write_json, with_val=True, headline=("accuracy", "macro_f1"),
                                 write=rank_zero)
    if rank_zero:
        test_name = base.test_name
        write_folds_report(
            run_dir, metrics, title=f"pixlearn train classify: {k}-fold cross-validation of {cfg.model.name}",
            details={"model": cfg.model.name, "folds": k, "epochs": cfg.train.epochs, "seed": cfg.train.seed},
            head_rows=[{"split": test_name, "images": len(base.test), "source": base.sources.get(test_name, ""),
                        "used_for": "scored by every fold's model; never trained on"},
                       {"split": "train + val", "images": len(base.train) + len(base.val), "source": "split into the folds",
                        "used_for": f"each fold trains on {k - 1}/{k} and validates (early stopping) on 1/{k}"}],
        )
    return TrainResult(run_dir=run_dir, config=cfg, metrics=metrics if rank_zero else None, folds=results,
                       history=[{"fold": i + 1, **row} for i, r in enumerate(results) for row in r.history])


def _resume(
    run: str | os.PathLike[str], *, extend: int | None, overrides: dict[str, Any], progress: bool | None,
    callbacks: Sequence[Any], rank_zero: bool,
) -> TrainResult:
    from pixlearn.engine.resume import plan_resume
    from pixlearn.tasks.classify.data import read_classify_dataset

    plan = plan_resume(run, load_config=load_config, with_overrides=ClassifyConfig.from_overrides, overrides=overrides, extend=extend)
    run_dir, cfg_path, ckpt = plan.run_dir, plan.run_dir / "config.yaml", plan.checkpoint
    cfg = _resolve(plan.config, img_size=int(plan.config.data.img_size or _default_img_size(plan.config.model.name)))
    if cfg.data.path is None:
        raise ConfigError(f"{cfg_path}: data.path is missing; pass --data")
    index = read_classify_dataset(cfg.data.path)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else base_manifest(seed=cfg.train.seed)
    old_fp = manifest.get("data", {}).get("fingerprint")
    if old_fp and old_fp != index.fingerprint():
        raise ConfigError(
            f"{cfg.data.path}: the data changed since {run_dir} started (its fingerprint differs from manifest.json); "
            "resuming would not continue the same run. Start a new run"
        )
    splits = _plan(cfg, index)
    spec = None
    card = run_dir / "weights" / "model.json"
    if card.is_file():
        spec = json.loads(card.read_text(encoding="utf-8"))["model"]
    prep = _prepare(cfg, index, splits, spec=spec)
    from pixlearn.engine.resume import note_resume

    note_resume(manifest, plan, epochs=cfg.train.epochs, at=base_manifest(seed=cfg.train.seed)["created"])
    manifest.update(device=device_info(cfg))
    if rank_zero:
        atomic_write_text(cfg_path, cfg.to_yaml())
        write_json(manifest_path, manifest)
    with _quiet_lightning():
        return _fit(prep, run_dir, ckpt_path=ckpt, extend=extend is not None, progress=progress, callbacks=callbacks,
                    manifest=manifest, rank_zero=rank_zero)


def train_classifier(
    data: str | os.PathLike[str] | None = None,
    *,
    config: ClassifyConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    extend: int | None = None,
    set: Sequence[str] = (),
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    **options: Any,
) -> TrainResult:
    """Train an image classifier on a labelled folder and write its run folder.

    Parameters
    ----------
    data : path, optional
        A labelled dataset: ``<class>/*.jpg`` folders, optionally under ``train/ val/ test/``, or
        a CSV (``path,label[,split]``). Required unless the config names it or ``resume`` is given.
    config : ClassifyConfig, mapping or YAML path, optional
        The starting configuration (defaults otherwise); ``options`` override it.
    out : path, optional
        The run folder; default ``runs/classify/<model>`` (``-2``, ``-3``... when taken).
    resume : path, optional
        Continue a run folder from its ``checkpoints/last.ckpt``: the same batches, schedule and
        random draws as if it had never stopped. Only hardware options may change.
    extend : int, optional
        With ``resume``: train this many epochs more than the run has done (also after it
        finished or stopped early; early stopping's patience starts afresh).
    set : sequence of str
        ``section.key=value`` assignments for any config field (values parsed as YAML).
    progress : bool, optional
        A progress bar on stderr (default: when stderr is a terminal).
    callbacks : sequence of lightning.pytorch.Callback
        Extra Lightning callbacks.
    **options
        Flat config fields: ``model``, ``epochs``, ``img_size``, ``batch`` (``batch_size``), ``lr``,
        ``folds``, ``seed``, ``workers``, ``pretrained``, ``weights``, ``optimizer``, ``schedule``,
        ``augment``, ``label_smoothing``, ``mixup``, ``cutmix``, ``balance``, ``patience``,
        ``freeze_epochs``, ``find_lr``, ``devices``, ``strategy``, ... (see
        :data:`pixlearn.tasks.classify.config.FLAT_KEYS`); unknown names get a suggestion.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        Invalid options, or data that cannot train a classifier (missing folder, one class...).
    UnknownNameError
        Unknown model name or option (with the closest matches).
    WeightsNotFoundError
        ``pretrained=True`` offline without the weights file.
    TrainingDivergedError
        The loss became NaN/Inf; ``checkpoints/last.ckpt`` keeps the last good epoch.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pixlearn.io import write_image
    >>> root = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> for i in range(24):
    ...     _ = write_image(root / "data" / "ab"[i % 2] / f"{i}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    >>> res = train_classifier(root / "data", model="pixlearn_smallcnn_tiny", epochs=1, img_size=8, batch=8,
    ...                        out=root / "run", progress=False)
    >>> res.metrics["split"], sorted(p.name for p in (root / "run" / "weights").iterdir())
    ('holdout', ['best.safetensors', 'model.json'])
    """
    rank_zero = env_rank() == 0
    if isinstance(options.get("data"), (str, os.PathLike)) and data is None:
        data = options.pop("data")
    from pixlearn.engine.budget import epochs_for_budget
    from pixlearn.engine.resume import check_new_run_options

    check_new_run_options(resume=resume, extend=extend, options=options, config=config, set=set)
    if resume is not None:
        overrides = {k: v for k, v in options.items() if v is not None}
        if data is not None:
            overrides["data"] = data
        return _resume(resume, extend=extend, overrides=overrides, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
    cfg = ClassifyConfig.from_overrides(ClassifyConfig.coerce(config), data=data, **options)
    if set:
        cfg = cfg.with_set(set)
    cfg = ClassifyConfig.from_overrides(cfg, epochs=epochs_for_budget(cfg.train.epochs, minutes=cfg.train.minutes, options=options,
                                                                      config=config, set=set))
    if cfg.data.path is None:
        raise ConfigError("no data: pass --data DIR (a folder with one sub-folder of images per class)")
    from pixlearn.tasks.classify.data import read_classify_dataset

    index = read_classify_dataset(cfg.data.path)
    cfg = ClassifyConfig.from_overrides(cfg, data=str(Path(cfg.data.path).resolve()))
    cfg, start = _start_run(cfg, index, options=options, config=config, set=set, progress=progress)
    cfg = _resolve(cfg, img_size=int(cfg.data.img_size or _default_img_size(cfg.model.name)))
    run_dir = Path(out) if out is not None else default_run_dir("classify", cfg.model.name)
    if rank_zero and run_dir.exists() and any(run_dir.iterdir()):
        if (run_dir / "config.yaml").exists():
            raise ConfigError(f"{run_dir}: already holds a run; choose another --out, or continue it with --resume {run_dir}")
    if cfg.train.folds > 1 and not cfg.train.fold:
        if cfg.train.find_lr:
            raise ConfigError("--find-lr and --folds do not mix; find the learning rate on a single run first")
        return _train_folds(cfg, index, run_dir, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
    return _train_one(cfg, index, run_dir, progress=progress, callbacks=callbacks, rank_zero=rank_zero, lr_find=cfg.train.find_lr,
                      start=start.manifest)
