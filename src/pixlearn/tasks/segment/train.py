"""Train a semantic segmentation network on a mask dataset and write its run folder.

:func:`train_segmenter` is the Python face of ``pixlearn train segment``. It runs on the same engine
as classification (:class:`~pixlearn.engine.module.EngineModule` with a
:class:`~pixlearn.tasks.segment.SegmentTask`), with the same callbacks, checkpoints and run folder
``runs/segment/<name>/``::

    config.yaml               the resolved configuration (rerun it with --config)
    manifest.json             versions, seed, data fingerprint and the files of each held-out split, device, timings
    metrics.csv               one row per epoch: train/val loss, val mean IoU, Dice, pixel accuracy, lr, times
    metrics.json              final scores of the kept weights on the test (else val) split: mean IoU,
                              Dice, pixel accuracy, per-class IoU/Dice, confusion matrix; "split" names it
    weights/best.safetensors  the kept weights (best epoch by the monitored val metric, or the last)
    weights/model.json        the network spec, classes, binary flag and tiling that rebuild the segmenter
    checkpoints/last.ckpt     the full training state at the last epoch end
    plots/overlays.png        image / true mask / predicted mask for a few held-out images
    plots/curves.png          losses and val scores per epoch
    report.html               all of the above in one page, every number named by its split

Training sees random crops of ``img_size`` (flipped); validation and the final scores use whole
images, segmented tile by tile with blended overlaps when they are larger than the crops.
"""

from __future__ import annotations

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
from pixlearn.engine.trainer import TrainResult, device_info
from pixlearn.engine.runs import atomic_write_text, base_manifest, default_run_dir, env_rank, write_json
from pixlearn.tasks.segment.config import SegmentConfig

__all__ = ["train_segmenter", "SEGMENT_COLUMNS"]

log = logging.getLogger("pixlearn.train")

#: Columns of a segmentation run's ``metrics.csv``.
SEGMENT_COLUMNS = (
    "epoch", "train_loss", "val_loss", "val_miou", "val_dice", "val_pixel_accuracy", "lr", "backbone_lr",
    "backbone_frozen", "epoch_seconds", "train_seconds", "train_images_per_second",
)


def _resolve(cfg: SegmentConfig) -> SegmentConfig:
    from pixlearn.engine.trainer import resolve_hardware as _resolve_hardware

    from pixlearn.tasks.segment.config import DEFAULT_ENCODER
    from pixlearn.tasks.segment.recipe import resolve_fine_tune

    d = cfg.to_dict()
    o, m = d["optim"], d["model"]
    for key, default in (("img_size", 256), ("batch_size", 8), ("crops_per_image", 1)):  # unless a budget plan chose them
        d["data"][key] = d["data"][key] or default
    m["encoder"] = m["encoder"] or DEFAULT_ENCODER
    m["pretrained"] = bool(m["pretrained"])
    resolve_fine_tune(d)
    batch = d["data"]["batch_size"]
    if o["lr"] is None:
        o["lr"] = 0.01 * batch / 8 if o["optimizer"] == "sgd" else 1e-3 * math.sqrt(batch / 8)
    if o["weight_decay"] is None:
        o["weight_decay"] = 1e-4
    d["train"].update(_resolve_hardware(cfg))
    return SegmentConfig.from_dict(d)


class _Loaders:
    """Training crops (shuffled, seeded) and whole validation images."""

    def __init__(self, train_ds: Any, val_ds: Any, *, batch_size: int, val_batch_size: int, workers: int, seed: int, pin_memory: bool) -> None:
        self.train_ds, self.val_ds = train_ds, val_ds
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.workers, self.seed, self.pin_memory = workers, seed, pin_memory
        self.train_loader: Any = None

    def _loader(self, dataset: Any, sampler: Any, *, batch_size: int, drop_last: bool) -> Any:
        import functools

        from pixlearn.data.loader import SkippingLoader, collate_skip_none, seed_worker

        extra: dict[str, Any] = {}
        if self.workers > 0:
            extra = {"persistent_workers": True, "worker_init_fn": seed_worker, "multiprocessing_context": "forkserver"}
        return SkippingLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.workers,
            collate_fn=functools.partial(collate_skip_none, mean=dataset.mean, std=dataset.std),
            drop_last=drop_last, pin_memory=self.pin_memory, **extra,
        )

    def train(self, world: int, rank: int) -> Any:
        from pixlearn.engine.sampling import EpochSampler

        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=self.seed, num_replicas=world, rank=rank)
        self.train_loader = self._loader(self.train_ds, sampler, batch_size=self.batch_size, drop_last=len(sampler) > self.batch_size)
        return self.train_loader

    def val(self, world: int, rank: int) -> Any:
        from pixlearn.engine.sampling import ShardSampler

        return self._loader(self.val_ds, ShardSampler(len(self.val_ds), world, rank), batch_size=self.val_batch_size, drop_last=False)


