"""``pixlearn ocr IMAGES``: the text in images with the PP-OCR models bundled in rapidocr_onnxruntime, no training.

The command reaches :mod:`pixlearn.tasks.ocr` through the task registry (:func:`pixlearn.tasks.registry.tool`);
nothing heavy is imported until it runs, and the models load once per process.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["ocr", "register"]

_ROTATION_HELP = ("auto: lines that read upside down are turned by the 180° direction classifier; none: read the image "
                  "as it is (faster); any: also try the whole image at 90°, 180° and 270° and keep the most confident "
                  "reading (4x the time).")


def _format_for(out: Optional[Path], format: Optional[OutputFormat]) -> OutputFormat:
    """--format, else the -o file's extension (.json, .csv), else table."""
    if format is not None:
        return format
    if out is not None and out.suffix.lower() in (".json", ".csv"):
        return OutputFormat(out.suffix.lower()[1:])
    return OutputFormat.table


def ocr(
    images: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) and glob patterns.", show_default=False)],
    format: Annotated[Optional[OutputFormat], typer.Option("--format", help="json (one object per image with its lines), csv or table (one row per piece of text); default: the -o file's extension, else table.", show_default=False)] = None,
    min_confidence: Annotated[float, typer.Option("--min-confidence", help="Drop text the recogniser is less sure of, 0..1.")] = 0.5,
    rotation: Annotated[str, typer.Option("--rotation", help=_ROTATION_HELP)] = "auto",
    max_side: Annotated[int, typer.Option("--max-side", help="Scale a longer image side down to this before detection, 64..4096.")] = 2000,
    det_model: Annotated[Optional[Path], typer.Option("--det-model", help="A PP-OCR text detection .onnx file of your own (default: the bundled PP-OCRv4, Chinese + English).", show_default=False)] = None,
    rec_model: Annotated[Optional[Path], typer.Option("--rec-model", help="A PP-OCR recognition .onnx file of your own, e.g. for another language (default: the bundled PP-OCRv4, Chinese + English).", show_default=False)] = None,
    rec_keys: Annotated[Optional[Path], typer.Option("--rec-keys", help="The character list (.txt, one a line) of a --rec-model that does not carry it.", show_default=False)] = None,
    draw: Annotated[Optional[Path], typer.Option("--draw", help="A folder for each image drawn with its quadrilaterals and strings.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the results to this file instead of stdout.", show_default=False)] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).", show_default=False)] = None,
) -> None:
    """Read the text in images (PP-OCR on onnxruntime): quadrilateral boxes, text and confidence in reading order, as JSON or CSV and as drawn images.

    Uses the PP-OCRv4 models bundled with rapidocr_onnxruntime (Chinese and English), offline; a table on stdout by default.
    Quadrilaterals are 4 corners (x, y) clockwise from the top-left, in the pixels of each image after its EXIF orientation.
    Unreadable files are reported in their row; exits 1 when some file could not be read.
    """
    from pixlearn.cli._output import output_dir, output_file
    from pixlearn.io import atomic_write_text
    from pixlearn.tasks.registry import tool

    spec = tool("ocr")
    fmt = _format_for(out, format)
    spec.load("options")(min_confidence, rotation, max_side)  # checked before anything loads
    if out is not None:
        output_file(out)
    if draw is not None:
        output_dir(draw, option="--draw")
    rows = spec.load("files")(images, min_confidence=min_confidence, rotation=rotation, max_side=max_side,
                              det_model=det_model, rec_model=rec_model, rec_keys=rec_keys, draw=draw, progress=progress)
    if not rows:
        raise typer.BadParameter(f"no images found in {' '.join(images)}", param_hint="IMAGES")
    if fmt is OutputFormat.json:
        result: object = [{k: v for k, v in r.items() if k != "drawn" or draw is not None} for r in rows]
        columns = None
    else:
        result, columns = spec.load("table")(rows), list(spec.load("columns"))
    if out is None:
        emit(result, fmt, columns=columns)  # type: ignore[arg-type]
    else:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            emit(result, fmt, columns=columns)  # type: ignore[arg-type]
        atomic_write_text(out, buf.getvalue())
    found = sum(r["count"] for r in rows)
    bad = sum(1 for r in rows if r.get("error"))
    where = f"; results in {out}" if out is not None else ""
    where += f"; drawn images in {draw}" if draw is not None else ""
    sys.stderr.write(f"{found} piece(s) of text in {len(rows) - bad} image(s){where}\n")
    if bad:
        sys.stderr.write(f"{bad} of {len(rows)} image(s) could not be read; see the error column\n")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("ocr", help=ocr.__doc__)(ocr)
