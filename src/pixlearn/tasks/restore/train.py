"""Train an image restorer (denoising, super-resolution, enhancement) and write its run folder.

:func:`train_restorer` is the Python face of ``pixlearn train restore``. It trains on random
patches of clean images degraded on the fly (or of degraded/clean pairs) with the shared engine
(:class:`~pixlearn.engine.module.EngineModule`), then scores the best epoch's model on whole
held-out images -- tile by tile, as a user would apply it -- beside the degraded input and the
classical methods. A run writes ``runs/restore/<name>/``::

    config.yaml               the resolved configuration
    manifest.json             versions, seed, data fingerprint and splits, git commit, device, timings
    metrics.csv               one row per epoch: train/val loss, val PSNR / SSIM / MSE of the model
                              and of the degraded input (fixed centre crops), lr, timings
    metrics.json              final scores on whole test (else val) images: the model, the input and
                              every classical method, each with PSNR, SSIM, MSE and seconds
    weights/best.safetensors  the best epoch's weights (by val PSNR)
    weights/model.json        the restorer's spec, task, grey/colour, scale and degradation
    checkpoints/last.ckpt     the full training state at the last epoch end
    plots/crops.png           side-by-side crops: degraded | classical | model | clean
    plots/curves.png          training curves
    report.html               all of it in one page
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.restore.config import RestoreConfig
from pixlearn.engine.runs import atomic_write_text, base_manifest, default_run_dir, write_json
from pixlearn.engine.trainer import TrainResult

__all__ = ["RestoreResult", "train_restorer", "RESTORE_COLUMNS"]

log = logging.getLogger("pixlearn.train")

#: Columns of a restoration run's ``metrics.csv``.
RESTORE_COLUMNS = (
    "epoch", "train_loss", "val_loss", "val_psnr", "val_ssim", "val_mse", "val_input_psnr", "val_input_ssim",
    "lr", "epoch_seconds", "train_seconds", "train_patches_per_second",
)


@dataclass
class RestoreResult(TrainResult):
    """What a restoration run produced (the engine's :class:`~pixlearn.engine.trainer.TrainResult`): its folder, resolved
    config, ``metrics.json`` and ``metrics.csv`` rows."""


# ---------------------------------------------------------------- config
def _resolve(cfg: RestoreConfig) -> RestoreConfig:
    import torch

    d = cfg.to_dict()
    o, t = d["optim"], d["train"]
    if o["lr"] is None:
        o["lr"] = 1e-3 if o["optimizer"] == "adamw" else 0.01
    if o["weight_decay"] is None:
        o["weight_decay"] = 0.0
    if t["loss"] is None:
        t["loss"] = "l2" if d["data"]["task"] == "denoise" else "l1"
    acc = t["accelerator"]
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    t["accelerator"] = acc
    if t["precision"] == "auto":
        from pixlearn.engine.trainer import auto_precision

        t["precision"] = auto_precision(acc, gpu_fp16=False)
    return RestoreConfig.from_dict(d)


def _pipeline(cfg: RestoreConfig) -> Any:
    """The degradation of clean images (the task's preset, or ``data.degrade``)."""
    from pixlearn.models.restoration import is_upsampler
    from pixlearn.tasks.restore.degrade import Pipeline, preset

    dc = cfg.data
    up = is_upsampler(cfg.model.name)
    if dc.degrade is not None:
        if dc.sigma is not None:
            raise ConfigError("give either --degrade or --sigma: --sigma only sets the default degradation of the task")
        p = Pipeline.parse(dc.degrade, clip=dc.clip)
    elif dc.task == "super-resolution":
        p = preset("super-resolution", scale=dc.scale, restore_size=not up)
        p = Pipeline(p.steps, clip=dc.clip)
    else:
        p = preset(dc.task, sigma=dc.sigma, noise=dc.noise)
        p = Pipeline(p.steps, clip=dc.clip)
    return p


def _check_scale(cfg: RestoreConfig, scale: int) -> None:
    from pixlearn.models.restoration import is_upsampler

    up = is_upsampler(cfg.model.name)
    if up and scale < 2:
        raise ConfigError(
            f"{cfg.model.name} upsamples, but the degradation keeps the size (scale 1); use --task super-resolution "
            "(or a degradation with downscale), or a same-size model (dncnn, unet)"
        )
    if not up and scale > 1:
        raise ConfigError(
            f"{cfg.model.name} keeps the image size but the inputs are {scale}x smaller; use --model espcn or edsr "
            "(or downscale:restore_size=true for a same-size model)"
        )


# ---------------------------------------------------------------- loaders
@dataclass
class _Loaders:
    train_ds: Any
    val_ds: Any
    batch_size: int
    workers: int
    seed: int
    pin_memory: bool = False

    def _loader(self, dataset: Any, sampler: Any, *, drop_last: bool) -> Any:
        from torch.utils.data import DataLoader

        from pixlearn.data.loader import seed_worker
        from pixlearn.tasks.restore.data import collate_pairs

        extra: dict[str, Any] = {}
        if self.workers > 0:
            extra = {"persistent_workers": True, "worker_init_fn": seed_worker, "multiprocessing_context": "forkserver"}
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers, collate_fn=collate_pairs,
                          drop_last=drop_last, pin_memory=self.pin_memory, **extra)

    def train(self, world: int, rank: int) -> Any:
        from pixlearn.engine.sampling import EpochSampler

        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=self.seed, num_replicas=world, rank=rank)
        return self._loader(self.train_ds, sampler, drop_last=len(sampler) > self.batch_size)

    def val(self, world: int, rank: int) -> Any:
        return self._loader(self.val_ds, list(range(rank, len(self.val_ds), world)), drop_last=False)