class _SaveBest:
    """Writes ``weights/best.safetensors`` and ``weights/model.json`` (a class, so that it pickles)."""

    def __init__(self, run_dir: Path, card: dict[str, Any]) -> None:
        self.run_dir, self.card = Path(run_dir), card

    def __call__(self, model: Any) -> None:
        from pixlearn.models import save_weights

        save_weights(model, self.run_dir / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(self.card)})
        write_json(self.run_dir / "weights" / "model.json", self.card)


@dataclass
class _Prepared:
    cfg: SegmentConfig
    index: Any
    splits: Any
    model: Any
    task: Any
    loaders: _Loaders
    classes: list[str]
    card: dict[str, Any]


def _classes(index: Any, wanted: Sequence[str] | int | None) -> list[str]:
    names = [str(c) for c in index.classes]
    if wanted is None:
        return names
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        if wanted < len(names):
            raise ConfigError(f"classes={wanted} but the masks hold class ids up to {len(names) - 1} ({names})")
        return names + [str(k) for k in range(len(names), wanted)]
    wanted = [str(c) for c in wanted]
    if len(wanted) < len(names):
        raise ConfigError(f"{len(wanted)} class names given but the masks hold {len(names)} classes ({names})")
    return wanted


def _prepare(cfg: SegmentConfig, index: Any, splits: Any, classes: list[str]) -> _Prepared:
    import torch

    from pixlearn.models import create_segmentation_model, segmentation_divisor
    from pixlearn.tasks.segment.module import SegmentTask
    from pixlearn.tasks.segment.data import make_segment_dataset
    from pixlearn.tasks.segment.predict import segment_model_card

    torch.manual_seed(cfg.train.seed)
    m, d = cfg.model, cfg.data
    binary = (len(classes) == 2) if m.binary is None else bool(m.binary)
    if binary and len(classes) != 2:
        raise ConfigError(f"binary=True needs masks with 2 classes, these have {len(classes)} ({classes})")
    model = create_segmentation_model(
        m.arch, encoder=m.encoder, num_classes=1 if binary else len(classes), img_size=d.img_size, encoder_depth=m.encoder_depth,
        decoder_channels=m.decoder_channels, encoder_weights=m.encoder_weights, weights=m.weights, pretrained=m.pretrained,
        full_res=bool(m.full_res),
    )
    multiple = segmentation_divisor(model)
    pre = model.pixlearn_spec.preprocess
    tile = pre.img_size
    task = SegmentTask(model, num_classes=len(classes), loss=cfg.train.loss, ignore_index=d.ignore_index, class_weights=d.class_weights,
                       tile=tile, overlap=cfg.train.overlap, multiple=multiple, freeze_encoder_bn=bool(m.freeze_bn))
    train_ds = make_segment_dataset(index, list(splits.train) * d.crops_per_image, mean=pre.mean, std=pre.std, crop=tile, augment=d.augment)
    val_ds = make_segment_dataset(index, splits.val, mean=pre.mean, std=pre.std) if splits.val else None
    loaders = _Loaders(train_ds, val_ds, batch_size=d.batch_size, val_batch_size=d.val_batch_size, workers=d.workers, seed=cfg.train.seed,
                       pin_memory=cfg.train.accelerator in ("gpu", "cuda"))
    from pixlearn.data.masks import MaskCoding

    card = segment_model_card(model, classes, binary=binary, tile=tile, overlap=cfg.train.overlap, multiple=multiple, ignore_index=d.ignore_index, tta="none" if cfg.train.tta == "auto" else cfg.train.tta,
                              mask_coding=MaskCoding.from_meta(getattr(index, "meta", None)).kind)  # predict writes masks back in it
    return _Prepared(cfg, index, splits, model, task, loaders, classes, card)


