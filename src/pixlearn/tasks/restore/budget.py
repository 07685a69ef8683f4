"""Size a restoration run for ``--minutes``: the network, the patches per epoch, from measured speed.

With ``--minutes N`` and no ``--epochs``, ``pixlearn train restore`` does not know how many steps this
machine (and whatever else runs on it) affords. A fixed recipe is either too small for a long budget or
never finishes its schedule in a short one (a 17 x 64 DnCNN at 48 px: about 3 patches a second on two
busy cores, the budget ended inside the first epoch of 5,760 patches). So a budgeted run:

* takes the budget recipe (:data:`BUDGET_RECIPE`) for everything the user did not set: the U-Net
  restorer (:data:`BUDGET_MODEL`; three levels of two conv-BN-ReLU each, a residual added to the input)
  for denoising and enhancement, 48 px patches, 16 patches a batch (more updates per second than larger
  batches on a CPU), Adam(W) at 2e-3 with a short warm-up and a cosine to 1 % that follows the clock,
  and the L2 loss (PSNR is an L2 score; the noise is Gaussian). The U-Net sees far more context per
  multiply-add than a plain stack: measured alone on 2 CPU cores for 10 minutes (bf16, Set12, sigma 25),
  the 32-wide U-Net (5,368 steps) scored 30.09 dB (a trial of the same recipe: 30.08) where the best
  DnCNN of its ladder, 15 x 32 with 6,231 steps, scored 29.55 dB (non-local means: 28.67;
  ``benchmarks/results/denoise_defaults*.json``).
  A user's ``--depth`` / ``down`` or ``--model dncnn`` keeps the DnCNN recipe: a full-resolution stack
  with batch normalisation (Zhang et al. 2017). FFDNet's half-resolution trick (``--set model.down=2``)
  was that recipe until measured: in 10 minutes a 15 x 64 stack at half resolution reached 27.60 dB on
  the val split (non-local means: 27.79) where a 15 x 32 stack at full resolution reached 28.25;
* offers the engine's planner (:func:`pixlearn.engine.plan.choose`) a ladder of network sizes
  (:data:`UNET_LADDER`, widths 16 to 48; or :data:`DNCNN_LADDER`, from 6 x 32 up to DnCNN-S's 17 x 64),
  probes real optimiser steps on real training patches in the run's precision (bf16 autocast on a CPU
  that has it), and keeps the largest network that still affords the optimiser steps it wants
  (:func:`wanted_steps`: a U-Net :data:`UNET_STEPS`; a DnCNN :data:`STEPS_PER_LAYER` per layer, at least
  :data:`MIN_STEPS`). A deeper residual stack needs more updates before it pays back: measured alone on
  2 CPU cores in 10 minutes in fp32, 10 x 32 with 2,104 steps scored 29.25 dB on Set12, 15 x 32 with
  2,307 steps 28.92 and 15 x 48 with 1,007 steps 28.60;
* sets ``patches_per_image`` so that the affordable steps make about :data:`EPOCHS` epochs, each
  ending in a validation on the fixed centre crops (the best one is kept).

Options the user gave (``--depth``, ``--width``, ``--img-size``, ``--batch``, ``--lr``,
``--patches-per-image``, ``--model``...) are kept: the ladder then only varies what is left, and a
single candidate is still timed to size the epochs.

Only the cheapest candidate is always timed; a larger one is timed only when its cost, extrapolated
from the cheapest by its multiply-adds per pixel, puts it within reach of its wanted steps (so a
short budget does not spend itself on probing). The clock is :func:`probe_clock`, looked up at call
time so that tests replace it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pixlearn.engine.plan import BudgetPlan, choose, probe_seconds_per_step
from pixlearn.engine.trainer import probe_autocast

__all__ = [
    "BUDGET_MODEL",
    "BUDGET_RECIPE",
    "DNCNN_LADDER",
    "UNET_LADDER",
    "UNET_STEPS",
    "EPOCHS",
    "MIN_STEPS",
    "STEPS_PER_LAYER",
    "wanted_steps",
    "RESERVE",
    "budget_overrides",
    "candidate_cost",
    "ladder",
    "plan_restore_budget",
    "plan_run",
    "probe_clock",
    "wants_plan",
]

#: Network sizes (dncnn, at full resolution) from the cheapest to the most expensive; the last is DnCNN-S.
DNCNN_LADDER: tuple[dict[str, int], ...] = (
    {"depth": 6, "width": 32},
    {"depth": 10, "width": 32},
    {"depth": 15, "width": 32},
    {"depth": 15, "width": 48},
    {"depth": 17, "width": 64},
)
#: U-Net restorer sizes (3 levels, width of the first level) from the cheapest to the most expensive.
UNET_LADDER: tuple[dict[str, int], ...] = ({"width": 16}, {"width": 24}, {"width": 32}, {"width": 48})
#: Optimiser steps a U-Net candidate must afford.
UNET_STEPS = 3000
#: The network a budgeted denoising or enhancement run trains when the user names none (nor a dncnn's depth or down).
BUDGET_MODEL = "unet"
#: What a budgeted run uses for every option the user did not set (flat option names).
BUDGET_RECIPE: dict[str, Any] = {"model": BUDGET_MODEL, "down": 1, "bn": True, "patch": 48, "batch": 16, "lr": 2e-3, "loss": "l2"}
#: Optimiser steps any chosen network must afford within the budget.
MIN_STEPS = 1200
#: ... and per layer of a dncnn's depth (a deeper stack wants more: 10 layers 1,800 steps, 17 layers 3,060).
STEPS_PER_LAYER = 180
#: Epochs (validations on the centre crops) the affordable steps are cut into.
EPOCHS = 8
#: Share of the budget kept for validation and the stop.
RESERVE = 0.05
#: Largest share of the budget the probing may take before it stops timing larger networks.
_PROBE_SHARE = 0.1
#: A larger network is timed when its extrapolated steps reach this share of its wanted steps (a small network's step
#: carries more fixed overhead per multiply-add, so the extrapolation overstates a larger one's cost).
_TIME_IF = 0.3

#: Flat option name -> the config field that says whether the user set it.
_FIELDS = {
    "model": ("model", "name"), "levels": ("model", "levels"), "depth": ("model", "depth"), "width": ("model", "width"), "bn": ("model", "bn"), "down": ("model", "down"),
    "patch": ("data", "patch"), "batch": ("data", "batch_size"), "lr": ("optim", "lr"), "loss": ("train", "loss"),
    "patches_per_image": ("data", "patches_per_image"),
}
_ALIASES = {"patch": ("patch", "img_size"), "batch": ("batch", "batch_size")}


def probe_clock() -> float:
    """Seconds for timing the probe steps (:func:`time.perf_counter`)."""
    return time.perf_counter()


def _given(name: str, options: Mapping[str, Any], set: Sequence[str]) -> bool:
    """Whether the user set the flat option ``name`` (a keyword / CLI flag, or ``--set section.field=``)."""
    keys = _ALIASES.get(name, (name,))
    if any(options.get(k) is not None for k in keys):
        return True
    field = _FIELDS[name][1]
    return any(str(text).split("=", 1)[0].strip().split(".")[-1] in (field, *keys) for text in set or ())


def wants_plan(cfg: Any, *, budget_epochs: int) -> bool:
    """A run is planned when it has a budget and its epoch count is the budget's (no ``--epochs`` given), not k-fold."""
    t = cfg.train
    return bool(t.minutes) and int(t.epochs) == int(budget_epochs) and not t.folds > 1 and not t.fold