# ---------------------------------------------------------------- callbacks
def _metrics_callback(path: Path, n_train: int) -> Any:
    import csv
    import io

    from pixlearn.engine.callbacks import EpochMetrics, _value

    class RestoreEpochMetrics(EpochMetrics):
        """:class:`EpochMetrics` with the restoration columns."""

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            super().on_train_epoch_end(trainer, pl_module)
            row = self.rows[-1]
            m = trainer.callback_metrics
            for key in ("val_psnr", "val_ssim", "val_mse", "val_input_psnr", "val_input_ssim"):
                row[key] = _value(m, key)
            row["train_patches_per_second"] = row.pop("train_images_per_second", None)
            if trainer.is_global_zero:
                self.write()

        def write(self) -> None:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(RESTORE_COLUMNS), lineterminator="\n", extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RESTORE_COLUMNS})
            atomic_write_text(self.path, buf.getvalue())

    return RestoreEpochMetrics(path, n_train=n_train)


class _SaveBest:
    """Writes ``weights/best.safetensors`` and ``weights/model.json`` (a class, so that it pickles)."""

    def __init__(self, run_dir: Path, *, restore_task: str, mode: str, degradation: dict[str, Any] | None) -> None:
        self.run_dir, self.restore_task, self.mode, self.degradation = Path(run_dir), restore_task, mode, degradation

    def __call__(self, model: Any) -> None:
        from pixlearn.models import save_weights
        from pixlearn.tasks.restore.predict import model_card

        card = model_card(model, restore_task=self.restore_task, mode=self.mode, degradation=self.degradation)
        save_weights(model, self.run_dir / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(card)})
        write_json(self.run_dir / "weights" / "model.json", card)


# ---------------------------------------------------------------- evaluation
def _read_images(sources: Sequence[Any], mode: str, *, degraded: bool) -> list[Any]:
    from pixlearn.tasks.restore.data import load_clean

    return [load_clean(s.degraded if degraded else s.clean, mode) for s in sources]  # type: ignore[arg-type]


