"""Train an object detector (or instance segmenter) on a COCO / YOLO / VOC folder and write its run folder.

:func:`train_detector` is the Python face of ``pixlearn train detect``. It is the engine's generic driver
(:func:`pixlearn.engine.driver.train_task`) with detection's :class:`DetectHooks`, so resume / extend, k-fold,
the LR finder, ``--minutes``, progress and the run report come from the engine. ``runs/detect/<arch>/``::

    config.yaml               the resolved configuration
    manifest.json             versions, seed, data fingerprint, splits, the choices made (detector, backbone, anchors,
                              tiles, class balance, recipe, budget plan), device, timings
    metrics.csv               one row per epoch: train loss and each of its parts, val mAP50 and mAP, lr, times
    metrics.json              the kept weights' COCO scores on the test (else val) split, named by their split
    weights/best.safetensors  the kept weights; weights/model.json the spec and class names that rebuild them
    checkpoints/last.ckpt     the full training state at the last epoch end
    report.html               scores, drawn predictions beside the truth, worst misses and false positives
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.engine.driver import Prepared, RunContext, TaskHooks, train_task
from pixlearn.tasks.detect.config import DetectConfig

__all__ = ["train_detector", "DetectHooks", "DETECT_COLUMNS"]

log = logging.getLogger("pixlearn.train")

#: Columns of a detection run's ``metrics.csv`` (the loss parts of the architecture follow ``train_loss``).
DETECT_COLUMNS = ("epoch", "train_loss", "val_map50", "val_map", "lr", "backbone_lr", "backbone_frozen", "epoch_seconds",
                  "train_seconds", "train_images_per_second")
_LOSS_PARTS = {
    "fcos": ("classification", "bbox_regression", "bbox_ctrness"),
    "retinanet": ("classification", "bbox_regression"),
    "ssdlite": ("classification", "bbox_regression"),
    "faster_rcnn": ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"),
    "mask_rcnn": ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"),
}


class _Loaders:
    """Shuffled, seeded training items and in-order val items (picklable)."""

    def __init__(self, train_ds: Any, val_ds: Any, *, batch_size: int, workers: int, seed: int, pin_memory: bool) -> None:
        self.train_ds, self.val_ds = train_ds, val_ds
        self.batch_size, self.workers, self.seed, self.pin_memory = batch_size, workers, seed, pin_memory
        self.train_loader: Any = None

    def _loader(self, dataset: Any, sampler: Any, *, drop_last: bool) -> Any:
        from pixlearn.data.loader import SkippingLoader, collate_skip_none, seed_worker

        extra: dict[str, Any] = {}
        if self.workers > 0:
            extra = {"persistent_workers": True, "worker_init_fn": seed_worker, "multiprocessing_context": "forkserver"}
        return SkippingLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers, collate_fn=collate_skip_none,
                              drop_last=drop_last, pin_memory=self.pin_memory, **extra)

    def train(self, world: int, rank: int) -> Any:
        from pixlearn.engine.sampling import EpochSampler

        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=self.seed, num_replicas=world, rank=rank)
        self.train_loader = self._loader(self.train_ds, sampler, drop_last=len(sampler) > self.batch_size)
        return self.train_loader

    def val(self, world: int, rank: int) -> Any:
        from pixlearn.engine.sampling import ShardSampler

        return self._loader(self.val_ds, ShardSampler(len(self.val_ds), world, rank), drop_last=False)


class _SaveBest:
    """Writes ``weights/best.safetensors`` and ``weights/model.json`` (a class, so that it pickles)."""

    def __init__(self, run_dir: Path, card: dict[str, Any]) -> None:
        self.run_dir, self.card = Path(run_dir), card

    def __call__(self, model: Any) -> None:
        from pixlearn.engine.runs import write_json
        from pixlearn.models import save_weights

        save_weights(model, self.run_dir / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(self.card)})
        write_json(self.run_dir / "weights" / "model.json", self.card)


def _metrics_callback(run_dir: Path, *, n_train: int, freeze_epochs: int, arch: str) -> Any:
    from pixlearn.engine.callbacks import EpochMetrics

    parts = tuple(f"loss_{p.removeprefix('loss_')}" for p in _LOSS_PARTS.get(arch, ()))

    class DetectEpochMetrics(EpochMetrics):
        """The engine's per-epoch rows, plus the mean of each part of torchvision's loss."""

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            super().on_train_epoch_start(trainer, pl_module)
            pl_module.task.reset_loss_parts()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            means = {f"loss_{k.removeprefix('loss_')}": round(v, 5) for k, v in pl_module.task.loss_parts().items()}
            super().on_train_epoch_end(trainer, pl_module)
            if self.rows:
                self.rows[-1].update(means)
                if trainer.is_global_zero:
                    self.write()

    cols = DETECT_COLUMNS[:2] + parts + DETECT_COLUMNS[2:]
    return DetectEpochMetrics(run_dir / "metrics.csv", n_train=n_train, freeze_epochs=freeze_epochs, columns=cols)


class DetectHooks(TaskHooks):
    """Detection's part of the engine's driver: read, split, plan, build, score, report."""

    name = "detect"
    config = DetectConfig
    fold_keys = ("map50", "map", "map75")
    data_help = "a COCO, YOLO or Pascal VOC dataset folder"

    def __init__(self, *, progress: bool | None = None, resuming: bool = False) -> None:
        from pixlearn.tasks.detect.recipe import StartNotes

        self.notes = StartNotes(progress=progress)
        self.resuming = bool(resuming)  # the checkpoint holds every weight: the backbone's file is not needed again
        self.index: Any = None
        self._said: set[str] = set()

    def _say(self, key: str, line: str | None) -> None:
        if line and key not in self._said:
            self._said.add(key)
            self.notes.say(line)

    # ------------------------------------------------------------ data
    def read_data(self, cfg: DetectConfig) -> Any:
        from pixlearn.tasks.detect.data import read_detect_dataset

        self.index = read_detect_dataset(cfg.data.path)
        return self.index

    def fingerprint(self, data: Any) -> str:
        return str(data.fingerprint())

    def plan(self, cfg: DetectConfig, data: Any) -> Any:
        from pixlearn.tasks.detect.data import plan_detect_splits

        return plan_detect_splits(data, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction, seed=cfg.train.seed)

    def data_manifest(self, cfg: DetectConfig, data: Any, splits: Any) -> dict[str, Any]:
        return {"root": str(Path(data.root).resolve()), "format": data.format, "fingerprint": data.fingerprint(),
                "classes": [str(c) for c in data.classes], "splits": splits.to_dict()}

    def run_name(self, cfg: DetectConfig) -> str:
        return str(cfg.model.arch)

    # ------------------------------------------------------------ defaults
    def resolve(self, cfg: DetectConfig) -> DetectConfig:
        """Arch, backbone, tiles, the budget plan, sizes and the recipe (a resumed run's config is already resolved)."""
        from pixlearn.engine.trainer import resolve_hardware
        from pixlearn.tasks.detect.data import auto_tile, has_masks
        from pixlearn.tasks.detect.recipe import DEFAULT_BATCH, DEFAULT_IMG_SIZE, choose_arch, choose_backbone, recipe_line, resolve_recipe, wants_plan

        index = self.index if self.index is not None else self.read_data(cfg)
        d = cfg.to_dict()
        arch, why = choose_arch(cfg, masks=has_masks(index))
        d["model"]["arch"] = arch
        self._say("arch", why)
        if self.resuming:
            m = cfg.model
            bb, why = {"backbone": m.backbone, "pretrained": m.pretrained, "backbone_weights": None, "network_weights": None}, None
        else:
            bb, why = choose_backbone(cfg)
        d["model"]["backbone"] = bb["backbone"]
        d["model"]["pretrained"] = bool(bb["pretrained"])
        self._say("backbone", why)
        self.notes.manifest["defaults"] = {"arch": arch, **bb, "why": why}
        cfg = DetectConfig.from_dict(d)
        splits = self.plan(cfg, index)
        if wants_plan(cfg, budget_epochs=cfg.train.epochs >= 10000):
            plan = self._budget_plan(cfg, index, splits)
            d["data"]["img_size"], d["data"]["batch_size"] = int(plan.choice["img_size"]), int(plan.choice["batch"])
            self.notes.manifest["plan"] = plan.to_dict()
            for line in plan.lines():
                self._say("plan", line)
        d["data"]["img_size"] = d["data"]["img_size"] or DEFAULT_IMG_SIZE
        d["data"]["batch_size"] = d["data"]["batch_size"] or DEFAULT_BATCH
        if d["data"]["tile"] is None:
            tile, why = auto_tile(index, splits.train, img_size=d["data"]["img_size"])
            d["data"]["tile"] = tile
            self.notes.manifest["tiles"] = {"tile": tile, "why": why}
            self._say("tile", why if tile else None)
        from_weights = bool(bb["pretrained"] or bb["backbone_weights"] or bb["network_weights"])
        resolve_recipe(d, from_weights=from_weights)
        # box regression in bf16 is not measured on the CPU: detection keeps fp32 there (bf16 on a GPU that has it)
        d["train"].update(resolve_hardware(cfg, cpu_bf16=False))
        if d["train"]["channels_last"] is None or d["train"]["channels_last"]:
            d["train"]["channels_last"] = False  # detection networks take lists of images
        cfg = DetectConfig.from_dict(d)
        line = recipe_line(cfg, from_weights=from_weights)
        self.notes.manifest["recipe"] = {"text": line, "lr": cfg.optim.lr, "backbone_lr_mult": cfg.model.backbone_lr_mult,
                                         "freeze_bn": cfg.model.freeze_bn}
        self._say("recipe", line)
        return cfg

    def _budget_plan(self, cfg: DetectConfig, index: Any, splits: Any) -> Any:
        from pixlearn.tasks.detect.data import has_masks, tile_items
        from pixlearn.tasks.detect.model import build_detector
        from pixlearn.tasks.detect.recipe import DEFAULT_BATCH, DEFAULT_IMG_SIZE, plan_detect_budget

        tile = cfg.data.tile or 0
        n_train = len(tile_items(index, splits.train, tile=tile, overlap=cfg.data.tile_overlap)) if tile else len(splits.train)
        net = build_detector({"arch": cfg.model.arch, "backbone": cfg.model.backbone, "num_classes": len(index.classes),
                              "img_size": DEFAULT_IMG_SIZE, "fpn_channels": cfg.model.fpn_channels})
        return plan_detect_budget(net, n_train=n_train, minutes=float(cfg.train.minutes), batch=DEFAULT_BATCH,
                                  masks=cfg.model.arch == "mask_rcnn" and has_masks(index))

    # ------------------------------------------------------------ build
    def prepare(self, cfg: DetectConfig, data: Any, splits: Any, run_dir: Path) -> Prepared:
        import torch

        from pixlearn.models.registry import find_pretrained
        from pixlearn.tasks.detect.data import DetectDataset, box_sizes, expand_repeats, repeat_factors, tile_items
        from pixlearn.tasks.detect.model import build_detector, fit_anchors
        from pixlearn.tasks.detect.module import DetectSpecInfo, DetectTask
        from pixlearn.tasks.detect.recipe import is_detector_weights

        torch.manual_seed(cfg.train.seed)
        index, d, m = data, cfg.data, cfg.model
        names = [str(c) for c in index.classes]
        if not splits.train:
            raise ConfigError(f"{index.root}: no training images after the split")
        tile = int(d.tile or 0)
        items = tile_items(index, splits.train, tile=tile, overlap=d.tile_overlap)
        if not any(index.records[i].boxes is not None and len(index.records[i].boxes) for i in splits.train):
            raise ConfigError(f"{index.root}: no image of the training split has a box; a detector needs annotated objects")
        factors, balance = repeat_factors(index, [i for i, _ in items], threshold=d.repeat_threshold)
        if balance["on"]:
            items = expand_repeats(items, factors, seed=cfg.train.seed)
            self._say("balance", f"class balance: repeat-factor sampling (LVIS), t = {balance['threshold']:g}: images with rare classes "
                                 f"repeat up to {max(factors):.2f}x -> {len(items)} items per epoch (class shares {balance['class_share']})")
        self.notes.manifest["class_balance"] = balance
        spec: dict[str, Any] = {"arch": m.arch, "backbone": m.backbone, "num_classes": len(names), "img_size": d.img_size,
                                "fpn_channels": m.fpn_channels}
        if m.arch != "fcos" and m.anchors == "fit":
            wh = box_sizes(index, splits.train, img_size=d.img_size, tile=tile or None)
            spec["anchor_sizes"], spec["aspect_ratios"] = fit_anchors(wh, arch=m.arch)
            self._say("anchors", f"anchors fitted to {len(wh)} training boxes at {d.img_size} px: sizes per level {spec['anchor_sizes']}, "
                                 f"aspect ratios (h/w) {spec['aspect_ratios']}")
        elif m.arch == "fcos":
            self._say("anchors", "anchors: none to fit (FCOS is anchor-free: one point per location, sized by the level's stride)")
        gone = self.resuming and bool(m.weights) and not Path(str(m.weights)).is_file()  # the checkpoint restores every weight
        network_weights = m.weights if m.weights and not gone and not self.resuming and is_detector_weights(m.weights) else None
        if m.weights and not gone and not network_weights and not (self.resuming and is_detector_weights(m.weights)):
            spec["backbone_weights"] = m.weights
        elif m.pretrained:
            found = find_pretrained(m.backbone)
            if found is None and self.resuming:
                pass  # the checkpoint restores the backbone
            elif found is None:
                raise ConfigError(f"model.pretrained is on but no local weights for {m.backbone} are there any more; add them "
                                  f"(pixlearn weights add FILE --model {m.backbone}) or set --no-pretrained")
            else:
                spec["backbone_weights"] = str(found)
        model = build_detector(spec)
        load = model.pixlearn_backbone_load
        if load:
            self._say("weights", f"backbone weights: {load['loaded']} tensors loaded into the {m.backbone} feature extractor from {load['file']} "
                                 f"({load['left_out']} classifier-head tensors left out)")
        if network_weights:
            from pixlearn.models.weights import load_weights

            rep = load_weights(model, network_weights, head=("roi_heads.box_predictor", "head.classification_head"))
            self._say("weights", f"network weights: {rep.loaded} tensors from {network_weights}")
        self.notes.manifest["anchors"] = {"sizes": model.pixlearn_detect_spec.get("anchor_sizes"),
                                          "aspect_ratios": model.pixlearn_detect_spec.get("aspect_ratios"), "fitted": "anchor_sizes" in spec}
        model.pixlearn_spec = DetectSpecInfo(model, extra={"choices": dict(self.notes.manifest)})
        task = DetectTask(model, names, freeze_backbone_bn=bool(m.freeze_bn), score=cfg.train.score, iou=cfg.train.iou)
        masks = m.arch == "mask_rcnn"
        train_ds = DetectDataset(index, items, img_size=d.img_size, augment=d.augment, masks=masks)
        val_items = tile_items(index, splits.val, tile=tile, overlap=d.tile_overlap)
        val_ds = DetectDataset(index, val_items, img_size=d.img_size, augment=None) if val_items else None
        loaders = _Loaders(train_ds, val_ds, batch_size=d.batch_size, workers=d.workers, seed=cfg.train.seed,
                           pin_memory=cfg.train.accelerator in ("gpu", "cuda"))
        card = {"task": "detect", "name": Path(run_dir).name, "spec": model.pixlearn_detect_spec, "class_names": names,
                "tile": tile or None, "tile_overlap": d.tile_overlap, "masks": masks}
        ids = (getattr(index, "meta", None) or {}).get("category_ids")
        if isinstance(ids, (list, tuple)) and len(ids) == len(names):
            card["category_ids"] = [int(i) for i in ids]  # the dataset's own COCO ids, for COCO results
        return Prepared(task=task, loaders=loaders, save_best=_SaveBest(run_dir, card), n_train=len(items), has_val=bool(val_items),
                        val_steps=len(val_items) / d.batch_size, model=model, keep_best=cfg.train.keep == "best",
                        metrics_callback=_metrics_callback(run_dir, n_train=len(items), freeze_epochs=m.freeze_epochs, arch=m.arch),
                        trainer_overrides={"check_val_every_n_epoch": cfg.train.val_every}, state={"card": card, "items": items})

    # ------------------------------------------------------------ score
    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        """The kept weights on the test split (else val), through the evaluator every detector shares; report written here."""
        from pixlearn.tasks.detect.model import load_run_detector

        cfg, s = ctx.cfg, ctx.splits
        ctx.manifest.update({k: v for k, v in self.notes.manifest.items()})
        ctx.manifest["start_lines"] = list(self.notes.lines)
        detector: Any = load_run_detector(ctx.run_dir, device="auto" if cfg.train.accelerator in ("gpu", "cuda") else "cpu")
        tile = ctx.prepared.state["card"]["tile"]
        if tile:
            from pixlearn.tasks.detect.tiles import TiledDetector

            detector = TiledDetector(detector, tile=tile, overlap=cfg.data.tile_overlap)
        masks = bool(ctx.prepared.state["card"]["masks"])
        split_name, idx = (s.test_name, s.test) if s.test else ("val", s.val)
        if not idx:
            raise ConfigError("no val or test images to score the detector on; keep val_fraction or test_fraction above 0")
        evaluation = _evaluate(detector, ctx.data, idx, split=split_name, masks=masks, source=s.sources.get(split_name, ""),
                               progress=ctx.progress)
        self._evaluations = [evaluation]
        metrics: dict[str, Any] = {"task": "detect", "split": split_name, "n": len(idx)}
        metrics.update(_scalar_metrics(evaluation))
        metrics["splits"] = {k: {"images": len(getattr(s, k) if k != s.test_name else s.test), "source": s.sources.get(k, "")}
                             for k in ("train", "val", s.test_name)}
        if s.test and s.val:
            val_eval = _evaluate(detector, ctx.data, s.val, split="val", masks=masks, source=s.sources.get("val", ""), progress=ctx.progress)
            self._evaluations.append(val_eval)
            metrics["val"] = {**_scalar_metrics(val_eval), "note": "chose the best epoch: optimistic" if cfg.train.keep == "best" else "last epoch"}
        metrics["steps"] = _steps(ctx)
        metrics["arch"], metrics["backbone"], metrics["img_size"] = cfg.model.arch, cfg.model.backbone, cfg.data.img_size
        return metrics

    def report(self, ctx: RunContext, metrics: dict[str, Any]) -> None:
        """``report.html`` by the detection report: scores by split, drawn predictions, worst misses, false positives."""
        from pixlearn.engine.budget import describe_stop
        from pixlearn.tasks.detect.report import write_detect_report

        cfg, r, s = ctx.cfg, ctx.result, ctx.splits
        chose = "early stopping and choosing the best epoch (its scores are optimistic)" if cfg.train.keep == "best" else "early stopping only"
        splits = [{"split": "train", "images": len(s.train), "source": s.sources.get("train", ""), "used_for": "fitting the weights"},
                  {"split": "val", "images": len(s.val), "source": s.sources.get("val", ""), "used_for": chose if s.val else "nothing"},
                  {"split": s.test_name, "images": len(s.test), "source": s.sources.get(s.test_name, ""),
                   "used_for": "the final scores only" if s.test else "nothing (no test split)"}]
        m = cfg.model
        details = {"detector": f"{m.arch} on {m.backbone} ({'pretrained' if m.pretrained else 'weights ' + m.weights if m.weights else 'random init'})",
                   "input": f"{cfg.data.img_size} px letterbox" + (f", tiles of {cfg.data.tile} px" if cfg.data.tile else ""),
                   "choices": " | ".join(self.notes.lines),
                   "stopped by": describe_stop(r.stop_reason, epochs_run=r.epochs_run, epochs=cfg.train.epochs, minutes=cfg.train.minutes),
                   "best epoch": r.best_epoch, "fit seconds": round(ctx.fit_seconds, 1), "run folder": str(ctx.run_dir.resolve())}
        notes = [] if s.test else ["This run has no test split: the scores are on the val split, which chose the best epoch (optimistic)."]
        write_detect_report(ctx.run_dir, self._evaluations[0], title=f"pixlearn train detect: {m.arch} ({m.backbone})",
                            more=self._evaluations[1:], splits=splits, details=details, notes=notes)


def _steps(ctx: RunContext) -> int | None:
    hist = ctx.result.history
    n = ctx.prepared.n_train
    b = ctx.cfg.data.batch_size
    per_epoch = max(n // b, 1) if n > b else 1
    return int(per_epoch * len(hist)) if hist else 0


def _evaluate(detector: Any, index: Any, indices: Sequence[int], *, split: str, masks: bool, source: str, progress: bool) -> Any:
    from pixlearn.tasks.detect.evaluate import dataset_samples, evaluate_detector

    errors: dict[str, str] = {}
    return evaluate_detector(detector, dataset_samples(index, indices, errors=errors), split=split, masks=masks,
                             class_names=[str(c) for c in index.classes], total=len(indices), progress=progress, source=source, errors=errors)


def _scalar_metrics(evaluation: Any) -> dict[str, Any]:
    m = getattr(evaluation, "metrics", evaluation)
    return {k: v for k, v in dict(m).items() if isinstance(v, (int, float, str, type(None))) and not isinstance(v, bool)}


def train_detector(
    data: str | os.PathLike[str] | None = None,
    *,
    config: DetectConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    extend: int | None = None,
    set: Sequence[str] = (),
    progress: bool | None = None,
    callbacks: Sequence[Any] = (),
    **options: Any,
) -> Any:
    """Train a detector (FCOS, RetinaNet, SSDlite, Faster R-CNN) or instance segmenter (Mask R-CNN) and write its run folder.

    Parameters
    ----------
    data : path, optional
        A COCO, YOLO or Pascal VOC folder (its own train/val/test splits are used when it has them).
    config : DetectConfig, mapping or YAML path, optional
        The starting configuration; ``options`` override it.
    out : path, optional
        The run folder; default ``runs/detect/<arch>``.
    resume, extend, set, progress, callbacks
        As for every task (:func:`pixlearn.engine.driver.train_task`).
    **options
        Flat config fields: ``arch`` (auto, fcos, retinanet, ssdlite, faster_rcnn, mask_rcnn), ``backbone``, ``pretrained``,
        ``weights``, ``img_size``, ``batch``, ``epochs``, ``minutes``, ``lr``, ``optimizer``, ``tile``, ``anchors``,
        ``augment``, ``val_fraction``, ``test_fraction``, ``repeat_threshold``, ``patience``, ``folds``, ``find_lr``, ``seed``...
        (see :data:`~pixlearn.tasks.detect.config.DETECT_FLAT_KEYS`).

    Returns
    -------
    TrainResult
        ``metrics`` is ``metrics.json``'s content.

    Raises
    ------
    ConfigError
        Invalid options, a dataset without boxes, a tile below 64 px.
    UnknownNameError
        Unknown architecture, backbone or option (with the closest matches).
    """
    return train_task(DetectHooks(progress=progress, resuming=resume is not None), data, config=config, out=out, resume=resume, extend=extend, set=set,
                      progress=progress, callbacks=callbacks, **options)
