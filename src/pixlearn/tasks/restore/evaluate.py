"""Score a restoration run, or classical methods, on a folder of clean images (or degraded/clean pairs).

:func:`evaluate_restore_folder` is what ``pixlearn eval`` runs for a restoration run folder or
for ``--method nl_means`` (no run): it picks the images (the run's own held-out images when the
folder is the one it was trained on, else the folder's test/ or val/ split, else every image),
degrades them with a seeded pipeline -- the run's own degradation by default -- and returns
MSE / PSNR / SSIM per method, with an optional ``metrics.json`` + crops PNG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.restore.metrics import CLASSICAL, evaluate_restoration, save_crops

__all__ = ["evaluate_restore_folder", "restoration_verdict", "PSNR_MARGIN_DB", "METHOD_NAMES"]

#: A restorer within this many dB of a baseline's PSNR does not clearly beat it.
PSNR_MARGIN_DB = 0.1

#: How the verdict names each classical method.
METHOD_NAMES = {
    "nl_means": "non-local means", "bilateral": "the bilateral filter", "tv": "total-variation denoising",
    "wavelet": "wavelet denoising", "median": "the median filter", "bicubic": "bicubic upscaling", "clahe": "CLAHE",
    "equalize": "histogram equalisation",
}


def restoration_verdict(
    summary: Mapping[str, Mapping[str, Any]], *, split: str, task: str = "denoise", classical: Sequence[str] | None = None,
) -> Any:
    """The model's PSNR against the degraded input and the best classical method, on the same images.

    Parameters
    ----------
    summary : mapping
        :func:`~pixlearn.tasks.restore.metrics.evaluate_restoration`'s ``summary``: ``model``, ``input`` (or
        ``bicubic`` for super-resolution) and the classical methods, each with ``psnr`` and ``n``.
    split : str
        The split the images came from.
    task : str
        ``denoise`` names the input "the noisy input", else "the degraded input".
    classical : sequence of str, optional
        The classical methods to consider (default: every method in ``summary`` but the model and the input).

    Returns
    -------
    pixlearn.engine.verdict.Verdict
        PSNR (dB), higher is better, margin :data:`PSNR_MARGIN_DB`.

    Examples
    --------
    >>> s = {"model": {"psnr": 28.9, "n": 12}, "input": {"psnr": 20.2, "n": 12}, "nl_means": {"psnr": 27.1, "n": 12}}
    >>> restoration_verdict(s, split="test").sentence()
    'On the test split (n=12), PSNR 28.90 dB beats the best classical method, non-local means (27.10 dB), by +1.80 dB and the noisy input (20.20 dB) by +8.70 dB.'
    """
    from pixlearn.engine.verdict import Verdict

    base_key = "bicubic" if "bicubic" in summary and "input" not in summary else "input"
    names = [m for m in (classical if classical is not None else summary) if m in summary and m not in ("model", base_key)]
    baselines: dict[str, float] = {}
    scored = [m for m in names if isinstance(summary[m].get("psnr"), (int, float))]
    if scored:
        best = max(scored, key=lambda m: summary[m]["psnr"])
        baselines[f"the best classical method, {METHOD_NAMES.get(best, best)}"] = summary[best]["psnr"]
    input_name = "bicubic upscaling" if base_key == "bicubic" else ("the noisy input" if task == "denoise" else "the degraded input")
    baselines[input_name] = summary[base_key]["psnr"]
    model = summary["model"]
    return Verdict(
        "PSNR", split, model.get("psnr"), baselines, higher_is_better=True, margin=PSNR_MARGIN_DB, n=model.get("n"), unit=" dB",
        digits=2, key="psnr", advice="a longer --minutes budget, more (or larger) clean training images, or a wider model",
    )


def _run_holdout(run: Path, root: Path) -> tuple[list[Path], str] | None:
    import json

    manifest = run / "manifest.json"
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data = m.get("data") or {}
    if Path(data.get("root", "")).resolve() != root.resolve():
        return None
    splits = data.get("splits") or {}
    for name in ("test", "val"):
        if splits.get(name):
            return [Path(p) for p in splits[name]], f"the run's own {name} images ({len(splits[name])}), never trained on"
    return None


def evaluate_restore_folder(
    data: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | None = None,
    methods: Sequence[str] = (),
    degrade: str | Sequence[Any] | None = None,
    sigma: float | str | None = None,
    scale: int | None = None,
    task: str | None = None,
    split: str = "auto",
    seed: int = 0,
    max_images: int | None = None,
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    tile: int = 256,
    progress: bool | None = None,
) -> dict[str, Any]:
    """MSE / PSNR / SSIM of a restoration run and/or classical methods on a folder.

    Parameters
    ----------
    data : path
        Clean images (optionally with ``train/ val/ test/``) or ``degraded/`` + ``clean/`` pairs.
    run : path, optional
        A ``pixlearn train restore`` run folder; scored as ``model``.
    methods : sequence of str
        Classical methods scored beside it (or alone): ``nl_means``, ``bilateral``, ``tv``,
        ``wavelet``, ``median``, ``bicubic``, ``clahe``, ``equalize``. Without a run and without
        methods, the task's classical methods.
    degrade, sigma, scale, task
        The degradation of clean images: a pipeline string, or gaussian noise of ``sigma`` grey
        levels, or bicubic downscaling by ``scale`` (``task="super-resolution"``). Default: the
        run's own degradation; without a run, one of them is required.
    split : {"auto", "test", "val", "train", "all"}
        ``auto``: the run's held-out images when ``data`` is the folder it trained on, else the
        folder's test split, else val, else every image.
    seed : int
        Seeds the degradation of image ``k`` (``sample_seed(seed, 0, k)``).
    out : path, optional
        Write ``metrics.json`` and ``crops.png`` there.

    Returns
    -------
    dict
        ``{"split", "source", "n", "degradation", "methods": {name: {psnr, ssim, mse, seconds, n}},
        "per_image": [...]}`` (PSNR in dB; MSE on [0, 1] images; super-resolution: luma, border cropped).
    """
    import json

    from pixlearn.tasks.restore.degrade import GaussianNoise, Pipeline, preset
    from pixlearn.tasks.restore.data import load_clean, plan_restore_data
    from pixlearn.tasks.restore.predict import load_restorer

    root = Path(data)
    restorer = load_restorer(run, device=device, tile=tile) if run is not None else None
    methods = list(methods)
    if restorer is None and not methods:
        methods = list(CLASSICAL[task or "denoise"])
    plan = plan_restore_data(root, mode=restorer.mode if restorer is not None else "auto", val_fraction=0.0, test_fraction=0.0, seed=seed)
    everything = plan.train + plan.val + plan.test
    if split == "auto":
        hold = _run_holdout(Path(run), root) if run is not None else None
        if hold is not None:
            wanted = {p.resolve() for p in hold[0]}
            sources, source = [s for s in everything if s.clean.resolve() in wanted], hold[1]
            split = "holdout"
        elif plan.test:
            sources, source, split = plan.test, "the folder's test split", "test"
        elif plan.val:
            sources, source, split = plan.val, "the folder's val split", "val"
        else:
            sources, source, split = everything, "every image of the folder", "all"
    elif split == "all":
        sources, source = everything, "every image of the folder"
    elif split in ("train", "val", "test"):
        sources, source = getattr(plan, split), f"the folder's {split} split"
        if not sources:
            raise ConfigError(f"{root}: no {split} split (it has {len(plan.train)} train, {len(plan.val)} val, {len(plan.test)} test images)")
    else:
        raise ConfigError(f"split must be auto, test, val, train or all, got {split!r}")
    if not sources:
        raise ConfigError(f"{root}: no images to score")
    if max_images:
        sources = sources[:max_images]

    pipeline = None
    if not plan.paired:
        if degrade is not None:
            pipeline = Pipeline.parse(degrade)
        elif sigma is not None:
            pipeline = preset("denoise", sigma=sigma)
        elif scale is not None or task == "super-resolution":
            same_size = restorer is not None and restorer.scale == 1
            pipeline = preset("super-resolution", scale=scale or 2, restore_size=same_size)
        elif restorer is not None and restorer.degradation:
            pipeline = Pipeline.parse(restorer.degradation)
        elif task == "enhance":
            pipeline = preset("enhance")
        else:
            raise ConfigError(
                f"{root} holds clean images: say how to degrade them with --sigma (gaussian noise), --degrade PIPELINE "
                "or --scale (super-resolution), or give a run folder (its own degradation is used)"
            )
    noise_sigma = None  # what the classical denoisers are tuned to
    if pipeline is not None and len(pipeline.steps) == 1 and isinstance(pipeline.steps[0], GaussianNoise):
        v = pipeline.steps[0].sigma
        noise_sigma = None if isinstance(v, tuple) else float(v)
    sr = pipeline.scale if pipeline is not None else plan.scale
    mode = restorer.mode if restorer is not None else plan.mode
    clean = [load_clean(s.clean, mode) for s in sources]
    degraded = [load_clean(s.degraded, mode) for s in sources] if plan.paired else None  # type: ignore[arg-type]
    ev = evaluate_restoration(
        clean, restorer=restorer, pipeline=pipeline, degraded=degraded, methods=methods, sigma=noise_sigma,
        names=[s.clean.name for s in sources], seed=seed, crop_border=sr if sr > 1 else 0, y_channel=sr > 1, progress=progress,
    )
    result: dict[str, Any] = {
        "task": "restore",
        "run": None if run is None else str(run),
        "data": str(root),
        "split": split,
        "source": source,
        "n": len(sources),
        "degradation": "paired folders" if pipeline is None else pipeline.to_string(),
        "seed": seed,
        "units": "psnr in dB, mse on images scaled to [0, 1]" + (f"; luma (Y), border of {sr} px cropped" if sr > 1 else ""),
        "methods": ev.summary,
        "per_image": ev.rows,
    }
    if restorer is not None:  # the run's model against the input and the best classical method scored here
        result["verdict"] = restoration_verdict(ev.summary, split=split, task=restorer.restore_task or task or "denoise",
                                                classical=[m for m in methods if m != "bicubic"]).to_dict()
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        cols = [m for m in methods if m != "bicubic"] + (["model"] if restorer is not None else [])
        save_crops(out / "crops.png", ev.examples, columns=cols, rows=ev.rows, title=f"{source}: degraded | methods | clean")
    return result