def _final_evaluation(
    cfg: RestoreConfig, data: Any, pipeline: Any, run_dir: Path, result: RestoreResult, manifest: dict[str, Any], *, fit_seconds: float,
    progress: bool,
) -> dict[str, Any]:
    from pixlearn.tasks.restore.metrics import CLASSICAL, evaluate_restoration, plot_restore_curves, save_crops
    from pixlearn.tasks.restore.report import write_restore_report
    from pixlearn.tasks.restore.predict import load_restorer

    t0 = time.perf_counter()
    split = "test" if data.test else "val"
    sources = data.test or data.val
    if not sources:
        raise ConfigError("no val or test images to score the model on; keep val_fraction above 0 or add a val/ folder")
    if cfg.train.eval_max_images:
        sources = sources[: cfg.train.eval_max_images]
    restorer = load_restorer(run_dir, device="auto" if cfg.train.accelerator in ("gpu", "cuda") else "cpu",
                             tile=cfg.train.tile, overlap=cfg.train.overlap)
    methods = cfg.train.eval_methods if cfg.train.eval_methods is not None else list(CLASSICAL[cfg.data.task])
    sigma = None  # the noise level the classical denoisers are tuned to (else estimated per image)
    if cfg.data.task == "denoise" and not data.paired and cfg.data.degrade is None and cfg.data.noise == "gaussian":
        sigma = cfg.data.sigma if isinstance(cfg.data.sigma, float) else (25.0 if cfg.data.sigma is None else None)
    sr = max(data.scale, pipeline.scale if pipeline is not None else 1)
    names = [s.clean.name for s in sources]
    ev = evaluate_restoration(
        _read_images(sources, data.mode, degraded=False), restorer=restorer,
        pipeline=None if data.paired else pipeline,
        degraded=_read_images(sources, data.mode, degraded=True) if data.paired else None,
        methods=methods, sigma=sigma, names=names, seed=cfg.train.seed + 1, crop_border=sr if sr > 1 else 0, progress=progress,
    )
    crops = save_crops(run_dir / "plots" / "crops.png", ev.examples, columns=[m for m in methods if m != "bicubic"] + ["model"],
                       rows=ev.rows, title=f"{split} images: degraded | classical | model | clean (PSNR of each crop's whole image)")
    curves = plot_restore_curves(result.history, run_dir / "plots" / "curves.png")
    eval_seconds = time.perf_counter() - t0
    summary = ev.summary
    model_s = summary["model"]
    base_name = "bicubic" if sr > 1 else "input"
    classical = {m: summary[m] for m in methods if m in summary and m != base_name}
    best_classical = max(classical, key=lambda m: classical[m]["psnr"]) if classical else None
    note = ("scored on the test split: never used for training or choosing the epoch" if split == "test" else
            "scored on the val split, whose centre crops chose the best epoch (a mild selection; add a test/ folder or "
            "test_fraction for an untouched score)")
    metrics: dict[str, Any] = {
        "task": "restore",
        "restore_task": cfg.data.task,
        "split": split,
        "n": model_s["n"],
        "psnr": model_s["psnr"],
        "ssim": model_s["ssim"],
        "mse": model_s["mse"],
        "input": {"method": base_name, **{k: summary[base_name][k] for k in ("psnr", "ssim", "mse")}},
        "gain_db": model_s["psnr"] - summary[base_name]["psnr"],
        "best_classical": None if best_classical is None else {"method": best_classical, **{k: classical[best_classical][k] for k in ("psnr", "ssim", "mse")}},
        "methods": summary,
        "per_image": ev.rows,
        "units": "psnr in dB, mse on images scaled to [0, 1]; means over whole images" + (f", border of {sr} px cropped" if sr > 1 else ""),
        "degradation": "paired folders" if data.paired else pipeline.to_string(),
        "mode": data.mode,
        "scale": sr,
        "note": note,
        "fit_seconds": round(fit_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason,
        "val_crops_best_psnr": max((r["val_psnr"] for r in result.history if r.get("val_psnr") is not None), default=None),
        "splits": {
            "train": {"images": len(data.train), "source": data.sources.get("train", ""), "used_for": "training patches"},
            "val": {"images": len(data.val), "source": data.sources.get("val", ""), "used_for": "centre crops scored each epoch to choose the best epoch"},
            "test": {"images": len(data.test), "source": data.sources.get("test", ""), "used_for": "the final scores only" if data.test else "nothing (no test split)"},
        },
    }
    metrics["verdict"] = _verdict(summary, split=split, task=cfg.data.task, methods=methods)
    write_json(run_dir / "metrics.json", metrics)
    write_restore_report(
        run_dir, cfg, data, metrics, result, model_kwargs=restorer.model.pixlearn_spec.kwargs, fit_seconds=fit_seconds,
        plots=[(crops, f"{split} images, centre crops"), (curves, "training curves (val: fixed centre crops)")],
    )
    manifest.setdefault("timings", {})["eval_seconds"] = round(eval_seconds, 3)
    manifest["verdict"] = metrics["verdict"]
    manifest.update(status="finished", epochs_completed=result.epochs_run, best_epoch=result.best_epoch, stop_reason=result.stop_reason)
    write_json(run_dir / "manifest.json", manifest)
    return metrics


def _verdict(summary: dict[str, Any], *, split: str, task: str, methods: Sequence[str]) -> dict[str, Any]:
    """metrics.json's verdict: the model's PSNR against the degraded input and the best classical method."""
    from pixlearn.tasks.restore.evaluate import restoration_verdict

    return restoration_verdict(summary, split=split, task=task, classical=[m for m in methods if m != "bicubic"]).to_dict()


# ---------------------------------------------------------------- public entry point
@dataclass
class _Prepared:
    cfg: RestoreConfig
    plan: Any
    pipeline: Any
    scale: int
    net: Any
    task: Any
    loaders: _Loaders


def _prepare(cfg: RestoreConfig, plan: Any) -> _Prepared:
    """Network, task and patch datasets for ``cfg`` (resolved) on the planned images (seeded: the same every time)."""
    import torch

    from pixlearn.models import create_restorer
    from pixlearn.tasks.restore.module import RestoreTask
    from pixlearn.tasks.restore.data import FixedPatchDataset, PatchDataset

    dc, t = cfg.data, cfg.train
    pipeline = None if plan.paired else _pipeline(cfg)
    sr = plan.scale if plan.paired else pipeline.scale
    _check_scale(cfg, sr)
    if dc.patch < sr * 4:
        raise ConfigError(f"patch {dc.patch} is too small for scale {sr}; use at least {sr * 4}")
    torch.manual_seed(t.seed)
    net = create_restorer(cfg.model.name, in_chans=1 if plan.mode == "L" else 3, scale=sr, **cfg.model.options())
    if cfg.model.weights:
        from pixlearn.models import load_weights

        load_weights(net, cfg.model.weights, strict=True)
    rtask = RestoreTask(net, loss=t.loss)  # type: ignore[arg-type]
    train_ds = PatchDataset(plan.train, mode=plan.mode, patch=dc.patch, patches_per_image=dc.patches_per_image, pipeline=pipeline,
                            scale=sr, augment=dc.augment, cache_mb=dc.cache_mb)
    val_ds = FixedPatchDataset(plan.val, mode=plan.mode, crop=dc.val_crop, pipeline=pipeline, scale=sr, seed=t.seed) if plan.val else None
    loaders = _Loaders(train_ds, val_ds, dc.batch_size, dc.workers, t.seed, pin_memory=t.accelerator in ("gpu", "cuda"))
    return _Prepared(cfg, plan, pipeline, sr, net, rtask, loaders)


def _engine_prep(prep: _Prepared, run_dir: Path) -> Any:
    """The engine's view of a preparation (:class:`pixlearn.engine.driver.Prepared`)."""
    from pixlearn.engine.driver import Prepared

    cfg, has_val = prep.cfg, prep.loaders.val_ds is not None
    degradation = None if prep.pipeline is None else prep.pipeline.to_dict()
    return Prepared(task=prep.task, loaders=prep.loaders, n_train=len(prep.loaders.train_ds), has_val=has_val,
                    val_steps=len(prep.loaders.val_ds) / cfg.data.batch_size if has_val else 0.0,
                    save_best=_SaveBest(run_dir, restore_task=cfg.data.task, mode=prep.plan.mode, degradation=degradation),
                    metrics_callback=_metrics_callback(run_dir / "metrics.csv", len(prep.loaders.train_ds)), model=prep.net)


def _find_lr(prep: _Prepared, run_dir: Path, manifest: dict[str, Any], *, progress: bool | None) -> _Prepared:
    """The engine's LR finder; returns a fresh, identically seeded preparation that trains with its suggestion."""
    from pixlearn.engine.driver import run_lr_finder

    rebuilt: list[_Prepared] = []

    def rebuild(cfg: RestoreConfig) -> Any:
        rebuilt.append(_prepare(cfg, prep.plan))
        return rebuilt[-1]

    run_lr_finder(prep.cfg, _engine_prep(prep, run_dir), run_dir, manifest, rebuild=rebuild, progress=progress)
    return rebuilt[-1]


def _fit(
    prep: _Prepared, run_dir: Path, manifest: dict[str, Any], *, progress: bool | None, callbacks: Sequence[Any],
    ckpt_path: Path | None = None, extend: bool = False,
) -> RestoreResult:
    """The engine's fit (:func:`pixlearn.engine.driver.fit_prepared`), then restoration's final scoring."""
    from pixlearn.engine.driver import fit_prepared
    from pixlearn.engine.progress import show_progress

    cfg = prep.cfg
    fitted, outcome = fit_prepared(cfg, _engine_prep(prep, run_dir), run_dir, manifest=manifest, progress=progress, callbacks=callbacks,
                                   ckpt_path=ckpt_path, extend=extend)
    result = RestoreResult(run_dir=run_dir, config=cfg, metrics=None, history=fitted.history, best_epoch=fitted.best_epoch,
                           epochs_run=fitted.epochs_run, stopped_early=fitted.stopped_early, stop_reason=fitted.stop_reason)
    if not outcome.trainer.is_global_zero:
        return result
    show = show_progress(progress) and sys.stderr.isatty()  # scoring bars: terminals only
    result.metrics = _final_evaluation(cfg, prep.plan, prep.pipeline, run_dir, result, manifest, fit_seconds=outcome.fit_seconds, progress=show)
    return result


def _manifest(prep: _Prepared, run_dir: Path) -> dict[str, Any]:
    import torch

    cfg, plan, t = prep.cfg, prep.plan, prep.cfg.train
    manifest = base_manifest(seed=t.seed)
    manifest.update(
        status="running", task="restore", restore_task=cfg.data.task, run_dir=str(run_dir.resolve()),
        device={"accelerator": t.accelerator, "devices": t.devices, "precision": t.precision, "cpu_threads": torch.get_num_threads(),
                **({"gpu": torch.cuda.get_device_name(0)} if t.accelerator in ("gpu", "cuda") and torch.cuda.is_available() else {})},
        data={"root": str(Path(plan.root).resolve()), "format": plan.format, "mode": plan.mode, "fingerprint": plan.fingerprint,
              "splits": {k: [str(s.clean) for s in getattr(plan, k)] for k in ("train", "val", "test")}, "sources": plan.sources,
              "degradation": None if prep.pipeline is None else prep.pipeline.to_dict(), "scale": prep.scale},
        model=prep.net.pixlearn_spec.to_dict(), patches_per_epoch=len(prep.loaders.train_ds),
    )
    return manifest


def _plan(cfg: RestoreConfig) -> Any:
    from pixlearn.engine.kfold import fold_of
    from pixlearn.tasks.restore.data import plan_restore_data

    dc = cfg.data
    plan = plan_restore_data(dc.path, mode=dc.mode, val_fraction=dc.val_fraction, test_fraction=dc.test_fraction, seed=cfg.train.seed)
    if cfg.train.fold:
        plan = fold_of(plan, folds=max(cfg.train.folds, 1), fold=cfg.train.fold, seed=cfg.train.seed)
    return plan


#: The metrics a k-fold restoration run summarises (mean, std, per fold).
_FOLD_KEYS = ("psnr", "ssim", "mse", "gain_db")


def _train_folds(cfg: RestoreConfig, run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any]) -> RestoreResult:
    from pixlearn.engine.kfold import fold_splits, run_folds
    from pixlearn.tasks.restore.data import plan_restore_data
    from pixlearn.engine.runs import write_folds_report

    k, dc = cfg.train.folds, cfg.data
    base = plan_restore_data(dc.path, mode=dc.mode, val_fraction=dc.val_fraction, test_fraction=dc.test_fraction, seed=cfg.train.seed)
    fold_splits(base, folds=k, seed=cfg.train.seed)  # fail early when the data is too small for k folds
    manifest = base_manifest(seed=cfg.train.seed)
    manifest.update(data={"root": str(Path(base.root).resolve()), "format": base.format, "mode": base.mode, "fingerprint": base.fingerprint})

    def one(i: int, fold_dir: Path) -> RestoreResult:
        fold_cfg = RestoreConfig.from_overrides(cfg, fold=i)
        prep = _prepare(fold_cfg, _plan(fold_cfg))
        fold_dir.mkdir(parents=True, exist_ok=True)
        m = _manifest(prep, fold_dir)
        atomic_write_text(fold_dir / "config.yaml", fold_cfg.to_yaml())
        write_json(fold_dir / "manifest.json", m)
        return _fit(prep, fold_dir, m, progress=progress, callbacks=callbacks)

    metrics, results = run_folds(k, run_dir, one, task="restore", keys=_FOLD_KEYS, config_yaml=cfg.to_yaml(), manifest=manifest,
                                 write_text=atomic_write_text, write_json=write_json)
    write_folds_report(run_dir, metrics, title=f"pixlearn train restore: {k}-fold cross-validation of {cfg.model.name} ({dc.task})",
                       details={"model": cfg.model.name, "restoration task": dc.task, "folds": k, "seed": cfg.train.seed})
    return RestoreResult(run_dir=run_dir, config=cfg, metrics=metrics,
                         history=[{"fold": i + 1, **row} for i, r in enumerate(results) for row in r.history])


