"""``pixlearn faces detect|align|enroll|identify|verify|list|delete|calibrate``: faces with dlib, offline.

The face task is reached through the task registry (:func:`pixlearn.tasks.registry.tool`), so nothing heavy (dlib,
OpenCV, a model) is imported until a command runs. A gallery is one local file (``.npz``) of embeddings by name.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._group import new_app
from pixlearn.cli._output import OutputFormat, emit

__all__ = ["register"]

faces_app = new_app(
    "Faces: detect (HOG or CNN), 5-point landmarks and aligned crops, 128-d embeddings; enroll people into a "
    "gallery, identify (1:N) and verify (1:1) with calibrated thresholds, list and delete people."
)


class Detector(str, enum.Enum):
    hog = "hog"
    cnn = "cnn"


_IMAGES_HELP = "Image files, folders (searched recursively) and glob patterns."
_GALLERY_HELP = "The gallery file (.npz) written by pixlearn faces enroll."
DetectorOpt = Annotated[Detector, typer.Option("--detector", help="hog: fast, frontal faces; cnn: dlib's MMOD CNN, finds "
                                                                  "turned and smaller faces, about 20 times slower on a CPU.")]
UpsampleOpt = Annotated[int, typer.Option("--upsample", min=0, max=3, help="Double the image this many times before "
                                                                          "detecting (finds smaller faces; 4x the time per step), 0..3.")]
ProgressOpt = Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).", show_default=False)]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="stdout: table or csv (one row per face) or json (one object per image).")]


def _tool() -> Any:
    from pixlearn.tasks.registry import tool

    return tool("faces")


def _gallery(path: Path, *, create: bool = False, detector: Detector = Detector.hog, upsample: int = 1) -> Any:
    return _tool().load("open_gallery")(path, create=create, detector=detector.value, upsample=upsample)


def _check_draw(draw: Optional[Path]) -> None:
    if draw is not None:
        from pixlearn.cli._output import output_dir

        output_dir(draw, option="--draw")


def _emit_rows(rows: list[dict[str, Any]], fmt: OutputFormat, what: str, draw: Optional[Path]) -> None:
    tool = _tool()
    if fmt is OutputFormat.json:
        emit(rows, fmt)
    else:
        from importlib import import_module

        table = tool.load("table")
        module = import_module(table.__module__)
        emit(table(rows), fmt, columns=list(module.TABLE_COLUMNS))
    bad = sum(1 for r in rows if r.get("error"))
    found = sum(r["count"] for r in rows)
    where = f"; drawn images in {draw}" if draw is not None else ""
    sys.stderr.write(f"{found} {what} in {len(rows) - bad} image(s){where}\n")
    if bad:
        sys.stderr.write(f"{bad} of {len(rows)} image(s) could not be used; see the error column\n")
        raise typer.Exit(1)


@faces_app.command("detect")
def detect(
    images: Annotated[list[str], typer.Argument(help=_IMAGES_HELP, show_default=False)],
    detector: DetectorOpt = Detector.hog,
    upsample: UpsampleOpt = 1,
    landmarks: Annotated[bool, typer.Option("--landmarks", help="Add the 5 landmarks of each face (json).")] = False,
    draw: Annotated[Optional[Path], typer.Option("--draw", help="A folder for each image drawn with its face boxes.", show_default=False)] = None,
    format: FormatOpt = OutputFormat.table,
    progress: ProgressOpt = None,
) -> None:
    """Find the faces in images: box (x0, y0, x1, y1 pixels, x1/y1 exclusive) and detector score per face.

    Unreadable files are reported in their row; exits 1 when some file could not be read.
    """
    _check_draw(draw)
    rows = _tool().load("detect")(images, detector=detector.value, upsample=upsample, landmarks=landmarks, draw=draw,
                                  progress=progress)
    _emit_rows(rows, format, "face(s)", draw)


@faces_app.command("align")
def align(
    images: Annotated[list[str], typer.Argument(help=_IMAGES_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder for the crops (<stem>_face<k>.png).", show_default=False)],
    size: Annotated[int, typer.Option("--size", min=16, max=1024, help="Crop side in pixels, 16..1024.")] = 150,
    padding: Annotated[float, typer.Option("--padding", min=0.0, max=2.0, help="Room around the face, a fraction of its size, 0..2.")] = 0.25,
    detector: DetectorOpt = Detector.hog,
    upsample: UpsampleOpt = 1,
    format: FormatOpt = OutputFormat.table,
    progress: ProgressOpt = None,
) -> None:
    """Write an aligned crop of every face (eyes level, from the 5 landmarks) to --out."""
    from pixlearn.cli._output import output_dir

    output_dir(out)
    rows = _tool().load("align")(images, out, size=size, padding=padding, detector=detector.value, upsample=upsample,
                                 progress=progress)
    _emit_rows(rows, format, "aligned face(s)", None)


@faces_app.command("enroll")
def enroll(
    gallery: Annotated[Path, typer.Argument(help="The gallery file (.npz); created when missing.", show_default=False)],
    name: Annotated[str, typer.Argument(help="The person's name (1..64 characters, no path characters).", show_default=False)],
    images: Annotated[list[str], typer.Argument(help="Photos of this person alone: files, folders, globs.", show_default=False)],
    keep_photos: Annotated[bool, typer.Option("--keep-photos", help="Also keep each aligned face crop in the gallery (default: embeddings only).")] = False,
    detector: DetectorOpt = Detector.hog,
    upsample: UpsampleOpt = 1,
    format: Annotated[OutputFormat, typer.Option("--format", help="stdout: one row per image (table, csv) or the whole result (json).")] = OutputFormat.table,
    progress: ProgressOpt = None,
) -> None:
    """Enrol NAME into GALLERY from photos that each show one face (the gallery file is created when missing).

    Photos with no face or several are refused with the reason; the others enrol. Only embeddings are kept unless
    --keep-photos. Exits 1 when no photo could be enrolled.
    """
    from pixlearn.cli._output import output_file

    output_file(gallery, option="GALLERY")
    g = _gallery(gallery, create=True, detector=detector, upsample=upsample)
    result = _tool().load("enroll")(g, name, images, keep_photos=keep_photos, progress=progress)
    if format is OutputFormat.json:
        emit(result, format)
    else:
        emit([{"name": result["name"], **r} for r in result["images"]], format,
             columns=["name", "source", "status", "box", "reason"])
    sys.stderr.write(f"{result['added']} face(s) of {result['name']!r} enrolled ({result['count']} in all), "
                     f"{result['refused']} image(s) refused; gallery {gallery}\n")
    if result["added"] == 0:
        raise typer.Exit(1)


@faces_app.command("identify")
def identify(
    gallery: Annotated[Path, typer.Argument(help=_GALLERY_HELP, show_default=False)],
    images: Annotated[list[str], typer.Argument(help=_IMAGES_HELP, show_default=False)],
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="A face is a person at or below this distance, (0, 4]; default: the gallery's calibrated one, else 0.6.", show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100, help="Nearest people listed per face (json candidates).")] = 1,
    draw: Annotated[Optional[Path], typer.Option("--draw", help="A folder for each image drawn with boxes and names.", show_default=False)] = None,
    detector: DetectorOpt = Detector.hog,
    upsample: UpsampleOpt = 1,
    format: FormatOpt = OutputFormat.table,
    progress: ProgressOpt = None,
) -> None:
    """Name every face in IMAGES after the nearest person of GALLERY, or 'unknown' past the threshold (1:N)."""
    _check_draw(draw)
    g = _gallery(gallery, detector=detector, upsample=upsample)
    rows = _tool().load("identify")(g, images, threshold=threshold, top_k=top_k, draw=draw, progress=progress)
    _emit_rows(rows, format, "face(s)", draw)


@faces_app.command("verify")
def verify(
    image_a: Annotated[Path, typer.Argument(help="The first image (its largest face is compared).", show_default=False)],
    image_b: Annotated[Path, typer.Argument(help="The second image.", show_default=False)],
    gallery: Annotated[Optional[Path], typer.Option("--gallery", help="Use this gallery's calibrated threshold.", show_default=False)] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Same person at or below this distance, (0, 4]; default: the gallery's, else 0.6.", show_default=False)] = None,
    detector: DetectorOpt = Detector.hog,
    upsample: UpsampleOpt = 1,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Are the faces of IMAGE_A and IMAGE_B the same person (1:1)? Prints same, distance and threshold."""
    g = _gallery(gallery, detector=detector, upsample=upsample) if gallery is not None else None
    result = _tool().load("verify")(image_a, image_b, gallery=g, threshold=threshold, detector=detector.value,
                                    upsample=upsample)
    emit(result, format)


