"""Size a segmentation run for ``--minutes``: the crop size, batch and crops per image, from measured speed.

With ``--minutes N`` and no ``--epochs``, ``pixlearn train segment`` does not know how many steps this
machine (and whatever else runs on it) affords. :func:`plan_segment_budget` offers the engine's
planner (:func:`pixlearn.engine.plan.choose`) the segmentation candidates -- crop sizes from 128 px
up to 256 px (never above the training images' size) at a batch of 8, and the smallest crop at a
batch of 4 as the cheapest -- and a probe that times real optimiser steps of the run's own network
(a copy: the run's weights are untouched) on crops of each size. It keeps the largest crop that
still affords :data:`MIN_STEPS` optimiser steps: with a pretrained encoder the number of updates,
more than the context of a crop, is what a short budget runs out of (ISBI membranes need a few
dozen pixels of context, not 256).

An epoch is :data:`EPOCH_STEPS` steps (``crops_per_image`` is set so), so that validation on whole
images comes every few minutes, not after every handful of steps on a small data set.

The clock is :func:`probe_clock`, looked up at call time so that tests replace it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

from pixlearn.engine.plan import BudgetPlan, choose, probe_seconds_per_step

__all__ = ["CROP_SIZES", "EPOCH_STEPS", "MIN_STEPS", "budget_candidates", "plan_segment_budget", "probe_clock", "training_side"]

#: Crop sizes the plan chooses from (multiples of 32), the cheapest first.
CROP_SIZES = (128, 160, 192, 256)
#: Optimiser steps an epoch aims at (crops per image follow from it).
EPOCH_STEPS = 25
#: Optimiser steps the chosen candidate must afford within the budget.
MIN_STEPS = 250
#: Share of the budget kept for validation on whole images and the stop.
RESERVE = 0.15


def probe_clock() -> float:
    """Seconds for timing the probe steps (:func:`time.perf_counter`)."""
    return time.perf_counter()


def training_side(index: Any, indices: Sequence[int], *, limit: int = 64) -> int:
    """The median shorter side (pixels) of the training images (image headers only, at most ``limit`` of them)."""
    from PIL import Image

    sides = []
    step = max(len(indices) // limit, 1)
    for i in list(indices)[::step][:limit]:
        rec = index.records[i]
        if rec.size is not None:
            sides.append(min(rec.size))
            continue
        try:
            with Image.open(rec.path) as im:
                sides.append(min(im.size))
        except OSError:
            continue
    if not sides:
        return CROP_SIZES[-1]
    return int(sorted(sides)[len(sides) // 2])


def crops_per_image(n_train: int, batch: int) -> int:
    """Crops per training image so that an epoch is about :data:`EPOCH_STEPS` steps.

    >>> crops_per_image(14, 8), crops_per_image(1000, 8)
    (15, 1)
    """
    return min(max(math.ceil(EPOCH_STEPS * batch / max(n_train, 1)), 1), 4096)


def budget_candidates(side: int, n_train: int, *, multiple: int = 32) -> list[dict[str, int]]:
    """The settings the plan chooses from, the cheapest first.

    Examples
    --------
    >>> budget_candidates(512, 14)
    [{'img_size': 128, 'batch': 4, 'crops_per_image': 8}, {'img_size': 128, 'batch': 8, 'crops_per_image': 15}, {'img_size': 160, 'batch': 8, 'crops_per_image': 15}, {'img_size': 192, 'batch': 8, 'crops_per_image': 15}, {'img_size': 256, 'batch': 8, 'crops_per_image': 15}]
    >>> [c["img_size"] for c in budget_candidates(40, 8)]
    [32, 32]
    """
    sizes = [s for s in CROP_SIZES if s <= side and s % multiple == 0]
    if not sizes:
        sizes = [max((side // multiple) * multiple, multiple)]
    out = [{"img_size": sizes[0], "batch": 4, "crops_per_image": crops_per_image(n_train, 4)}]
    out += [{"img_size": s, "batch": 8, "crops_per_image": crops_per_image(n_train, 8)} for s in sizes]
    return out


def _steps_per_epoch(n_train: int, cand: dict[str, Any]) -> int:
    crops = n_train * cand["crops_per_image"]
    return max(crops // cand["batch"] if crops > cand["batch"] else 1, 1)


def plan_segment_budget(task: Any, *, index: Any, train: Sequence[int], minutes: float, multiple: int = 32,
                        precision: str = "32", accelerator: str = "cpu") -> BudgetPlan:
    """Choose crop size, batch and crops per image for ``minutes`` of training by timing ``task``'s steps.

    Parameters
    ----------
    task : SegmentTask
        The run's network with its loss; a copy is trained for the probe (the original is untouched).
    index : DatasetIndex
        The mask dataset (image sizes are read from the training images' headers).
    train : sequence of int
        The training records.
    minutes : float
        The budget.
    multiple : int
        Crop sizes must be divisible by this (the encoder's output stride).
    precision, accelerator : str
        The run's (resolved) ``train.precision`` and ``train.accelerator``: the probe's steps run under the same autocast.

    Returns
    -------
    BudgetPlan
        ``choice`` holds ``img_size``, ``batch`` and ``crops_per_image``.
    """
    import torch

    from pixlearn.engine.trainer import probe_autocast

    n_train = max(len(train), 1)
    cands = budget_candidates(training_side(index, train), n_train, multiple=multiple)
    probe_task = copy.deepcopy(task)
    probe_task.train()
    params = [p for p in probe_task.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    in_chans = int(getattr(getattr(task.model, "pixlearn_spec", None), "in_chans", 3) or 3)
    gen = torch.Generator().manual_seed(0)
    warm = [True]

    def probe(cand: Any) -> float:
        b, s = int(cand["batch"]), int(cand["img_size"])
        x = torch.rand(b, in_chans, s, s, generator=gen)
        y = torch.randint(0, task.num_classes, (b, s, s), generator=gen)

        def step() -> None:
            with probe_autocast(precision, accelerator):  # the run's precision (bf16 on a CPU that has it)
                loss = probe_task.training_loss(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        sps = probe_seconds_per_step(step, steps=2, warmup=1 if warm[0] else 0, clock=lambda: probe_clock())
        warm[0] = False
        return sps

    try:
        return choose(cands, probe, budget_s=float(minutes) * 60.0, steps_per_epoch_fn=lambda c: _steps_per_epoch(n_train, dict(c)),
                      min_epochs=MIN_STEPS / EPOCH_STEPS, reserve=RESERVE, clock=lambda: probe_clock())
    finally:
        del probe_task, opt