def _resume(
    run: str | os.PathLike[str], *, extend: int | None, overrides: Mapping[str, Any], progress: bool | None, callbacks: Sequence[Any],
) -> RestoreResult:
    from pixlearn.engine.resume import check_same_data, note_resume, plan_resume

    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("data") is not None:
        given["data"] = str(Path(given["data"]).resolve())
    rp = plan_resume(run, load_config=RestoreConfig.load, with_overrides=RestoreConfig.from_overrides, overrides=given, extend=extend)
    cfg = _resolve(rp.config)
    if not cfg.data.path:
        raise ConfigError(f"{rp.run_dir / 'config.yaml'}: data.path is missing; pass --data")
    plan = _plan(cfg)
    manifest = rp.manifest or base_manifest(seed=cfg.train.seed)
    check_same_data(manifest, plan.fingerprint, data=cfg.data.path, run_dir=rp.run_dir)
    prep = _prepare(cfg, plan)
    note_resume(manifest, rp, epochs=cfg.train.epochs, at=base_manifest(seed=cfg.train.seed)["created"])
    atomic_write_text(rp.run_dir / "config.yaml", cfg.to_yaml())
    write_json(rp.run_dir / "manifest.json", manifest)
    return _fit(prep, rp.run_dir, manifest, progress=progress, callbacks=callbacks, ckpt_path=rp.checkpoint, extend=extend is not None)


