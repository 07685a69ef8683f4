"""The defaults of a new detection run: the architecture, the backbone and its weights, the fine-tuning recipe and the
``--minutes`` plan. Each choice is said in one line (stderr unless ``progress=False``) and kept for ``manifest.json``.

* **architecture** (``arch: auto``): Mask R-CNN when the objects carry instance masks (polygons), else
  :data:`~pixlearn.tasks.detect.config.DEFAULT_ARCH`;
* **backbone**: ``tf_efficientnet_lite0`` from its ImageNet weights when they are in the local weights folders
  (``--pretrained`` / ``--no-pretrained``; ``--weights FILE`` for a classifier's file or a detection run's weights);
* **fine-tuning** (a backbone from weights): the backbone learns at a tenth of the heads' rate and, below
  :data:`~pixlearn.tasks.detect.config.SMALL_BATCH` images per batch, keeps its BatchNorm statistics as loaded;
  AdamW with a one-epoch linear warm-up and a cosine decay;
* **plan** (``--minutes`` without ``--epochs``, ``--img-size`` or ``--batch``): :func:`plan_detect_budget` times
  real optimiser steps of the run's own network at each candidate input size and keeps the largest that affords
  :data:`MIN_STEPS` steps (:func:`pixlearn.engine.plan.choose`).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.detect.config import DEFAULT_ARCH, SMALL_BATCH, DetectConfig

__all__ = ["StartNotes", "IMG_SIZES", "MIN_STEPS", "DEFAULT_IMG_SIZE", "DEFAULT_BATCH", "choose_arch", "choose_backbone",
           "resolve_recipe", "wants_plan", "plan_detect_budget", "probe_clock", "is_detector_weights"]

#: Input sizes the ``--minutes`` plan chooses from, the cheapest first (CPU-sized).
IMG_SIZES = (320, 384, 448, 512)
#: Optimiser steps the planned run must afford.
MIN_STEPS = 300
#: Share of the budget kept for validation and the stop.
RESERVE = 0.12
#: The input size and batch without a plan.
DEFAULT_IMG_SIZE = 512
DEFAULT_BATCH = 4
#: Backbone LR = heads' x this, for a backbone that starts from weights.
FINE_TUNE_BACKBONE_LR_MULT = 0.1


def probe_clock() -> float:
    """Seconds for timing the probe steps (:func:`time.perf_counter`; tests replace it)."""
    return time.perf_counter()


@dataclass
class StartNotes:
    """What a run chose before it started: lines for the console, entries for ``manifest.json``."""

    progress: bool | None = None
    lines: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.progress is not False:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def choose_arch(cfg: DetectConfig, *, masks: bool) -> tuple[str, str | None]:
    """``arch: auto`` -> mask_rcnn for data with instance masks, else :data:`DEFAULT_ARCH`; returns (arch, why)."""
    arch = cfg.model.arch
    if arch != "auto":
        return arch, None
    if masks:
        return "mask_rcnn", "detector: mask_rcnn (the objects carry instance masks; --model faster_rcnn trains boxes only)"
    return DEFAULT_ARCH, f"detector: {DEFAULT_ARCH} (boxes only; --model fcos|retinanet|ssdlite|faster_rcnn|mask_rcnn picks another)"


def is_detector_weights(path: str) -> bool:
    """True for a whole detection network's ``.safetensors`` (a run's best.safetensors), False for a classifier's."""
    from safetensors import safe_open

    from pixlearn.models.weights import WeightsNotFoundError

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except FileNotFoundError:
        raise WeightsNotFoundError(f"--weights {path}: no such file") from None
    except Exception as exc:
        raise ConfigError(f"--weights {path}: not a readable .safetensors weights file ({exc})") from None
    return any(k.startswith(("backbone.body.", "backbone.fpn.")) for k in keys)


def choose_backbone(cfg: DetectConfig) -> tuple[dict[str, Any], str | None]:
    """The backbone, whether it is pretrained and the file behind it: ``{"backbone", "pretrained", "backbone_weights",
    "network_weights"}`` and a line saying why (None when the user chose everything).

    Raises
    ------
    WeightsNotFoundError
        ``--pretrained`` and no local weights file for the backbone.
    """
    from pixlearn._core.paths import weights_dirs
    from pixlearn.models.registry import _add_hint, _looked_for, find_pretrained
    from pixlearn.models.weights import WeightsNotFoundError
    from pixlearn.tasks.detect.model import DEFAULT_BACKBONE

    m = cfg.model
    name = m.backbone or DEFAULT_BACKBONE
    if m.weights:
        if is_detector_weights(m.weights):
            return ({"backbone": name, "pretrained": False, "backbone_weights": None, "network_weights": m.weights},
                    f"weights: the whole network from {m.weights} (--weights)")
        if m.pretrained:
            raise ConfigError(f"--weights {m.weights} is a backbone's weights file; give it alone, without --pretrained")
        return ({"backbone": name, "pretrained": False, "backbone_weights": m.weights, "network_weights": None},
                f"backbone: {name}, from the classifier weights in {m.weights} (--weights)")
    if m.pretrained is False:
        return ({"backbone": name, "pretrained": False, "backbone_weights": None, "network_weights": None},
                f"backbone: {name} from random weights (--no-pretrained)")
    found = find_pretrained(name)
    if found is not None:
        return ({"backbone": name, "pretrained": True, "backbone_weights": str(found), "network_weights": None},
                f"backbone: {name}, pretrained: its ImageNet weights are in {found}; --no-pretrained starts from random weights")
    if m.pretrained:
        raise WeightsNotFoundError(f"--pretrained: no local weights for backbone {name}; pixlearn looked for {_looked_for(name)}. "
                                   f"Add them with `{_add_hint(name)}`, or give the file with --weights FILE")
    folders = ", ".join(str(d) for d in weights_dirs())
    return ({"backbone": name, "pretrained": False, "backbone_weights": None, "network_weights": None},
            f"backbone: {name} from random weights: no local pretrained weights for it in {folders}; add them with "
            f"`{_add_hint(name)}` (a detector trains far better from an ImageNet backbone)")