def budget_overrides(cfg: Any, *, options: Mapping[str, Any], set: Sequence[str] = (), config_given: bool = False) -> dict[str, Any]:
    """The :data:`BUDGET_RECIPE` options the user did not set (a dncnn's size options only for a dncnn).

    The network becomes :data:`BUDGET_MODEL` unless the user named one (``--model``, ``--set model.name=``, a
    ``--config`` file: ``config_given``), gave a dncnn's ``--depth`` / ``down``, starts from ``--weights``, or
    the task is super-resolution.

    Examples
    --------
    >>> from pixlearn.tasks.restore.config import RestoreConfig
    >>> cfg = RestoreConfig.from_overrides(minutes=10)
    >>> sorted(budget_overrides(cfg, options={"minutes": 10, "batch": 8}))
    ['loss', 'lr', 'model', 'patch']
    >>> sorted(budget_overrides(cfg, options={"minutes": 10, "depth": 10}))  # a dncnn's depth keeps the dncnn
    ['batch', 'bn', 'down', 'loss', 'lr', 'patch']
    """
    out: dict[str, Any] = {}
    keep_model = (config_given or bool(cfg.model.weights) or cfg.data.task == "super-resolution"
                  or cfg.model.depth is not None or cfg.model.down is not None
                  or any(_given(k, options, set) for k in ("model", "depth", "down")))
    model = cfg.model.name if keep_model else BUDGET_MODEL
    for name, value in BUDGET_RECIPE.items():
        if name == "model":
            if not keep_model and model != cfg.model.name:
                out[name] = value
            continue
        if name in ("down", "bn") and (model != "dncnn" or cfg.model.weights):
            continue
        if name == "loss" and cfg.data.task != "denoise":
            continue
        if name == "down" and cfg.data.task == "super-resolution":
            continue
        if not _given(name, options, set):
            out[name] = value
    return out