# ---------------------------------------------------------------- budget plan (tasks.restore.budget)
def _budget_recipe(cfg: RestoreConfig, flat: Mapping[str, Any], set: Sequence[str], *, config_given: bool = False) -> tuple[RestoreConfig, bool]:
    """With ``--minutes`` and no ``--epochs``: the budget recipe for every option the user left unset (else ``cfg`` as is)."""
    from pixlearn.engine.budget import BUDGET_EPOCHS
    from pixlearn.tasks.restore.budget import budget_overrides, wants_plan

    if not wants_plan(cfg, budget_epochs=BUDGET_EPOCHS):
        return cfg, False
    return RestoreConfig.from_overrides(cfg, **budget_overrides(cfg, options=flat, set=set, config_given=config_given)), True


def _plan_budget(prep: _Prepared, flat: Mapping[str, Any], set: Sequence[str], *, progress: bool | None) -> tuple[_Prepared, dict[str, Any]]:
    """Time the candidate networks, choose network and patches per epoch for the budget, rebuild the run with them."""
    from pixlearn.tasks.restore.budget import plan_run

    return plan_run(prep, prepare=_prepare, options=flat, set=set, progress=progress)


# ---------------------------------------------------------------- public entry point
def train_restorer(
    data: str | os.PathLike[str] | None = None,
    *,
    task: str | None = None,
    model: str | None = None,
    noise: str | None = None,
    sigma: float | tuple[float, float] | str | None = None,
    scale: int | None = None,
    degrade: str | Sequence[Any] | None = None,
    patch: int | None = None,
    epochs: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    out: str | os.PathLike[str] | None = None,
    config: RestoreConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    extend: int | None = None,
    set: Sequence[str] = (),
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> RestoreResult:
    """Train a restorer on a folder of clean images (or degraded/clean pairs) and write its run folder.

    Parameters
    ----------
    data : path
        Clean images (optionally under ``train/ val/ test/``), or ``degraded/`` + ``clean/`` pairs.
    task : {"denoise", "super-resolution", "enhance"}, default "denoise"
        Picks the default degradation (gaussian noise; bicubic downscaling by ``scale``; low light)
        and the classical baselines.
    model : {"dncnn", "unet", "espcn", "edsr"}, default "dncnn"
        Super-resolution needs ``espcn``/``edsr``, or a same-size model fed bicubic-upscaled images.
    noise : {"gaussian", "poisson", "salt_pepper"}, default "gaussian"
    sigma : float or (low, high), default 25
        Gaussian noise in grey levels, or a range drawn per patch (a blind denoiser).
    scale : int, default 2
        Super-resolution factor.
    degrade : str or list, optional
        A custom degradation pipeline (:meth:`~pixlearn.tasks.restore.degrade.Pipeline.parse`).
    patch : int, default 48
        Side of the clean training patches (the CLI's ``--img-size``; ``img_size=`` works too).
    epochs, batch, lr
        Training length, patches per batch, peak learning rate (default 1e-3, AdamW).
    out : path, optional
        Run folder (default ``runs/restore/<model>-<task>``, numbered when taken).
    config : RestoreConfig, mapping or YAML path, optional
        Base configuration; keyword arguments override it.
    resume : path, optional
        Continue a run folder from its ``checkpoints/last.ckpt`` (only hardware options and
        ``minutes`` may change); see :mod:`pixlearn.engine.resume`.
    extend : int, optional
        With ``resume``: train this many epochs more than the run has done.
    set : sequence of str
        ``section.key=value`` assignments for any config field (values parsed as YAML).
    progress : bool, optional
        Progress on stderr (default: when it is a terminal).
    **overrides
        Any other flat option: ``depth``, ``width``, ``patches_per_image``, ``val_fraction``,
        ``loss``, ``minutes``, ``find_lr``, ``clip``, ``mode``, ``seed``, ``schedule``, ... (see
        :data:`~pixlearn.tasks.restore.config.RESTORE_FLAT_KEYS`).

    Returns
    -------
    RestoreResult

    Examples
    --------
    >>> result = train_restorer("photos/", sigma=25, epochs=20, depth=17)  # doctest: +SKIP
    >>> result.metrics["psnr"], result.metrics["best_classical"]  # doctest: +SKIP
    """
    from pixlearn.engine.budget import epochs_for_budget
    from pixlearn.engine.resume import check_new_run_options

    flat = dict(overrides)
    flat.update(data=data, task=task, model=model, noise=noise, sigma=sigma, scale=scale, degrade=degrade, patch=patch,
                epochs=epochs, batch=batch, lr=lr)
    flat = {k: v for k, v in flat.items() if v is not None}
    check_new_run_options(resume=resume, extend=extend, options=flat, config=config, set=set)
    if resume is not None:
        return _resume(resume, extend=extend, overrides=flat, progress=progress, callbacks=callbacks)
    cfg = RestoreConfig.from_overrides(RestoreConfig.coerce(config), **flat)
    if set:
        cfg = cfg.with_set(set)
    cfg = RestoreConfig.from_overrides(cfg, epochs=epochs_for_budget(cfg.train.epochs, minutes=cfg.train.minutes, options=flat,
                                                                    config=config, set=set))
    cfg, planned = _budget_recipe(cfg, flat, set, config_given=config is not None)
    cfg = _resolve(cfg)
    if not cfg.data.path:
        raise ConfigError("no data: give a folder of clean images (or degraded/ + clean/ pairs) with --data")
    cfg = RestoreConfig.from_overrides(cfg, data=str(Path(cfg.data.path).resolve()))
    run_dir = Path(out) if out is not None else default_run_dir("restore", f"{cfg.model.name}-{cfg.data.task}")
    if run_dir.exists() and (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: already holds a run; choose another --out, or continue it with --resume {run_dir}")
    if cfg.train.folds > 1 and not cfg.train.fold:
        if cfg.train.find_lr:
            raise ConfigError("--find-lr and --folds do not mix; find the learning rate on a single run first")
        return _train_folds(cfg, run_dir, progress=progress, callbacks=callbacks)
    prep = _prepare(cfg, _plan(cfg))
    budget_plan = None
    if planned:
        prep, budget_plan = _plan_budget(prep, flat, set, progress=progress)
        cfg = prep.cfg
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(prep, run_dir)
    if budget_plan is not None:
        manifest["plan"] = budget_plan
    if cfg.train.find_lr:
        prep = _find_lr(prep, run_dir, manifest, progress=progress)
        cfg = prep.cfg
    atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    write_json(run_dir / "manifest.json", manifest)
    return _fit(prep, run_dir, manifest, progress=progress, callbacks=callbacks)
