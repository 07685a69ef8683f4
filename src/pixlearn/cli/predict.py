"""``pixlearn predict RUN IMAGES...``: run a trained model (classify, classic, segment, restore) over files, folders and globs.

Start-up matters here: the run's task is read from its ``weights/model.json`` first, and only that
task's prediction module is imported (no Lightning, no torchvision, no matplotlib; a classic run
needs no torch at all).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit
from pixlearn.scale.cluster import Engine

__all__ = ["predict", "register"]


def _is_classic(run: Path) -> bool:
    cfg = run / "config.yaml"
    if not cfg.is_file() or (run / "weights" / "model.json").is_file():
        return False
    import yaml

    try:
        return (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("method") == "classic"
    except (OSError, yaml.YAMLError):
        return False


def _warn_below_baseline(run: Path) -> None:
    """One stderr line, before any prediction, when the run's model did not beat its baselines on its held-out split."""
    from pixlearn.engine.verdict import run_warning

    line = run_warning(run)  # reads metrics.json's verdict only (no torch)
    if line:
        sys.stderr.write(line + "\n")


def _flat(rows: list[dict[str, Any]], top_k: int) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV / table rows: path, label, score, label_2, score_2, ..., error."""
    columns = ["path", "label", "score"] + [c for k in range(2, top_k + 1) for c in (f"label_{k}", f"score_{k}")] + ["error"]
    out = []
    for r in rows:
        flat = {"path": r["path"], "label": r["label"], "score": r["score"], "error": r.get("error")}
        for k, entry in enumerate(r.get("top_k") or [], start=1):
            if k > 1:
                flat[f"label_{k}"], flat[f"score_{k}"] = entry["label"], entry["score"]
        out.append(flat)
    return out, columns


def predict(
    run: Annotated[Path, typer.Argument(help="A run folder of pixlearn train TASK or train classic (or its weights file), or an exported model (MODEL.onnx or its folder).", show_default=False)],
    images: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) and glob patterns.", show_default=False)],
    top_k: Annotated[int, typer.Option("--top-k", help="How many classes to list per image, best first.", min=1)] = 1,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output: table, json or csv.")] = OutputFormat.table,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch.", min=1)] = 64,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Decoding worker processes (default 0); with --engine ray, the model actors, 1..64 (default 2).", min=0, show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="segment, restore and detect runs: the output file for one image, else a folder.", show_default=False)] = None,
    overlay: Annotated[bool, typer.Option("--overlay/--no-overlay", help="Segmentation runs: also write <name>_overlay.png beside each mask.")] = False,
    score: Annotated[float, typer.Option("--score", help="Detection runs: lowest score kept, 0..1.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="Detection runs: class-wise NMS IoU above which the weaker box is dropped, 0..1.")] = 0.5,
    max_detections: Annotated[int, typer.Option("--max-detections", help="Detection runs: most detections per image, 1..1000.")] = 100,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Detection runs: detect on N x N windows (64..4096) and the whole image, merged (default: the run's training tile, if any).", show_default=False)] = None,
    engine: Annotated[Engine, typer.Option("--engine", help="local: this process; ray: model actors on Ray Data (classify, segment, restore and detect runs and their ONNX exports; pip install 'pixlearn[ray]').")] = Engine.local,
    address: Annotated[Optional[str], typer.Option("--address", help="--engine ray: ray://HOST:PORT, HOST:PORT or auto (default: start a local cluster of --workers CPUs).", show_default=False)] = None,
) -> None:
    """Run a trained model over images; one row per image (the help text is :func:`predict_help`)."""
    if out is not None:  # a file for one image, else a folder; checked before any work
        from pixlearn.cli._output import output_dir, output_file
        from pixlearn.io import WRITE_FORMATS

        output_file(out) if out.suffix.lower() in WRITE_FORMATS else output_dir(out)
    if engine is Engine.ray:  # model actors on Ray Data: the same rows and files
        _predict_ray(run, images, workers=workers, address=address, top_k=top_k, batch=batch, out=out, overlay=overlay,
                     device=device, progress=progress, format=format,
                     detect_options={"score": score, "iou": iou, "max_detections": max_detections, "tile": tile})
        return
    if address is not None:
        raise typer.BadParameter("--address names a Ray cluster: add --engine ray", param_hint="--address")
    workers = 0 if workers is None else workers
    from pixlearn.export.runtime import is_onnx_model

    if is_onnx_model(run):  # an exported model: onnxruntime, no torch
        _predict_onnx(run, images, top_k=top_k, batch=batch, out=out, overlay=overlay, device=device, progress=progress,
                      format=format, detect_options={"score": score, "iou": iou, "max_detections": max_detections, "tile": tile})
        return
    from pixlearn.tasks.registry import task as get_task, task_for_run

    spec = task_for_run(run)  # read from weights/model.json: imports only what this task needs
    name = spec.name if spec is not None else None
    _warn_below_baseline(run)
    if name == "segment":  # masks under --out, in the training masks' value coding
        from pixlearn.cli.segment import predict_segment

        predict_segment(run, images, out=out, overlay=overlay, device=device, progress=progress, format=format)
        return
    if name == "detect":  # boxes: COCO results (json) or one row per detection; drawn images under --out
        from pixlearn.cli.detect import predict_detect

        predict_detect(run, images, score=score, iou=iou, max_detections=max_detections, tile=tile, out=out, format=format,
                       device=device, progress=progress)
        return
    if name == "restore":
        _predict_restore(run, images, out=out, device=device, progress=progress, format=format)
        return
    if _is_classic(run):
        from pixlearn.classic import predict_classic

        rows = [{**r, "top_k": [{"label": r["label"], "score": r["score"]}] if r.get("label") is not None else []}
                for r in predict_classic(run, images)]
        top_k = 1
    else:
        rows = get_task("classify").load("predict")(run, images, top_k=top_k, batch_size=batch, workers=workers, device=device, progress=progress)
    _emit_classified(rows, images, top_k=top_k, format=format)


def _emit_classified(rows: list[dict[str, Any]], images: list[str], *, top_k: int, format: OutputFormat) -> None:
    if not rows:
        raise typer.BadParameter(f"no images found in {' '.join(images)}", param_hint="IMAGES")
    if format is OutputFormat.json:
        emit(rows, format)
    else:
        flat, columns = _flat(rows, top_k)
        emit(flat, format, columns=columns)
    bad = sum(1 for r in rows if r.get("error"))
    if bad:
        sys.stderr.write(f"{bad} of {len(rows)} image(s) could not be read; see the error column\n")
        raise typer.Exit(1)


def _predict_onnx(run: Path, images: list[str], *, top_k: int, batch: int, out: Optional[Path], overlay: bool, device: str,
                  progress: Optional[bool], format: OutputFormat, detect_options: Optional[dict] = None) -> None:
    """An exported ONNX model (a ``.onnx`` file or its export folder): the rows and files of its run, through onnxruntime."""
    from pixlearn.export import runtime

    if device not in ("cpu", "auto"):
        raise typer.BadParameter(f"{device!r}: exported ONNX models run on the CPU through onnxruntime; "
                                 "drop --device (or predict with the run folder on a GPU)", param_hint="--device")
    model = runtime.load_onnx_model(run)
    if model.task == "detect":  # the detection run's rows and files, from the exported graph
        from pixlearn.cli.detect import predict_detect

        predict_detect(model, images, out=out, format=format, progress=progress, **(detect_options or {}))  # type: ignore[arg-type]
        return
    if model.task == "classify":
        rows = runtime.predict_files(model, images, top_k=top_k, batch_size=batch, progress=progress)
        _emit_classified(rows, images, top_k=top_k, format=format)
        return
    if model.task == "restore":
        if out is None:
            raise typer.BadParameter("a restoration model writes images: give -o out.png for one image, or -o DIR", param_hint="--out")
        _emit_restored(runtime.restore_files(model, images, out=out, progress=progress), images, format=format, failed="read")
        return
    from pixlearn.cli.segment import emit_segment_rows

    emit_segment_rows(runtime.predict_segment_files(model, images, out=out, overlay=overlay, progress=progress), images,
                      out=out, format=format)


def _predict_restore(run: Path, images: list[str], *, out: Optional[Path], device: str, progress: Optional[bool], format: OutputFormat) -> None:
    """A restoration run: write each restored image under --out, print one row per image."""
    from pixlearn.tasks.registry import task as get_task

    restore_files = get_task("restore").load("predict")
    if out is None:
        raise typer.BadParameter("a restoration run writes images: give -o out.png for one image, or -o DIR", param_hint="--out")
    _emit_restored(restore_files(run, images, out=out, device=device, progress=progress), images, format=format, failed="restored")


def _emit_restored(rows: list[dict[str, Any]], images: list[str], *, format: OutputFormat, failed: str) -> None:
    """Print a restorer's rows (torch, onnxruntime or Ray); exit 1, saying how many could not be ``failed``, when some did not."""
    if not rows:
        raise typer.BadParameter(f"no images found in {' '.join(images)}", param_hint="IMAGES")
    emit(rows, format)
    bad = sum(1 for r in rows if r.get("error"))
    if bad:
        sys.stderr.write(f"{bad} of {len(rows)} image(s) could not be {failed}; see the error column\n")
        raise typer.Exit(1)


