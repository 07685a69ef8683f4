"""``pixlearn eval RUN --data DIR``: score a trained run folder on a labelled dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit
from pixlearn.cli._options import AllowOutsideRoot

__all__ = ["evaluate", "register"]

_HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top5_accuracy", "roc_auc_macro")


def evaluate(
    run: Annotated[Optional[Path], typer.Argument(help="A run folder (classification, segmentation, detection or restoration) or a detector .onnx; leave out with --method.", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Labelled dataset to score on (classes matched by name); restoration: clean images or degraded/ + clean/ pairs.", show_default=False)] = None,
    split: Annotated[str, typer.Option("--split", help="auto, test, val, train, holdout (the run's own held-out part) or all.")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write metrics.json, plots/ and report.html here.", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output: table, json (every metric) or csv.")] = OutputFormat.table,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch.", min=1)] = 64,
    workers: Annotated[int, typer.Option("--workers", help="Decoding worker processes.", min=0)] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr.", show_default=False)] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", help="Score a classical method under the same metrics, alone or beside RUN (repeatable): segmentation otsu, adaptive_threshold, kmeans, watershed; restoration nl_means, bilateral, tv, wavelet, median, bicubic, clahe, equalize.", show_default=False)] = None,
    sigma: Annotated[Optional[str], typer.Option("--sigma", help="Restoration: degrade the clean images with gaussian noise of this sigma (grey levels).", show_default=False)] = None,
    degrade: Annotated[Optional[str], typer.Option("--degrade", help="Restoration: degradation pipeline, e.g. 'blur:sigma=1.5+jpeg:quality=30' (default: the run's own).", show_default=False)] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", help="Restoration: super-resolution factor (bicubic downscaling).", min=2, show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Restoration: seed of the degradation.")] = 0,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Score RUN's model (or a classical --method) on DIR, naming the split the numbers come from.

    Classification: accuracy, F1, ROC AUC...; segmentation: IoU per class, mean IoU, Dice, pixel
    accuracy; detection: COCO's AP, AP50, AP75, AP small/medium/large (and mask AP) as pycocotools
    computes them, on a COCO, YOLO or VOC dataset; restoration: MSE, PSNR and SSIM on seeded
    degradations of DIR's clean images.
    With --split auto: DIR's test split if it has one; the run's own held-out images when DIR is
    the data it was trained on; otherwise every image of DIR.
    """
    if data is None:
        raise typer.BadParameter("give the dataset to score on", param_hint="--data")
    if out is not None:
        from pixlearn.cli._output import output_dir

        output_dir(out)
    from pixlearn.cli.eval_detect import evaluate_detect, is_detect_eval
    from pixlearn.cli.segment import evaluate_segment, is_segment_eval

    if run is not None and not method and is_detect_eval(run):  # a detection run or detector .onnx: COCO's AP, AP50, AP75, S/M/L (+ mask)
        evaluate_detect(run, data, split=split, out=out, device=device, progress=progress, format=format)
        return
    if is_segment_eval(run, method):  # a segmentation run, or --method otsu|adaptive_threshold|kmeans|watershed
        evaluate_segment(run, data, methods=method or [], split=split, seed=seed, out=out, device=device, progress=progress, format=format)
        return
    if _is_restoration(run, method):
        _evaluate_restore(run, data, methods=method or [], sigma=sigma, degrade=degrade, scale=scale, split=split, seed=seed,
                          out=out, device=device, progress=progress, format=format)
        return
    if run is None:
        raise typer.BadParameter("give a run folder (or --method for a classical baseline)", param_hint="RUN")
    from pixlearn.tasks.registry import task as get_task

    evaluate_run = get_task("classify").load("evaluate")

    result = evaluate_run(run, data, split=split, out=out, batch_size=batch, workers=workers, device=device, progress=progress)
    if format is OutputFormat.json:
        emit(result, format)
    else:
        row: list[dict[str, Any]] = [{"metric": k, f"{result['split']} (n={result['n']})": result[k]} for k in _HEADLINE if k in result]
        emit(row, format)
    sys.stderr.write(f"scored on: {result['source']}" + (f"; {result['skipped']} unreadable image(s) left out" if result.get("skipped") else "") + "\n")
    _say_verdict(result)
    if out is not None:
        sys.stderr.write(f"report: {Path(out) / 'report.html'}\n")


def _say_verdict(result: dict[str, Any]) -> None:
    """The model against its baselines on the scored split, in words (a warning when it does not beat them)."""
    verdict = result.get("verdict")
    if isinstance(verdict, dict) and verdict.get("sentence"):
        sys.stderr.write(f"{verdict['sentence']}\n")


def _is_restoration(run: Optional[Path], method: Optional[list[str]]) -> bool:
    from pixlearn.tasks.registry import task as get_task

    restore = get_task("restore")
    CLASSICAL_METHODS, is_restore_run = restore.load("classical_methods"), restore.load("is_run")

    if run is not None:
        return is_restore_run(run)
    return bool(method) and all(m in CLASSICAL_METHODS for m in method or [])


def _evaluate_restore(run: Optional[Path], data: Path, *, methods: list[str], format: OutputFormat, out: Optional[Path], **kw: Any) -> None:
    from pixlearn.tasks.registry import task as get_task

    evaluate_restore_folder = get_task("restore").load("evaluate")

    result = evaluate_restore_folder(data, run=run, methods=methods, out=out, **kw)
    if format is OutputFormat.json:
        emit(result, format)
    else:
        rows = [{"method": m, f"psnr ({result['split']}, n={s['n']})": round(s["psnr"], 3), "ssim": round(s["ssim"], 4),
                 "mse": s["mse"], "seconds": round(s["seconds"], 2)} for m, s in sorted(result["methods"].items(), key=lambda kv: -kv[1]["psnr"])]
        emit(rows, format)
    sys.stderr.write(f"scored on: {result['source']}; degradation: {result['degradation']} (seed {result['seed']})\n")
    _say_verdict(result)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