def _split_rows(prep: _Prepared) -> list[dict[str, Any]]:
    s, keep = prep.splits, prep.cfg.train.keep
    chose = "early stopping and choosing the best epoch (its scores are optimistic)" if keep == "best" else "early stopping only (the last epoch is kept)"
    return [
        {"split": "train", "images": len(s.train), "source": s.sources.get("train", ""), "used_for": f"fitting the weights (random {prep.cfg.data.img_size}-px crops)"},
        {"split": "val", "images": len(s.val), "source": s.sources.get("val", ""), "used_for": chose if s.val else "nothing (no validation)"},
        {"split": s.test_name, "images": len(s.test), "source": s.sources.get(s.test_name, ""),
         "used_for": "the final scores only: never for training or model selection" if s.test else "nothing (no test split)"},
    ]


def _final_evaluation(prep: _Prepared, run_dir: Path, result: TrainResult, manifest: dict[str, Any], *, fit_seconds: float, progress: bool) -> dict[str, Any]:
    from pixlearn.engine.budget import describe_stop
    from pixlearn.tasks.segment.evaluate import evaluate_split
    from pixlearn.tasks.segment.plots import plot_overlays, plot_segment_curves
    from pixlearn.tasks.segment.report import write_segment_report
    from pixlearn.tasks.segment.predict import load_segmenter

    cfg, s = prep.cfg, prep.splits
    t0 = time.perf_counter()
    seg = load_segmenter(run_dir, device="auto" if cfg.train.accelerator in ("gpu", "cuda") else "cpu")  # rebuilt from the folder alone
    tta, threshold = _inference_choice(prep, run_dir, seg, progress=progress)
    evaluations = []
    if s.test:
        evaluations.append(evaluate_split(seg, prep.index, s.test, split=s.test_name, source=s.sources.get(s.test_name, ""), progress=progress))
    if s.val:
        val = evaluate_split(seg, prep.index, s.val, split="val", source=s.sources.get("val", ""), progress=progress)
        val.metrics["note"] = ("chose the best epoch: optimistic" if cfg.train.keep == "best" else
                               "the last epoch's weights (not chosen on val); val decided only early stopping")
        chose = [w for w, c in (("the test-time augmentation", tta), ("the decision threshold", threshold)) if c.get("chosen_on") == "val"]
        if chose:
            val.metrics["note"] += "; it also chose " + " and ".join(chose)
        evaluations.append(val)
    if not evaluations:
        raise ConfigError("no val or test images to score the network on; keep val_fraction or test_fraction above 0")
    head = evaluations[0]
    notes = []
    if not s.test:
        notes.append("This run has no test split: the headline scores are on the val split"
                     + (", which chose the best epoch, so they are optimistic." if cfg.train.keep == "best" else
                        " (the last epoch's weights were kept, so val did not select them; it did decide early stopping)."))
    metrics: dict[str, Any] = {"task": "segment", **{k: v for k, v in head.metrics.items() if k != "note"}}
    metrics.update(
        fit_seconds=round(fit_seconds, 3), best_epoch=result.best_epoch, epochs_run=result.epochs_run, stopped_early=result.stopped_early,
        stop_reason=result.stop_reason, monitor=cfg.train.monitor, keep=cfg.train.keep, binary=prep.card["binary"],
        splits={r["split"]: {"images": r["images"], "source": r["source"], "used_for": r["used_for"]} for r in _split_rows(prep)},
    )
    for ev in evaluations[1:]:
        metrics[ev.split] = dict(ev.metrics)
    metrics["tta"] = tta
    if prep.card["binary"]:
        metrics["threshold"] = threshold
    metrics["classic_baselines"], metrics["verdict"] = _baselines(prep, head)
    plots = []
    ex = head.examples or (evaluations[-1].examples if evaluations else [])
    if ex:
        plots.append((plot_overlays(ex, run_dir / "plots" / "overlays.png", classes=prep.classes, split=head.split),
                      f"{head.split} images: true (middle) and predicted (right) masks over the image"))
    if result.history:
        plots.append((plot_segment_curves(result.history, run_dir / "plots" / "curves.png", title=f"{cfg.model.arch} on {cfg.model.encoder}"),
                      "losses (train crops / whole val images) and val scores per epoch"))
    m = cfg.model
    details = {
        "network": f"{m.arch} on {m.encoder} ({'binary, 1 sigmoid output' if prep.card['binary'] else f'{len(prep.classes)} softmax outputs'})",
        "initialisation": (f"encoder weights {m.encoder_weights}" if m.encoder_weights else f"weights {m.weights}" if m.weights
                           else "pretrained encoder (local weights folder)" if m.pretrained else "random (from scratch)"),
        "classes": ", ".join(prep.classes),
        "loss": cfg.train.loss,
        "training crops": f"{cfg.data.img_size} px, augment {cfg.data.augment}, {cfg.data.crops_per_image} per image per epoch",
        "inference": f"whole images; tiles of {prep.card['inference']['tile']} px with {cfg.train.overlap:.0%} overlap beyond that"
                     + f"; {tta['text']}" + (f"; {threshold['text']}" if prep.card["binary"] else ""),
        "epochs run": f"{result.epochs_run} of {cfg.train.epochs}",
        "stopped by": describe_stop(result.stop_reason, epochs_run=result.epochs_run, epochs=cfg.train.epochs, minutes=cfg.train.minutes),
        "kept weights": f"epoch {result.best_epoch} (" + (f"best {cfg.train.monitor} on val)" if cfg.train.keep == "best" and s.val else "last epoch)"),
        "optimizer": f"{cfg.optim.optimizer}, lr {cfg.optim.lr:.3g}, weight decay {cfg.optim.weight_decay:g}, schedule {cfg.schedule.name}",
        "device": f"{cfg.train.accelerator} x {cfg.train.devices}, precision {cfg.train.precision}",
        "fit seconds": round(fit_seconds, 1),
        "data": str(Path(prep.index.root).resolve()),
        "run folder": str(run_dir.resolve()),
    }
    write_segment_report(run_dir / "report.html", title=f"pixlearn train segment: {m.arch} ({m.encoder}) on {Path(prep.index.root).name}",
                         scores=[ev.metrics for ev in evaluations], splits=_split_rows(prep), details=details, plots=plots, notes=notes,
                         baselines=metrics["classic_baselines"], verdict=metrics["verdict"])
    write_json(run_dir / "metrics.json", metrics)
    manifest["verdict"] = metrics["verdict"]
    manifest.setdefault("timings", {})["eval_seconds"] = round(time.perf_counter() - t0, 3)
    manifest.update(status="finished", epochs_completed=result.epochs_run, best_epoch=result.best_epoch, stopped_early=result.stopped_early,
                    stop_reason=result.stop_reason)
    errors = {ev.split: ev.errors for ev in evaluations if ev.errors}
    if errors:
        manifest["skipped_in_evaluation"] = errors
    write_json(run_dir / "manifest.json", manifest)
    return metrics