def _predict_ray(run: Path, images: list[str], *, workers: Optional[int], address: Optional[str], top_k: int, batch: int,
                 out: Optional[Path], overlay: bool, device: str, progress: Optional[bool], format: OutputFormat,
                 detect_options: dict[str, Any]) -> None:
    """``--engine ray``: the rows of the local path from Ray actors, emitted by the local path's code."""
    from pixlearn.scale.cluster import DEFAULT_WORKERS, MAX_WORKERS, check_address

    workers = DEFAULT_WORKERS if workers is None else workers
    if not 1 <= workers <= MAX_WORKERS:  # a usage error, before Ray starts
        raise typer.BadParameter(f"{workers}: with --engine ray, --workers is the number of model actors, 1..{MAX_WORKERS}",
                                 param_hint="--workers")
    if device not in ("cpu", "auto"):
        raise typer.BadParameter(f"{device!r}: --engine ray runs its model actors on CPUs (one thread each); drop --device "
                                 "or use --engine local", param_hint="--device")
    try:
        check_address(address)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--address") from exc
    from pixlearn.scale.predict import model_kind, plan_predict, ray_predict

    source, task = model_kind(run)
    if task == "restore" and out is None:
        raise typer.BadParameter("a restoration run writes images: give -o out.png for one image, or -o DIR", param_hint="--out")
    fmt = "csv" if format is OutputFormat.csv else "json"
    # the kind and options are checked before Ray starts
    plan_predict(run, [], out=out, batch_size=batch, **(detect_options if task == "detect" else {}), fmt=fmt)
    if source == "run":
        _warn_below_baseline(run)
    if task == "detect":  # the local path's emitter and exit code, with the rows from Ray
        from pixlearn.cli.detect import predict_detect

        predict_detect(run, images, out=out, format=format, progress=progress, ray={"workers": workers, "address": address},
                       **detect_options)
        return
    rows = ray_predict(run, images, workers=workers, address=address, batch_size=batch, top_k=top_k, out=out, overlay=overlay,
                       progress=progress)
    if task == "classify":
        _emit_classified(rows, images, top_k=top_k, format=format)
        return
    if task == "restore":
        _emit_restored(rows, images, format=format, failed="restored" if source == "run" else "read")
        return
    from pixlearn.cli.segment import emit_segment_rows

    emit_segment_rows(rows, images, out=out, format=format)


#: classic runs (train classic) are not a registry task: their line is written here.
_CLASSIC = "classic (train classic, HOG/LBP + SVM/forest/k-NN): the predicted class and score of each image."
#: exported models (pixlearn export) are not a registry task either.
_EXPORTED = ("exported models (pixlearn export RUN --format onnx: MODEL.onnx or its folder): the rows and files of their "
             "run (classify, segment, restore, detect), computed by onnxruntime on the CPU without torch.")


def predict_help() -> str:
    """``predict --help``: one paragraph per registered task (from :mod:`pixlearn.tasks.registry`), then classic runs."""
    from pixlearn.tasks.registry import tasks

    specs = tasks()
    head = f"Run a trained model over images; one row per image. It serves the runs of {', '.join(specs)} and classic."
    return "\n\n".join([
        head, *(spec.predict_help() for spec in specs.values()), _CLASSIC, _EXPORTED,
        "The task is read from the run folder. Unreadable files are reported in their row; exits 1 when some file could not "
        "be read (the other rows are still printed).",
    ])


def register(app: typer.Typer) -> None:
    app.command("predict", help=predict_help())(predict)
