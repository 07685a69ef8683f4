"""Segmentation branches of ``pixlearn predict`` and ``pixlearn eval`` (a segmentation run, or ``--method otsu|kmeans|...``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["SEGMENT_METHODS", "is_segment_eval", "evaluate_segment", "predict_segment"]

#: Classical segmenters ``pixlearn eval --method`` scores on a mask dataset.
SEGMENT_METHODS = ("otsu", "adaptive_threshold", "kmeans", "watershed")
_HEADLINE = ("mean_iou", "mean_dice", "pixel_accuracy", "foreground_iou", "foreground_dice")


def is_segment_eval(run: Optional[Path], methods: Optional[list[str]]) -> bool:
    """A segmentation run folder, or (without a run) classical segmentation methods."""
    if run is not None:
        from pixlearn.tasks.registry import task as get_task

        return get_task("segment").load("is_run")(run)
    return any(m in SEGMENT_METHODS for m in methods or [])  # a misspelt partner gets a did-you-mean there


def _row(name: str, m: dict[str, Any], **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"method": name, f"mean_iou ({m.get('split')}, n={m.get('n')})": m.get("mean_iou")}
    row.update({k: m.get(k) for k in _HEADLINE[1:] if m.get(k) is not None})
    row.update(extra)
    return row


def evaluate_segment(
    run: Optional[Path], data: Path, *, methods: list[str], split: str, seed: int, out: Optional[Path], device: str,
    progress: Optional[bool], format: OutputFormat,
) -> None:
    """Score a segmentation run and/or classical segmenters on DIR under the same metrics; one row each."""
    from pixlearn._core.names import check_name
    from pixlearn.tasks.registry import task as get_task

    evaluate_classic_segmentation = get_task("segment").load("classical")

    methods = [check_name(m, SEGMENT_METHODS, what="segmentation method") for m in methods]
    results: dict[str, Any] = {}
    rows = []
    val_fraction, test_fraction = 0.2, 0.0
    if run is not None:
        import yaml

        res = get_task("segment").load("evaluate")(run, data, split=split, out=out, device=device, progress=progress)
        results[str(run)] = res
        rows.append(_row(Path(run).name, res))
        cfg_path = Path(run) / "config.yaml"
        if cfg_path.is_file():  # classical methods get the run's own split plan
            cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
            val_fraction = float(cfg.get("data", {}).get("val_fraction", val_fraction))
            test_fraction = float(cfg.get("data", {}).get("test_fraction", test_fraction))
            seed = int(cfg.get("train", {}).get("seed", seed))
        sys.stderr.write(f"{Path(run).name} scored on: {res['source']}\n")
        verdict = res.get("verdict")
        if isinstance(verdict, dict) and verdict.get("sentence"):  # against the best classical segmenter, in words
            sys.stderr.write(f"{verdict['sentence']}\n")
    for m in methods:
        res = evaluate_classic_segmentation(data, m, split="auto" if split == "auto" else split, val_fraction=val_fraction,
                                            test_fraction=test_fraction, seed=seed)
        results[m] = res
        rows.append(_row(m, res, fit_seconds=res["fit_seconds"], options=str(res["params"])))
        sys.stderr.write(f"{m} scored on: {res['source']}\n")
    if format is OutputFormat.json:
        emit(results if len(results) > 1 else next(iter(results.values())), format)
    else:
        emit(rows, format)


def predict_segment(
    run: Path, images: list[str], *, out: Optional[Path], overlay: bool, device: str, progress: Optional[bool], format: OutputFormat,
) -> None:
    """A segmentation run: write one mask PNG per image under --out (and overlays); print one row each."""
    from pixlearn.tasks.registry import task as get_task

    rows = get_task("segment").load("predict")(run, images, out=out, overlay=overlay, device=device, progress=progress)
    emit_segment_rows(rows, images, out=out, format=format)


def emit_segment_rows(rows: list[dict[str, Any]], images: list[str], *, out: Optional[Path], format: OutputFormat) -> None:
    """Print a segmenter's rows (torch, onnxruntime or Ray: one emitter); exit 1 when some file could not be read."""
    if not rows:
        raise typer.BadParameter(f"no images found in {' '.join(images)}", param_hint="IMAGES")
    if format is OutputFormat.json:
        emit(rows, format)
    else:
        flat = [{"path": r["path"], "size": f"{r['width']}x{r['height']}" if r["width"] else None, "mask": r["mask"],
                 "classes": ", ".join(f"{k} {v:.1%}" for k, v in r["classes"].items()), "error": r["error"]} for r in rows]
        emit(flat, format)
    if out is None:
        sys.stderr.write("no --out given: nothing written (pass -o DIR to save the masks)\n")
    bad = sum(1 for r in rows if r.get("error"))
    if bad:
        sys.stderr.write(f"{bad} of {len(rows)} image(s) could not be read; see the error column\n")
        raise typer.Exit(1)