def _inference_choice(prep: _Prepared, run_dir: Path, seg: Any, *, progress: bool | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The test-time augmentation and (binary) decision threshold the run keeps: ``train.tta`` / ``train.threshold`` when
    given, else chosen together on the val images (:func:`~pixlearn.tasks.segment.evaluate.choose_tta`: none or
    transpose; :func:`~pixlearn.tasks.segment.evaluate.choose_threshold`), else none and 0.5. Both are set on ``seg``
    and recorded in the weights' model card (``inference.tta``, ``inference.threshold``) so that predict and export use
    them. Returns the ``(tta, threshold)`` entries of ``metrics.json`` (the second empty for a multi-class run)."""
    from pixlearn.tasks.segment.evaluate import choose_threshold, choose_tta

    cfg, binary = prep.cfg, bool(prep.card["binary"])
    fixed = cfg.train.threshold
    cut: Any = None  # a ThresholdChoice made on val
    if cfg.train.tta != "auto":
        seg.tta = cfg.train.tta
        tta = {"value": cfg.train.tta, "chosen_on": "train.tta", "text": f"test-time augmentation {cfg.train.tta} (train.tta)"}
    else:
        choice = choose_tta(seg, prep.index, prep.splits.val, monitor=cfg.train.monitor, threshold=fixed, progress=progress)
        if choice is None:
            seg.tta = "none"
            tta = {"value": "none", "chosen_on": "default", "text": "no test-time augmentation (no val images to choose it)"}
        else:
            tta = {**choice.to_dict(), "text": choice.sentence()}
            cut = choice.thresholds.get(choice.value)
    threshold: dict[str, Any] = {}
    if binary:
        if fixed is not None:
            threshold = {"value": float(fixed), "chosen_on": "train.threshold", "text": f"decision threshold {fixed:g} (train.threshold)"}
        else:
            if cut is None:
                cut = choose_threshold(seg, prep.index, prep.splits.val, monitor=cfg.train.monitor, progress=progress)
            threshold = ({"value": 0.5, "chosen_on": "default", "text": "decision threshold 0.5 (no val images to choose another)"}
                         if cut is None else {**cut.to_dict(), "text": cut.sentence()})
        seg.threshold = threshold["value"]
    inf = prep.card["inference"]
    chosen = {"tta": seg.tta, **({"threshold": seg.threshold} if binary else {})}
    if any(inf.get(k) != v for k, v in chosen.items()):
        inf.update(chosen)
        _SaveBest(run_dir, prep.card)(seg.model)  # the same weights, with the choices in their card
    return tta, threshold


def _baselines(prep: _Prepared, head: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The classical segmenters fitted on train images and scored on the headline split, and the network's verdict."""
    from pixlearn.tasks.segment.evaluate import classic_baselines, segmentation_verdict

    held = prep.splits.test if prep.splits.test else prep.splits.val
    rows = classic_baselines(prep.index, prep.splits.train, held, split=head.split, classes=prep.classes)
    verdict = segmentation_verdict(head.metrics, rows)
    return rows, None if verdict is None else verdict.to_dict()


def _engine_prep(prep: _Prepared, run_dir: Path) -> Any:
    """The engine's view of a preparation (:class:`pixlearn.engine.driver.Prepared`)."""
    from pixlearn.engine.callbacks import EpochMetrics
    from pixlearn.engine.driver import Prepared

    cfg, has_val = prep.cfg, bool(prep.splits.val)
    return Prepared(task=prep.task, loaders=prep.loaders, n_train=len(prep.loaders.train_ds), has_val=has_val,
                    val_steps=len(prep.splits.val) / cfg.data.batch_size if has_val else 0.0, save_best=_SaveBest(run_dir, prep.card),
                    metrics_callback=EpochMetrics(run_dir / "metrics.csv", n_train=len(prep.loaders.train_ds),
                                                  freeze_epochs=cfg.model.freeze_epochs, columns=SEGMENT_COLUMNS),
                    keep_best=cfg.train.keep == "best", trainer_overrides={"check_val_every_n_epoch": cfg.train.val_every}, model=prep.model)


def _fit(
    prep: _Prepared, run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any], manifest: dict[str, Any], rank_zero: bool,
    ckpt_path: Path | None = None, extend: bool = False,
) -> TrainResult:
    """The engine's fit (:func:`pixlearn.engine.driver.fit_prepared`), then segmentation's final scoring."""
    from pixlearn.engine.driver import fit_prepared
    from pixlearn.engine.progress import show_progress

    result, outcome = fit_prepared(prep.cfg, _engine_prep(prep, run_dir), run_dir, manifest=manifest, progress=progress,
                                   callbacks=callbacks, rank_zero=rank_zero, ckpt_path=ckpt_path, extend=extend)
    if not outcome.trainer.is_global_zero or not rank_zero:
        return result
    result.metrics = _final_evaluation(prep, run_dir, result, manifest, fit_seconds=outcome.fit_seconds,
                                       progress=show_progress(progress) and sys.stderr.isatty())  # scoring bars: terminals only
    return result


