"""``pixlearn detect IMAGES``: the 80 COCO object classes in any photo with the YOLOX-Nano ONNX detector, no training.

The weights file ``yolox_nano_coco80.onnx`` is taken from ``--weights FILE``, else from the local weights folders
(``$PIXLEARN_WEIGHTS``, then ``<cache>/weights``); without it the command stops with a message naming the file,
the folders searched and the fixes. :func:`predict_detect` also serves ``pixlearn predict RUN`` for detection runs.
Nothing heavy is imported until the command runs (onnxruntime and OpenCV for YOLOX; torch only for a trained run
or ``--tile``).
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["detect", "predict_detect", "register"]


def predict_detect(
    run: Optional[Path], images: list[str], *, score: float, iou: float, max_detections: int, tile: Optional[int],
    out: Optional[Path], format: OutputFormat, device: str = "cpu", progress: Optional[bool] = None,
    ray: Optional[dict[str, Any]] = None,
) -> None:
    """Detect with ``run`` (a detection run folder, a YOLOX .onnx file, or None for the COCO YOLOX-Nano); print the
    detections on stdout (COCO results for json, one row per detection for csv and table); exit 1 when some file
    could not be read. ``ray`` (``{"workers": N, "address": ...}``, for ``--engine ray``) computes the same rows and
    files with :func:`pixlearn.scale.predict.ray_predict`."""
    from pixlearn.tasks.registry import task as get_task

    detect_task = get_task("detect")
    if out is not None:  # a file for one image, else a folder; checked before any work
        from pixlearn.cli._output import output_dir, output_file
        from pixlearn.io import WRITE_FORMATS

        output_file(out) if out.suffix.lower() in WRITE_FORMATS else output_dir(out)
    fmt = "csv" if format is OutputFormat.csv else "json"
    if ray is not None:  # model actors on Ray: the local rows, files and results file
        from pixlearn.scale.predict import ray_predict

        rows = ray_predict(run, images, score=score, iou=iou, max_detections=max_detections, tile=tile, out=out, fmt=fmt,
                           progress=progress, **ray)  # type: ignore[arg-type]
    else:
        rows = detect_task.load("predict")(run, images, score=score, iou=iou, max_detections=max_detections, tile=tile,
                                           out=out, fmt=fmt, device=device, progress=progress)
    if not rows:
        raise typer.BadParameter(f"no images found in {' '.join(images)}", param_hint="IMAGES")
    module = import_module(detect_task.entry["predict"].partition(":")[0])  # the module the line above loaded
    if format is OutputFormat.json:
        emit(module.coco_results(rows), format)
    else:
        emit(module.detection_table(rows), format, columns=list(module.TABLE_COLUMNS))
    found = sum(r["count"] for r in rows)
    bad = sum(1 for r in rows if r.get("error"))
    where = ""
    if out is not None:
        where = f"; drawn image in {out}" if out.suffix else f"; drawn images and {module.RESULTS_NAME}.{fmt} in {out}"
    sys.stderr.write(f"{found} detection(s) in {len(rows) - bad} image(s){where}\n")
    if bad:
        sys.stderr.write(f"{bad} of {len(rows)} image(s) could not be read; see the error column\n")
        raise typer.Exit(1)


def detect(
    images: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) and glob patterns.", show_default=False)],
    weights: Annotated[Optional[Path], typer.Option("--weights", help="The YOLOX ONNX file (default: yolox_nano_coco80.onnx in $PIXLEARN_WEIGHTS, then <cache>/weights).", show_default=False)] = None,
    score: Annotated[float, typer.Option("--score", help="Lowest score kept, 0..1.")] = 0.25,
    iou: Annotated[float, typer.Option("--iou", help="Class-wise NMS: a box overlapping a stronger one of its class by more than this IoU is dropped, 0..1.")] = 0.5,
    max_detections: Annotated[int, typer.Option("--max-detections", help="Most detections per image, 1..1000.")] = 100,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Also detect on N x N windows (64..4096) and merge: finds small objects in large images.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="A folder for the drawn images and detections.json (or .csv with --format csv); for one image, a file for its drawn image.", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="stdout: json (COCO results), csv or table (one row per detection).")] = OutputFormat.table,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).", show_default=False)] = None,
) -> None:
    """Find the 80 COCO object classes in images with the YOLOX-Nano detector, no training.

    Person, car, dog, cup, ... Boxes are xyxy pixels of each image; COCO results JSON (--format json) has bbox as x, y, width, height and COCO's category ids.
    Unreadable files are reported in their row; exits 1 when some file could not be read.
    """
    predict_detect(weights, images, score=score, iou=iou, max_detections=max_detections, tile=tile, out=out,
                   format=format, progress=progress)


def register(app: typer.Typer) -> None:
    app.command("detect", help=detect.__doc__)(detect)