def wants_plan(cfg: DetectConfig, *, budget_epochs: bool) -> bool:
    """Plan: a budget, no epoch count given, and neither img_size nor batch given."""
    return bool(cfg.train.minutes) and budget_epochs and cfg.data.img_size is None and cfg.data.batch_size is None


def resolve_recipe(d: dict[str, Any], *, from_weights: bool) -> None:
    """Fill the optimiser and fine-tuning fields of a config dict in place (data sizes set)."""
    o, m, batch = d["optim"], d["model"], int(d["data"]["batch_size"])
    if o["lr"] is None:
        o["lr"] = (0.01 if o["optimizer"] == "sgd" else 2e-4) * batch / DEFAULT_BATCH
    if o["weight_decay"] is None:
        o["weight_decay"] = 1e-4
    if o.get("grad_clip") is None:
        o["grad_clip"] = 10.0  # detection losses spike on the first steps of a fresh head
    if m["backbone_lr_mult"] is None:
        m["backbone_lr_mult"] = FINE_TUNE_BACKBONE_LR_MULT if from_weights else 1.0
    if m["freeze_bn"] is None:
        m["freeze_bn"] = bool(from_weights and batch < SMALL_BATCH)


def recipe_line(cfg: DetectConfig, *, from_weights: bool) -> str:
    o, m = cfg.optim, cfg.model
    parts = [f"{o.optimizer} lr {o.lr:.2g}", f"weight decay {o.weight_decay:g}", f"{cfg.schedule.name} schedule"]
    if from_weights:
        parts.append(f"backbone lr {o.lr * m.backbone_lr_mult:.2g} ({m.backbone_lr_mult:g} x the heads')")
        if m.freeze_bn:
            parts.append(f"backbone BatchNorm statistics kept as loaded (batch {cfg.data.batch_size} < {SMALL_BATCH})")
    return "recipe: " + ", ".join(parts)


def plan_detect_budget(model: Any, *, n_train: int, minutes: float, sizes: tuple[int, ...] | None = None, batch: int = DEFAULT_BATCH,
                       masks: bool = False) -> Any:
    """Choose the input size for ``minutes`` of training by timing optimiser steps of a copy of ``model``.

    Parameters
    ----------
    model : nn.Module
        The run's network (built at any size: the copy is re-sized per candidate; its weights are untouched).
    n_train : int
        Training items per epoch.
    minutes : float
    sizes : tuple of int, optional
        Candidate input sizes, the cheapest first (default :data:`IMG_SIZES`).
    batch : int
    masks : bool
        Probe with instance masks (Mask R-CNN).

    Returns
    -------
    BudgetPlan
        ``choice`` holds ``img_size`` and ``batch``.
    """
    import torch

    from pixlearn.engine.plan import choose, probe_seconds_per_step

    probe_model = copy.deepcopy(model)
    probe_model.train()
    params = [p for p in probe_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    warm = [True]
    k = max(int(getattr(model, "pixlearn_detect_spec", {}).get("num_classes", 1)), 1)

    def probe(cand: Any) -> float:
        s, b = int(cand["img_size"]), int(cand["batch"])
        _resize_transform(probe_model, s)
        x = [torch.rand(3, s, s, generator=gen) for _ in range(b)]
        y = []
        for _ in range(b):
            xy = torch.rand(3, 2, generator=gen) * s * 0.6
            wh = s * 0.1 + torch.rand(3, 2, generator=gen) * s * 0.3
            t = {"boxes": torch.cat([xy, xy + wh], 1).clamp(0, s), "labels": torch.randint(1, k + 1, (3,), generator=gen)}
            if masks:
                t["masks"] = torch.zeros((3, s, s), dtype=torch.uint8)
                for j, bx in enumerate(t["boxes"].long()):
                    t["masks"][j, bx[1]:bx[3], bx[0]:bx[2]] = 1
            y.append(t)

        def step() -> None:
            loss = sum(probe_model(x, y).values())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        sps = probe_seconds_per_step(step, steps=2, warmup=1 if warm[0] else 0, clock=lambda: probe_clock())
        warm[0] = False
        return sps

    cands = [{"img_size": s, "batch": batch} for s in (sizes or IMG_SIZES)]
    per_epoch = max(n_train // batch, 1)
    try:
        return choose(cands, probe, budget_s=float(minutes) * 60.0, steps_per_epoch_fn=lambda c: per_epoch,
                      min_epochs=MIN_STEPS / per_epoch, reserve=RESERVE, clock=lambda: probe_clock())
    finally:
        del probe_model, opt


def _resize_transform(model: Any, size: int) -> None:
    t = model.transform
    t.min_size, t.max_size = (size,), size
    if getattr(t, "fixed_size", None) is not None:
        t.fixed_size = (size, size)