def train_segmenter(
    data: str | os.PathLike[str] | Any = None,
    *,
    config: SegmentConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | int | None = None,
    resume: str | os.PathLike[str] | None = None,
    extend: int | None = None,
    set: Sequence[str] = (),
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    **options: Any,
) -> TrainResult:
    """Train a segmentation network (U-Net, U-Net++, FPN, DeepLabV3+) on a mask dataset and write its run folder.

    Parameters
    ----------
    data : path or DatasetIndex, optional
        A mask dataset: ``images/`` + ``masks/`` (pixel value = class id, 255 = ignore; 0/255
        binary masks are read as background/foreground), optionally under ``train/ val/ test/``
        (the ISBI layout ``train/image/`` + ``train/label/`` too). A
        :class:`~pixlearn.data.index.DatasetIndex` whose records carry ``split`` names fixes the
        split. Required unless the config names it.
    config : SegmentConfig, mapping or YAML path, optional
        The starting configuration; ``options`` override it.
    out : path, optional
        The run folder; default ``runs/segment/<arch>`` (``-2``, ``-3``... when taken).
    classes : sequence of str or int, optional
        Class names (in class-id order) instead of the dataset's, or the number of classes when
        some class id appears in no mask.
    resume : path, optional
        Continue a run folder from its ``checkpoints/last.ckpt`` (only hardware options and
        ``minutes`` may change); see :mod:`pixlearn.engine.resume`.
    extend : int, optional
        With ``resume``: train this many epochs more than the run has done.
    set : sequence of str
        ``section.key=value`` assignments for any config field (values parsed as YAML).
    progress : bool, optional
        Progress bars on stderr (default: when stderr is a terminal).
    callbacks : sequence of lightning.pytorch.Callback
    **options
        Flat config fields: ``model`` (unet, unetplusplus, fpn, deeplabv3plus),
        ``backbone`` (the encoder: ``tu-<timm name>`` or an smp encoder), ``loss`` (``ce``, ``dice``,
        ``focal``, sums such as ``ce+dice``), ``epochs``, ``img_size`` (training crop), ``batch``,
        ``lr``, ``augment``, ``val_fraction``, ``test_fraction``, ``keep`` (best / last),
        ``patience``, ``minutes``, ``find_lr``, ``encoder_weights``, ``weights``, ``binary``, ``seed``,
        ``workers``, ``crops_per_image``... (see :data:`~pixlearn.tasks.segment.config.SEGMENT_FLAT_KEYS`).

    Returns
    -------
    TrainResult
        ``metrics`` is ``metrics.json``'s content.

    Raises
    ------
    ConfigError
        Invalid options, or data that cannot train a segmenter.
    UnknownNameError
        Unknown architecture, encoder, loss or option (with the closest matches).

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.data.samples import write_sample
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_sample("shapes", root / "data", n=8, task="segment", size=32)
    >>> res = train_segmenter(root / "data", model="unet", backbone="tu-test_efficientnet", epochs=1, img_size=32, batch=4,
    ...                       out=root / "run", progress=False)  # timm's tiny test network: a quick example
    >>> res.metrics["split"], sorted(p.name for p in (root / "run" / "weights").iterdir())
    ('val', ['best.safetensors', 'model.json'])
    """
    from pixlearn.data.index import DatasetIndex
    from pixlearn.tasks.segment.data import read_segment_dataset

    from pixlearn.engine.budget import epochs_for_budget
    from pixlearn.engine.resume import check_new_run_options

    rank_zero = env_rank() == 0
    if isinstance(options.get("data"), (str, os.PathLike)) and data is None:
        data = options.pop("data")
    check_new_run_options(resume=resume, extend=extend, options=options, config=config, set=set)
    if resume is not None:
        return _resume(resume, data=data, extend=extend, options=options, classes=classes, progress=progress, callbacks=callbacks,
                       rank_zero=rank_zero)
    index = data if isinstance(data, DatasetIndex) else None
    path = str(Path(index.root).resolve()) if index is not None else data
    cfg = SegmentConfig.from_overrides(SegmentConfig.coerce(config), data=path, **options)
    if set:
        cfg = cfg.with_set(set)
    before_epochs = cfg.train.epochs
    cfg = SegmentConfig.from_overrides(cfg, epochs=epochs_for_budget(cfg.train.epochs, minutes=cfg.train.minutes, options=options,
                                                                    config=config, set=set))
    if cfg.data.path is None and index is None:
        raise ConfigError("no data: pass --data DIR (a mask dataset: images/ + masks/ with matching names)")
    if index is None:
        cfg = SegmentConfig.from_overrides(cfg, data=str(Path(cfg.data.path).resolve()))
        index = read_segment_dataset(cfg.data.path)
    else:
        index = read_segment_dataset(index)
    names = _classes(index, classes)
    cfg, start = _start(cfg, budget_epochs=cfg.train.epochs != before_epochs, progress=progress)
    cfg = _resolve(cfg)
    run_dir = Path(out) if out is not None else default_run_dir("segment", cfg.model.arch)
    if rank_zero and run_dir.exists() and (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir}: already holds a run; choose another --out, or continue it with --resume {run_dir}")
    if cfg.train.folds > 1 and not cfg.train.fold:
        if cfg.train.find_lr:
            raise ConfigError("--find-lr and --folds do not mix; find the learning rate on a single run first")
        return _train_folds(cfg, index, names, run_dir, progress=progress, callbacks=callbacks, rank_zero=rank_zero)
    return _train_single(cfg, index, names, run_dir, progress=progress, callbacks=callbacks, rank_zero=rank_zero, start=start)