@faces_app.command("list")
def list_people(
    gallery: Annotated[Path, typer.Argument(help=_GALLERY_HELP, show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """List the people of GALLERY with their number of embeddings, and its calibration."""
    g = _gallery(gallery)
    emit(g.people(), format, columns=["name", "count", "created"])
    cal = g.calibration
    sys.stderr.write(f"threshold {g.threshold:g} " + (f"(calibrated: AUC {cal.auc:.3f}, EER {cal.eer:.3f}, "
                                                      f"{cal.n_pairs} pairs, on {cal.source})\n" if cal else
                                                      "(dlib's default; not calibrated)\n"))


@faces_app.command("delete")
def delete(
    gallery: Annotated[Path, typer.Argument(help=_GALLERY_HELP, show_default=False)],
    name: Annotated[str, typer.Argument(help="The person to remove (every embedding and kept photo).", show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Remove NAME from GALLERY completely: every embedding and every kept photo."""
    removed = _gallery(gallery).delete(name)
    emit({"name": name, "removed": removed, "gallery": str(gallery)}, format)


@faces_app.command("calibrate")
def calibrate(
    gallery: Annotated[Path, typer.Argument(help=_GALLERY_HELP + " The calibration is stored in it.", show_default=False)],
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="One subfolder of photos per person (one face each).", show_default=False)],
    detector: DetectorOpt = Detector.hog,
    upsample: UpsampleOpt = 1,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    progress: ProgressOpt = None,
) -> None:
    """Calibrate GALLERY's match threshold on every pair of faces in DIR: threshold, ROC AUC, EER, FAR, FRR."""
    g = _gallery(gallery, create=True, detector=detector, upsample=upsample)
    emit(_tool().load("calibrate")(g, folder, progress=progress), format)


def register(app: typer.Typer) -> None:
    app.add_typer(faces_app, name="faces")
