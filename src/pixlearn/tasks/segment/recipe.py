"""The defaults of a new segmentation run: which encoder from which weights, the fine-tuning recipe, the budget plan.

:func:`start_segment_run` runs before the network is built and says what it chose, one line each
(on stderr unless ``progress=False``; always in ``manifest.json``):

* **encoder** (:func:`~pixlearn.tasks.segment.config.choose_encoder`): with no ``--backbone``, the
  first light encoder whose ImageNet weights are in the local weights folders, pretrained; else
  ``tu-resnet18`` from random weights, with the ``pixlearn weights add`` command that would change that;
* **fine-tuning** (an encoder from weights): the encoder learns at a tenth of the decoder's rate
  (discriminative rates: the decoder starts from scratch, the encoder only adapts), and below
  :data:`~pixlearn.tasks.segment.config.SMALL_BATCH` crops per batch its BatchNorm statistics stay
  as loaded (a batch of a few crops estimates them badly; the scales and shifts still learn);
* **plan** (``--minutes`` without ``--epochs``, crop size / batch / crops per image not given): left
  to :func:`pixlearn.tasks.segment.budget.plan_segment_budget` once the network exists; this
  module only says whether to plan.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pixlearn.tasks.segment.config import SMALL_BATCH, SegmentConfig, choose_encoder

__all__ = ["StartNotes", "start_segment_run", "resolve_fine_tune", "fine_tune_line", "wants_plan", "PLANNED_FIELDS"]

#: The data fields the budget plan chooses (when the user gave none of them).
PLANNED_FIELDS = ("img_size", "batch_size", "crops_per_image")
#: Encoder learning rate = decoder's x this, for an encoder that starts from weights.
FINE_TUNE_BACKBONE_LR_MULT = 0.1


@dataclass
class StartNotes:
    """What a run chose before it started: lines for the console, entries for ``manifest.json``."""

    progress: bool | None = None
    lines: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    plan_from: SegmentConfig | None = None  # the config a budget plan starts from (None: no plan)

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.progress is not False:  # the CLI's start-up lines; with progress=False they are in the manifest only
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def wants_plan(cfg: SegmentConfig, *, budget_epochs: bool) -> bool:
    """Plan the run's sizes: a budget, no epoch count given (``budget_epochs``) and none of :data:`PLANNED_FIELDS` given."""
    return bool(cfg.train.minutes) and budget_epochs and all(getattr(cfg.data, f) is None for f in PLANNED_FIELDS)


def start_segment_run(cfg: SegmentConfig, *, progress: bool | None) -> tuple[SegmentConfig, StartNotes]:
    """Choose the encoder and its weights (saying which and why); the rest resolves in :func:`resolve_fine_tune`."""
    notes = StartNotes(progress=progress)
    upd, why = choose_encoder(cfg.model)
    d = cfg.to_dict()
    d["model"].update(upd)
    cfg = SegmentConfig.from_dict(d)
    m = cfg.model
    notes.manifest["defaults"] = {"encoder": m.encoder, "pretrained": bool(m.pretrained), "encoder_weights": m.encoder_weights,
                                  "why": why}
    if why:
        notes.say(why)
    return cfg, notes


def _from_weights(m: Mapping[str, Any]) -> bool:
    return bool(m.get("pretrained") or m.get("encoder_weights") or m.get("weights"))


def resolve_fine_tune(d: dict[str, Any]) -> None:
    """Fill the recipe's fields of a config dict in place (the data sizes must be set): the encoder's LR share and BN handling."""
    m, batch = d["model"], int(d["data"]["batch_size"])
    if m.get("backbone_lr_mult") is None:
        m["backbone_lr_mult"] = FINE_TUNE_BACKBONE_LR_MULT if _from_weights(m) else 1.0
    if m.get("freeze_bn") is None:
        m["freeze_bn"] = bool(_from_weights(m) and not m.get("weights") and batch < SMALL_BATCH)


def fine_tune_line(cfg: SegmentConfig) -> str | None:
    """One line on the recipe of an encoder that starts from weights (None for random initialisation)."""
    m, o = cfg.model, cfg.optim
    if not (m.pretrained or m.encoder_weights or m.weights):
        return None
    lr = float(o.lr or 0.0)
    parts = [f"encoder lr {lr * float(m.backbone_lr_mult or 1.0):.2g} ({m.backbone_lr_mult:g} x the decoder's {lr:.2g})"]
    if m.freeze_bn:
        parts.append(f"encoder BatchNorm statistics kept as loaded (batch {cfg.data.batch_size} < {SMALL_BATCH})")
    if m.freeze_epochs:
        parts.append(f"decoder only for the first {m.freeze_epochs} epoch(s)")
    return "fine-tuning: " + ", ".join(parts)