def _start(cfg: SegmentConfig, *, budget_epochs: bool, progress: bool | None) -> tuple[SegmentConfig, Any]:
    """The encoder choice (said in one line) and, when the run is to be planned, the unresolved config the plan starts from."""
    from pixlearn.tasks.segment.recipe import start_segment_run, wants_plan

    cfg, notes = start_segment_run(cfg, progress=progress)
    notes.plan_from = cfg if wants_plan(cfg, budget_epochs=budget_epochs) and not cfg.train.folds > 1 else None
    return cfg, notes


def _plan_and_prepare(prep: _Prepared, start: Any, manifest: dict[str, Any]) -> _Prepared:
    """Time the network's steps, choose crop size / batch / crops per image for the budget, rebuild with them; say the recipe."""
    from pixlearn.models import segmentation_divisor
    from pixlearn.tasks.segment.budget import plan_segment_budget
    from pixlearn.tasks.segment.recipe import fine_tune_line

    cfg = prep.cfg
    if start.plan_from is not None:
        plan = plan_segment_budget(prep.task, index=prep.index, train=prep.splits.train, minutes=float(cfg.train.minutes),
                                   multiple=segmentation_divisor(prep.model), precision=str(cfg.train.precision),
                                   accelerator=str(cfg.train.accelerator))
        cfg = _resolve(SegmentConfig.from_overrides(start.plan_from, **{("batch" if k == "batch_size" else k): v for k, v in plan.choice.items()}))
        prep = _prepare(cfg, prep.index, prep.splits, prep.classes)
        start.manifest["plan"] = plan.to_dict()
        for line in plan.lines():
            start.say(line)
    line = fine_tune_line(cfg)
    if line:
        start.manifest["fine_tune"] = {"backbone_lr_mult": cfg.model.backbone_lr_mult, "freeze_bn": cfg.model.freeze_bn,
                                       "freeze_epochs": cfg.model.freeze_epochs, "lr": cfg.optim.lr, "text": line}
        start.say(line)
    manifest.update(start.manifest)
    return prep