def ladder(cfg: Any, *, options: Mapping[str, Any], set: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The candidates: :data:`DNCNN_LADDER` or :data:`UNET_LADDER` with the user's own sizes kept; one empty candidate
    for other models and for a network from weights."""
    ladders = {"dncnn": DNCNN_LADDER, "unet": UNET_LADDER}
    if cfg.model.name not in ladders or cfg.model.weights:
        return [{}]
    fixed = {k: getattr(cfg.model, k) for k in ("depth", "width") if _given(k, options, set)}
    out: list[dict[str, Any]] = []
    for cand in ladders[cfg.model.name]:
        c = {k: fixed.get(k, v) for k, v in cand.items()}
        if c not in out:
            out.append(c)
    return out


def wanted_steps(candidate: Mapping[str, Any], model: str = "dncnn") -> int:
    """Optimiser steps a candidate must afford: a dncnn :data:`STEPS_PER_LAYER` per layer of depth, at least
    :data:`MIN_STEPS`; a unet :data:`UNET_STEPS`; another model :data:`MIN_STEPS`.

    >>> wanted_steps({"depth": 6, "width": 32}), wanted_steps({"depth": 10, "width": 32}), wanted_steps({})
    (1200, 1800, 1200)
    >>> wanted_steps({"width": 32}, "unet")
    3000
    """
    if model == "unet":
        return UNET_STEPS
    depth = candidate.get("depth")
    return max(MIN_STEPS, STEPS_PER_LAYER * int(depth)) if depth else MIN_STEPS


def candidate_cost(candidate: Mapping[str, Any], *, down: int = 2) -> float:
    """Multiply-adds per output pixel of a dncnn candidate (relative units: ``depth * width**2 / down**2``); for the
    candidates of one U-Net ladder (same levels) the ratios are the same, ``width**2``.

    >>> candidate_cost({"depth": 15, "width": 64}) / candidate_cost({"depth": 15, "width": 32}, down=1)
    1.0
    """
    return float(candidate.get("depth", 17)) * float(candidate.get("width", 64)) ** 2 / float(max(down, 1)) ** 2


def _probe_batch(prep: Any) -> Any:
    """One real training batch of the prepared run (first patches of the seeded order)."""
    from pixlearn.tasks.restore.data import collate_pairs

    ds = prep.loaders.train_ds
    n = min(prep.loaders.batch_size, len(ds))
    return collate_pairs([ds[i] for i in range(n)])


def _step_fn(net: Any, batch: Any, *, lr: float, loss: str, channels_last: bool, autocast: Any = None) -> Callable[[], None]:
    import contextlib

    import torch

    from pixlearn.tasks.restore.module import RestoreTask

    task = RestoreTask(net, loss=loss)  # type: ignore[arg-type]
    task.train()
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    images, targets = batch.images, batch.targets
    if channels_last:
        task.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast() if autocast else contextlib.nullcontext():  # the run's precision (bf16 on a CPU that has it)
            loss_value = task.training_loss(images, targets)
        loss_value.backward()
        opt.step()

    return step


def plan_restore_budget(
    prep: Any,
    *,
    candidates: Sequence[Mapping[str, Any]],
    minutes: float,
    n_train: int,
    build: Callable[[Mapping[str, Any]], Any],
    probe: Callable[[Mapping[str, Any]], float] | None = None,
    steps: int = 2,
    user_patches_per_image: int | None = None,
) -> BudgetPlan:
    """Time the candidates' optimiser steps on ``prep``'s training patches and choose for ``minutes``.

    Parameters
    ----------
    prep
        The run prepared with the budget recipe (its training patches and batch size are used).
    candidates : sequence of mappings
        Network options from the cheapest to the most expensive (:func:`ladder`).
    minutes : float
        The training budget.
    n_train : int
        Training images (an epoch cuts ``patches_per_image`` patches from each).
    build : callable
        ``build(candidate) -> nn.Module``: a fresh network of that size (the run's own stays untouched).
    probe : callable, optional
        ``probe(candidate) -> seconds per step``; default: time ``steps`` real steps (after one warm-up)
        with :func:`probe_clock`. Tests pass their own.
    user_patches_per_image : int, optional
        The user's ``--patches-per-image``: kept, and the epochs follow from it.

    Returns
    -------
    BudgetPlan
        ``choice`` holds the network options and ``patches_per_image``; ``steps_per_epoch`` and
        ``epochs`` describe the run as it will train.
    """
    cfg = prep.cfg
    batch_size = int(cfg.data.batch_size)
    budget_s = float(minutes) * 60.0
    down = int(cfg.model.down or 1) if cfg.model.name == "dncnn" else 1
    lr, loss, channels_last = float(cfg.optim.lr or 1e-3), str(cfg.train.loss or "l2"), bool(cfg.train.channels_last)
    model = str(cfg.model.name)

    def want(c: Mapping[str, Any]) -> int:
        return wanted_steps(c, model)

    measured: dict[str, float] = {}
    estimated: list[dict[str, Any]] = []

    def key(c: Mapping[str, Any]) -> str:
        return repr(sorted(c.items()))

    def real(c: Mapping[str, Any]) -> float:
        net = build(c)
        step = _step_fn(net, batch, lr=lr, loss=loss, channels_last=channels_last,
                        autocast=lambda: probe_autocast(str(cfg.train.precision), str(cfg.train.accelerator)))
        return probe_seconds_per_step(step, steps=steps, warmup=1, clock=probe_clock)

    timer = probe or real
    batch = _probe_batch(prep) if probe is None else None
    cheapest = dict(candidates[0])
    started = probe_clock()

    def probe_one(c: Mapping[str, Any]) -> float:
        k = key(c)
        if k in measured:
            return measured[k]
        if key(cheapest) not in measured:
            measured[key(cheapest)] = float(timer(cheapest))
        if k not in measured:
            base = measured[key(cheapest)]
            guess = base * max(candidate_cost(c, down=down), 1e-9) / max(candidate_cost(cheapest, down=down), 1e-9)
            affords = budget_s * (1.0 - RESERVE) / max(guess, 1e-9)
            spent = probe_clock() - started
            if affords < _TIME_IF * want(c) or spent > _PROBE_SHARE * budget_s:
                estimated.append({**dict(c), "seconds_per_step": round(guess, 4)})
                return guess  # clearly out of reach (or probing has cost enough): extrapolated, not timed
            measured[k] = float(timer(c))
        return measured[k]

    plan = choose(candidates, probe_one, budget_s=budget_s, steps_per_epoch_fn=lambda c: math.ceil(want(c) / EPOCHS),
                  min_epochs=EPOCHS, reserve=RESERVE, clock=probe_clock)
    # the reasons in optimiser steps (the planner's "epochs" here are wanted_steps / EPOCHS steps, not the run's epochs)
    from pixlearn.engine.plan import describe_choice

    others = [t for t in plan.probed if t.choice != plan.choice]
    plan.reasons = [f"{describe_choice(t.choice)} would afford ~{t.steps:,} steps, < {want(t.choice):,} wanted" for t in others]
    if plan.steps < want(plan.choice):
        plan.reasons.append(f"even the cheapest affords only ~{plan.steps:,} steps, < {want(plan.choice):,} wanted")
    # cut the affordable steps into about EPOCHS epochs (or keep the user's patches per image)
    if user_patches_per_image:
        ppi = int(user_patches_per_image)
    else:
        ppi = max(int(round(plan.steps * batch_size / (EPOCHS * max(n_train, 1)))), 1)
    per_epoch = max((n_train * ppi) // batch_size, 1)
    plan.choice = {**plan.choice, "patches_per_image": ppi}
    plan.steps_per_epoch = per_epoch
    plan.epochs = round(plan.steps / per_epoch, 1)
    plan.estimated = estimated  # type: ignore[attr-defined]
    return plan


def recipe_line(cfg: Any, plan: BudgetPlan, *, n_train: int, given: Sequence[str]) -> str:
    """The recipe in one line: network, patches, batch, optimiser, schedule, loss, and what the user fixed."""
    m, d = cfg.model, cfg.data
    size = f"{m.name} {m.depth} x {m.width}" if m.name == "dncnn" else m.name
    if m.name == "dncnn":
        size += f"{', half resolution (pixel-unshuffle 2)' if (m.down or 1) == 2 else ''}{', BN' if m.bn else ''}, residual"
    elif m.name == "unet":
        size += f" {m.width or 32} wide, {m.levels or 3} levels{', BN' if m.bn is not False else ''}, residual"
    ppi = plan.choice.get("patches_per_image", d.patches_per_image)
    text = (f"recipe: {size}; {d.patch} px patches, {ppi} per image x {n_train} images = {n_train * ppi:,} per epoch, batch "
            f"{d.batch_size}; {cfg.optim.optimizer} lr {cfg.optim.lr:g}, cosine to {cfg.schedule.min_lr_ratio:g}x by the clock; "
            f"loss {cfg.train.loss}")
    if given:
        text += f"; kept as given: {', '.join(given)}"
    return text


def plan_dict(plan: BudgetPlan, *, recipe: str) -> dict[str, Any]:
    """``plan.to_dict()`` with the extrapolated candidates and the recipe line (for manifest.json)."""
    d = plan.to_dict()
    d["estimated"] = copy.deepcopy(getattr(plan, "estimated", []))
    d["min_steps"] = MIN_STEPS
    d["steps_per_layer"] = STEPS_PER_LAYER
    d["unet_steps"] = UNET_STEPS
    d["recipe"] = recipe
    return d


def plan_run(
    prep: Any, *, prepare: Callable[[Any, Any], Any], options: Mapping[str, Any], set: Sequence[str] = (), progress: bool | None = None,
    probe: Callable[[Mapping[str, Any]], float] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Plan a budgeted run prepared with the budget recipe, rebuild it with the choice, and say the plan.

    Parameters
    ----------
    prep
        The prepared run (``tasks.restore.train``): config, data plan, network, patch datasets.
    prepare : callable
        ``prepare(cfg, data_plan) -> prep`` (seeded: the chosen network starts from the same weights every time).
    options, set
        The user's flat options and ``--set`` assignments (what they set is kept).
    progress : bool, optional
        ``False`` keeps the plan out of stderr (it is in the manifest either way).
    probe : callable, optional
        ``probe(candidate) -> seconds per step`` instead of timing real steps (tests).

    Returns
    -------
    (prep, dict)
        The run rebuilt with the chosen network and patches per epoch, and the plan for ``manifest.json["plan"]``.
    """
    import sys

    from pixlearn.models import create_restorer
    from pixlearn.tasks.restore.config import RestoreConfig

    cfg = prep.cfg
    spec = prep.net.pixlearn_spec
    n_train = len(prep.plan.train)

    def build(c: Mapping[str, Any]) -> Any:
        return create_restorer(cfg.model.name, in_chans=spec.in_chans, scale=spec.scale, **{**cfg.model.options(), **c})

    user_ppi = cfg.data.patches_per_image if _given("patches_per_image", options, set) else None
    plan = plan_restore_budget(prep, candidates=ladder(cfg, options=options, set=set), minutes=float(cfg.train.minutes),
                               n_train=n_train, build=build, probe=probe, user_patches_per_image=user_ppi)
    cfg = RestoreConfig.from_overrides(cfg, **plan.choice)
    prep = prepare(cfg, prep.plan)
    given = [name for name in _FIELDS if _given(name, options, set)]
    recipe = recipe_line(cfg, plan, n_train=n_train, given=given)
    if progress is not False:
        for line in [*plan.lines(), recipe]:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return prep, plan_dict(plan, recipe=recipe)
