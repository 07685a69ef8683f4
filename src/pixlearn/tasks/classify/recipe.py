"""Defaults that work: the backbone a budgeted run picks, the fine-tuning recipe, and the budget plan.

Three steps run before a new classification run is resolved (:func:`start_run`):

1. **Auto backbone** -- ``pixlearn train classify --data DIR --minutes N`` with no ``--model``
   fine-tunes :data:`AUTO_BACKBONE` when its ImageNet weights are in a local weights folder
   (``$PIXLEARN_WEIGHTS`` / ``<cache>/weights``), else trains the small CNN from scratch, and
   says which and why. Without ``--minutes`` the default stays the small CNN (a full 30-epoch
   fine-tune of a pretrained network on CPU has no time limit to respect).
2. **Fine-tuning recipe** -- when the model starts from pretrained weights (``--pretrained``,
   ``--weights`` or the auto pick), the defaults switch to fastai's ``fine_tune`` / timm's
   fine-tuning practice: a zero-initialised head (the first loss is ``ln(classes)``); the head
   alone for the first :data:`HEAD_WARMUP` of the run (of the *time budget* under ``--minutes``,
   so it never eats the budget), its backbone BatchNorm in eval mode; then everything, the
   backbone at ``lr x`` :data:`BACKBONE_LR_MULT` with layer-wise decay :data:`LAYER_DECAY` per block
   down to the stem; AdamW at :data:`FINE_TUNE_LR` (batch 32); BatchNorm statistics frozen all
   run when the batch is below :data:`BN_EVAL_BELOW`; light augmentation (flip, small zoom-crop);
   and small images (CIFAR's 32 x 32) upsampled to a size where ImageNet features work
   (:data:`FINE_TUNE_SIZES`, the budget decides which) rather than the model's 224 px.
3. **Budget plan** -- with ``--minutes`` and no ``--epochs``, a few real optimiser steps of each
   candidate image size are timed (:mod:`pixlearn.engine.plan`) and the largest that affords
   :data:`MIN_EPOCHS` passes over the training images is chosen.

Only what the user did not set is changed; every choice lands in ``config.yaml`` and, with the
reasons, in ``manifest.json`` (``auto_model``, ``fine_tune``, ``plan``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pixlearn.tasks.classify.config import ClassifyConfig

__all__ = [
    "AUTO_BACKBONE", "FINE_TUNE_SIZES", "MIN_EPOCHS", "StartNotes", "start_run", "resolve_fine_tune_fields", "data_image_size",
    "pick_backbone", "fine_tune_recipe",
]

#: The backbone a budgeted run fine-tunes when its weights are local.
AUTO_BACKBONE = "tf_efficientnet_lite0"
AUTO_BACKBONE_TAG = "in1k"
#: Square sizes small images are upsampled to for a pretrained backbone (the plan picks one under --minutes).
FINE_TUNE_SIZES = (96, 128, 160)
#: Without a budget, small images are fine-tuned at this size.
FINE_TUNE_SIZE = 128
#: Images at most this large (median side) count as small: upsampled, never cropped from 224 px.
SMALL_IMAGE = 64
#: Passes over the training images a planned run should afford. Two, not more: for small images
#: resolution buys more than extra passes (BiT's hyper-rule fine-tunes sub-96-px data at 128 px with
#: a short schedule; on cifar10 at 10 min, 96 px x 5 passes reached 0.829 val accuracy and plateaued).
MIN_EPOCHS = 2.0
#: Head-only share of the run before the backbone is unfrozen.
HEAD_WARMUP = 0.1
#: The backbone's learning rate as a share of the head's (layer decay applies below it). 0.3, not 0.1: CIFAR's 32-px
#: images upsampled to 160 px are far from ImageNet's photos; measured with `pixlearn train classify --data cifar10
#: --minutes 10`, each run alone: 0.848 -> 0.856 val accuracy, 0.868 -> 0.886 on the run's hold-out.
BACKBONE_LR_MULT = 0.3
LAYER_DECAY = 0.8
FINE_TUNE_LR = 1e-3
FINE_TUNE_BATCH = 32
#: BatchNorm statistics stay frozen all run below this batch size.
BN_EVAL_BELOW = 16


@dataclass
class StartNotes:
    """What the run chose before it started, for the console and ``manifest.json``."""

    lines: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str, *, progress: bool | None) -> None:
        self.lines.append(line)
        if progress is not False:  # the CLI's start-up lines; a caller passing progress=False reads them from the manifest
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def _given(options: Mapping[str, Any], set: Sequence[str], config: Any) -> set[str]:
    """Flat option names the user set (flags / keywords / --set); a config file counts as setting everything it could."""
    from pixlearn.tasks.classify.config import FLAT_KEYS

    if config is not None:
        return {"*"}
    keys = {k for k, v in options.items() if v is not None}
    for text in set or ():
        key = str(text).split("=", 1)[0].strip()
        keys.add(key.split(".")[-1])
    # a section.field name given by --set maps back to its flat name(s)
    for flat, (section, fld) in FLAT_KEYS.items():
        if fld in keys:
            keys.add(flat)
    return keys


def pick_backbone(cfg: ClassifyConfig, *, given: set[str]) -> tuple[ClassifyConfig, str | None]:
    """The auto backbone of a budgeted run without ``--model``: ``(cfg, one line why)``; ``(cfg, None)`` when not asked."""
    if "*" in given or "model" in given or cfg.model.pretrained or cfg.model.weights or not cfg.train.minutes:
        return cfg, None
    from pixlearn._core.paths import find_local_weights, weights_dirs

    path = find_local_weights(AUTO_BACKBONE, default_tag=AUTO_BACKBONE_TAG)
    if path is not None:
        cfg = ClassifyConfig.from_overrides(cfg, model=AUTO_BACKBONE, pretrained=True)
        return cfg, (f"model: {AUTO_BACKBONE}, fine-tuned from its ImageNet weights ({path.name} found in {path.parent}); "
                     "pass --model to choose another")
    where = ", ".join(str(d) for d in weights_dirs()) or "no weights folder"
    return cfg, (f"model: {cfg.model.name} from scratch (no local weights for {AUTO_BACKBONE} in {where}; "
                 f"add them with: pixlearn weights add FILE --model {AUTO_BACKBONE})")


def data_image_size(index: Any, *, n: int = 16) -> tuple[int, int] | None:
    """The median (height, width) of up to ``n`` images spread over the dataset (headers only); None if none opens."""
    from PIL import Image

    records = list(index.records)
    if not records:
        return None
    stride = max(len(records) // n, 1)
    hs, ws = [], []
    for rec in records[::stride][:n]:
        try:
            with Image.open(rec.path) as im:
                w, h = im.size
        except Exception:  # an unreadable file is reported by the loader later
            continue
        hs.append(h)
        ws.append(w)
    if not hs:
        return None
    hs.sort()
    ws.sort()
    return hs[len(hs) // 2], ws[len(ws) // 2]


def fine_tune_recipe(cfg: ClassifyConfig, *, given: set[str], data_size: tuple[int, int] | None) -> tuple[ClassifyConfig, dict[str, Any]]:
    """The fine-tuning defaults for a pretrained start, for whatever the user did not set."""
    everything = "*" in given
    ov: dict[str, Any] = {}

    def default(key: str, value: Any) -> None:
        if not everything and key not in given:
            ov[key] = value

    default("batch", FINE_TUNE_BATCH)
    default("lr", FINE_TUNE_LR * math.sqrt((ov.get("batch") or cfg.data.batch_size) / FINE_TUNE_BATCH))
    default("augment", "light")
    if not cfg.model.freeze_epochs:
        default("freeze_fraction", HEAD_WARMUP)
    default("backbone_lr_mult", BACKBONE_LR_MULT)
    default("layer_decay", LAYER_DECAY)
    small = data_size is not None and max(data_size) <= SMALL_IMAGE
    if small and cfg.data.img_size is None and "img_size" not in given:
        ov["img_size"] = FINE_TUNE_SIZE  # the plan may change it under --minutes
    cfg = ClassifyConfig.from_overrides(cfg, **ov)
    return cfg, {"small_images": small}


def resolve_fine_tune_fields(d: dict[str, Any]) -> None:
    """Fill the fine-tuning fields still unset in a config dict (pretrained: the recipe's; from scratch: off)."""
    m, data = d["model"], d["data"]
    pre = bool(m["pretrained"] or m["weights"])
    if m.get("freeze_fraction") is None:
        m["freeze_fraction"] = HEAD_WARMUP if pre and not m["freeze_epochs"] else 0.0
    if m.get("layer_decay") is None:
        m["layer_decay"] = LAYER_DECAY if pre else 1.0
    if m.get("head_init", "auto") == "auto":
        m["head_init"] = "zero" if pre else "model"
    if m.get("bn_eval") is None:
        m["bn_eval"] = bool(pre and data["batch_size"] < BN_EVAL_BELOW)


def recipe_line(cfg: ClassifyConfig, data_size: tuple[int, int] | None) -> str:
    """``fine-tune recipe: head warm-up 10 % of budget, backbone LR 0.2x with layer decay 0.85, ...``."""
    m, bs = cfg.model, cfg.data.batch_size
    if m.freeze_epochs:
        warm = f"head warm-up {m.freeze_epochs} epoch(s)"
    elif m.freeze_fraction:
        warm = f"head warm-up {m.freeze_fraction * 100:g} % of {'budget' if cfg.train.minutes else 'the steps'}"
    else:
        warm = "no head warm-up"
    decay = f" with layer decay {m.layer_decay:g}" if m.layer_decay < 1 else ""
    bn = f"BN frozen (batch {bs} < {BN_EVAL_BELOW})" if m.bn_eval else f"BN trained (batch {bs} >= {BN_EVAL_BELOW})"
    data = f"data {data_size[1]}x{data_size[0]}" if data_size else "data size unknown"
    aug = cfg.data.augment if isinstance(cfg.data.augment, str) else "custom"
    return (f"fine-tune recipe: {warm}, head {m.head_init}-init, lr {cfg.optim.lr:.3g}, backbone LR {m.backbone_lr_mult:g}x{decay}, "
            f"{bn}, img {cfg.data.img_size} ({data}), augment {aug}")


def _probe_step_fn(model_name: str, *, img_size: int, batch: int, num_classes: int, autocast: Any = None) -> Any:
    """One real optimiser step of a throwaway copy of the architecture (random weights: same cost) at ``img_size``,
    under ``autocast()`` (the run's precision) when given."""
    import contextlib

    import torch

    from pixlearn.models import create_model

    model = create_model(model_name, num_classes=num_classes, img_size=img_size)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, img_size, img_size)
    y = torch.randint(0, num_classes, (batch,))

    def step() -> None:
        with autocast() if autocast else contextlib.nullcontext():
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def plan_budget(cfg: ClassifyConfig, *, n_train: int, num_classes: int, sizes: Sequence[int], clock: Any = None) -> Any:
    """Time a few steps at each candidate size (largest first) and choose; see :func:`pixlearn.engine.plan.choose`."""
    from pixlearn.engine.plan import choose, probe_seconds_per_step
    from pixlearn.engine.trainer import probe_autocast

    bs = cfg.data.batch_size

    def probe(cand: Mapping[str, Any]) -> float:
        step = _probe_step_fn(cfg.model.name, img_size=int(cand["img_size"]), batch=bs, num_classes=num_classes,
                              autocast=lambda: probe_autocast(str(cfg.train.precision), str(cfg.train.accelerator)))
        return probe_seconds_per_step(step, steps=2, warmup=1, clock=clock)

    per_epoch = max(n_train // bs, 1) if n_train > bs else 1
    return choose([{"img_size": int(s)} for s in sizes], probe, budget_s=float(cfg.train.minutes) * 60.0,
                  steps_per_epoch_fn=lambda c: per_epoch, min_epochs=MIN_EPOCHS, clock=clock)


def start_run(
    cfg: ClassifyConfig, index: Any, *, options: Mapping[str, Any], config: Any, set: Sequence[str], progress: bool | None,
    n_train: Any, probe: Any = None,
) -> tuple[ClassifyConfig, StartNotes]:
    """Auto backbone, fine-tuning recipe and budget plan of a new run; see the module docstring.

    ``n_train`` is a callable ``cfg -> number of training images``; ``probe`` replaces
    :func:`plan_budget` (tests pass a fake one).
    """
    notes = StartNotes()
    given = _given(options, set, config)
    cfg, why = pick_backbone(cfg, given=given)
    if why:
        notes.say(why, progress=progress)
        notes.manifest["auto_model"] = {"model": cfg.model.name, "pretrained": cfg.model.pretrained, "why": why}
    pretrained = bool(cfg.model.pretrained or cfg.model.weights)
    size = data_image_size(index)
    if pretrained:
        cfg, facts = fine_tune_recipe(cfg, given=given, data_size=size)
    budgeted = bool(cfg.train.minutes) and "epochs" not in given and "*" not in given
    if budgeted:
        if pretrained and size is not None and max(size) <= SMALL_IMAGE and "img_size" not in given:
            sizes: Sequence[int] = FINE_TUNE_SIZES
        else:
            from pixlearn.tasks.classify.train import _default_img_size

            sizes = (int(cfg.data.img_size or _default_img_size(cfg.model.name)),)
        plan = (probe or plan_budget)(cfg, n_train=n_train(cfg), num_classes=len(index.classes), sizes=sizes)
        cfg = ClassifyConfig.from_overrides(cfg, img_size=int(plan.choice["img_size"]))
        notes.manifest["plan"] = plan.to_dict()
        for line in plan.lines():
            notes.say(line, progress=progress)
    if pretrained:
        d = cfg.to_dict()
        resolve_fine_tune_fields(d)
        cfg = ClassifyConfig.from_dict(d)
        line = recipe_line(cfg, size)
        notes.manifest["fine_tune"] = {**{k: getattr(cfg.model, k) for k in (
            "head_init", "freeze_epochs", "freeze_fraction", "backbone_lr_mult", "layer_decay", "bn_eval")},
            "lr": cfg.optim.lr, "batch": cfg.data.batch_size, "img_size": cfg.data.img_size, "augment": cfg.data.augment,
            "data_image_size": list(size) if size else None, "text": line}
        notes.say(line, progress=progress)
    return cfg, notes