def _splits(cfg: SegmentConfig, index: Any) -> Any:
    from pixlearn.engine.kfold import fold_of
    from pixlearn.tasks.segment.data import plan_segment_splits

    splits = plan_segment_splits(index, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction, seed=cfg.train.seed)
    if cfg.train.fold:
        splits = fold_of(splits, folds=max(cfg.train.folds, 1), fold=cfg.train.fold, seed=cfg.train.seed)
    return splits


def _data_manifest(index: Any, names: list[str], splits: Any) -> dict[str, Any]:
    return {"root": str(Path(index.root).resolve()), "format": index.format, "fingerprint": index.fingerprint(), "classes": names,
            "splits": splits.to_dict()}


def _train_single(
    cfg: SegmentConfig, index: Any, names: list[str], run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any], rank_zero: bool,
    start: Any = None,
) -> TrainResult:
    splits = _splits(cfg, index)
    prep = _prepare(cfg, index, splits, names)
    manifest = base_manifest(seed=cfg.train.seed)
    if start is not None:
        prep = _plan_and_prepare(prep, start, manifest)
        cfg = prep.cfg
    manifest.update(status="running", task="segment", run_dir=str(run_dir.resolve()), device=device_info(cfg),
                    data=_data_manifest(index, names, splits), model=prep.model.pixlearn_spec.to_dict())
    if cfg.train.find_lr:
        prep = _find_lr(prep, run_dir, manifest, progress=progress, rank_zero=rank_zero)
        cfg = prep.cfg
    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        write_json(run_dir / "manifest.json", manifest)
    return _fit(prep, run_dir, progress=progress, callbacks=callbacks, manifest=manifest, rank_zero=rank_zero)


#: The metrics a k-fold segmentation run summarises (mean, std, per fold).
_FOLD_KEYS = ("mean_iou", "mean_dice", "pixel_accuracy", "foreground_iou", "foreground_dice")


