"""``pixlearn data convert SRC --to FORMAT DST`` and ``pixlearn data info DIR``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit
from pixlearn.cli._options import AllowOutsideRoot

__all__ = ["register"]


def convert(
    src: Annotated[Path, typer.Argument(help="Dataset folder or annotation file to read.", show_default=False)],
    dst: Annotated[Path, typer.Argument(help="Folder to write (empty or new).", show_default=False)],
    to: Annotated[str, typer.Option("--to", help="Output format: coco, yolo or voc.", show_default=False)],
    from_: Annotated[
        Optional[str],
        typer.Option("--from", help="Source format (imagefolder, csv, coco, yolo, voc, masks, paired, clean); detected when omitted."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty DST, replacing its layout files.")] = False,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Place the images in DST (hard links or copies).")] = True,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Convert a detection dataset: pixlearn data convert SRC --to yolo DST.

    Images are hard-linked when SRC and DST share a file system, else copied; SRC is never
    changed. Notes on what the target format cannot hold go to stderr.
    """
    from pixlearn.cli._output import output_dir
    from pixlearn.data.convert import convert as run_convert

    output_dir(dst, option="DST")
    result = run_convert(src, dst, to=to, format=from_, copy_images=images, overwrite=overwrite)
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
    sys.stderr.write(
        f"wrote {result.images} image(s) and {result.annotations} annotation(s) as {result.format} to {result.dst}\n"
    )


def info(
    data: Annotated[Path, typer.Argument(help="Dataset folder or annotation file.", show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    from_: Annotated[Optional[str], typer.Option("--from", help="Dataset format; detected when omitted.")] = None,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Summarise a dataset: its format, task, classes and counts per split (nothing is decoded).

    The table shows images (and objects) per split, then images (classify) or objects
    (detect) per class and split; json gives the whole summary; csv one row per split.

    Mask values (the rule every pixlearn command uses): if every mask holds only 0 and 255 (and a class map, if any, names two classes), the set is binary -- 0 is background, 255 is foreground (class 1); otherwise each value is a class index and 255 marks pixels to ignore. Palette PNG masks are read by index, not colour.
    """
    from pixlearn.data.readers import describe_dataset, read_dataset

    summary = describe_dataset(read_dataset(data, format=from_))
    if format is OutputFormat.json:
        emit(summary, format)
    else:
        splits = summary["splits"]
        rows = []
        for split, entry in splits.items():
            row = {"split": split, "images": entry["images"]}
            if "objects" in entry:
                row["objects"] = entry["objects"]
            if format is OutputFormat.csv:
                row.update(entry.get("per_class", {}))
            rows.append(row)
        if format is OutputFormat.table:
            sys.stdout.write(
                f"{summary['root']}: {summary['format']} dataset, task {summary['task']}, "
                f"{summary['images']} image(s), {summary['num_classes']} class(es)"
                + (f", {n} record(s) refused (paths outside the folder)" if (n := summary["refused"].get("outside_root")) else "")
                + "\n"
                + (f"mask values: {summary['mask_values']}\n" if "mask_values" in summary else "")
                + "\n"
            )
        emit(rows, format)
        if format is OutputFormat.table and summary["classes"]:
            sys.stdout.write("\n")
            per_class = [
                {"class": name, **{split: entry.get("per_class", {}).get(name, 0) for split, entry in splits.items()}}
                for name in summary["classes"]
            ]
            if any("per_class" in entry for entry in splits.values()):
                emit(per_class, format)
            else:
                sys.stdout.write("classes: " + ", ".join(summary["classes"]) + "\n")
    if summary["problems"]:
        found = ", ".join(f"{n} {code}" for code, n in summary["problems"].items())
        sys.stderr.write(f"reader notes: {found} (run pixlearn data check for details)\n")



def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
    app.command("info")(info)