def _train_folds(
    cfg: SegmentConfig, index: Any, names: list[str], run_dir: Path, *, progress: bool | None, callbacks: Sequence[Any], rank_zero: bool,
) -> TrainResult:
    from pixlearn.engine.kfold import fold_splits, run_folds
    from pixlearn.tasks.segment.data import plan_segment_splits
    from pixlearn.engine.runs import write_folds_report

    k = cfg.train.folds
    base = plan_segment_splits(index, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction, seed=cfg.train.seed)
    fold_splits(base, folds=k, seed=cfg.train.seed)  # fail early when the data is too small for k folds
    manifest = base_manifest(seed=cfg.train.seed)
    manifest.update(device=device_info(cfg), data=_data_manifest(index, names, base))

    def one(i: int, fold_dir: Path) -> TrainResult:
        return _train_single(SegmentConfig.from_overrides(cfg, fold=i), index, names, fold_dir, progress=progress, callbacks=callbacks,
                             rank_zero=rank_zero)

    metrics, results = run_folds(k, run_dir, one, task="segment", keys=_FOLD_KEYS, config_yaml=cfg.to_yaml(), manifest=manifest,
                                 write_text=atomic_write_text, write_json=write_json)
    write_folds_report(run_dir, metrics, title=f"pixlearn train segment: {k}-fold cross-validation of {cfg.model.arch} ({cfg.model.encoder})",
                        details={"network": f"{cfg.model.arch} on {cfg.model.encoder}", "folds": k, "seed": cfg.train.seed})
    return TrainResult(run_dir=run_dir, config=cfg, metrics=metrics, folds=results,
                       history=[{"fold": i + 1, **row} for i, r in enumerate(results) for row in r.history])


def _find_lr(prep: _Prepared, run_dir: Path, manifest: dict[str, Any], *, progress: bool | None, rank_zero: bool) -> _Prepared:
    """The engine's LR finder; returns a fresh, identically seeded preparation that trains with its suggestion."""
    from pixlearn.engine.driver import run_lr_finder

    rebuilt: list[_Prepared] = []

    def rebuild(cfg: SegmentConfig) -> Any:
        rebuilt.append(_prepare(cfg, prep.index, prep.splits, prep.classes))
        return rebuilt[-1]

    run_lr_finder(prep.cfg, _engine_prep(prep, run_dir), run_dir, manifest, rebuild=rebuild, progress=progress, rank_zero=rank_zero)
    return rebuilt[-1]


def _resume(
    run: str | os.PathLike[str], *, data: Any, extend: int | None, options: Mapping[str, Any], classes: Sequence[str] | int | None,
    progress: bool | None, callbacks: Sequence[Any], rank_zero: bool,
) -> TrainResult:
    from pixlearn.engine.resume import check_same_data, note_resume, plan_resume
    from pixlearn.tasks.segment.data import read_segment_dataset

    overrides = {k: v for k, v in options.items() if v is not None}
    if data is not None:
        overrides["data"] = str(Path(data).resolve())
    plan = plan_resume(run, load_config=SegmentConfig.load, with_overrides=SegmentConfig.from_overrides, overrides=overrides, extend=extend)
    cfg = _resolve(plan.config)
    if cfg.data.path is None:
        raise ConfigError(f"{plan.run_dir / 'config.yaml'}: data.path is missing; pass --data")
    index = read_segment_dataset(cfg.data.path)
    manifest = plan.manifest or base_manifest(seed=cfg.train.seed)
    check_same_data(manifest, index.fingerprint(), data=cfg.data.path, run_dir=plan.run_dir)
    names = (manifest.get("data") or {}).get("classes") or _classes(index, classes)
    splits = _splits(cfg, index)
    prep = _prepare(cfg, index, splits, [str(c) for c in names])
    note_resume(manifest, plan, epochs=cfg.train.epochs, at=base_manifest(seed=cfg.train.seed)["created"])
    if rank_zero:
        atomic_write_text(plan.run_dir / "config.yaml", cfg.to_yaml())
        write_json(plan.run_dir / "manifest.json", manifest)
    return _fit(prep, plan.run_dir, progress=progress, callbacks=callbacks, manifest=manifest, rank_zero=rank_zero,
                ckpt_path=plan.checkpoint, extend=extend is not None)

