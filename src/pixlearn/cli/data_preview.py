"""``pixlearn data preview``: a grid of (augmented) samples with labels, boxes and masks drawn."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixlearn.cli._options import AllowOutsideRoot

__all__ = ["preview", "register"]


def preview(
    data: Annotated[Path, typer.Argument(help="Dataset folder.", metavar="DIR", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output image (.png/.jpg/.webp).", show_default=False)
    ],
    from_: Annotated[
        Optional[str], typer.Option("--from", help="Dataset format (default: recognised from the folder).")
    ] = None,
    augment: Annotated[
        str, typer.Option(help="Augmentation preset (none, light, standard, strong) or a YAML pipeline file.")
    ] = "none",
    n: Annotated[int, typer.Option("--n", help="Number of samples.", min=1)] = 16,
    cols: Annotated[int, typer.Option(help="Cells per row.", min=1)] = 4,
    cell: Annotated[int, typer.Option(help="Cell size in pixels.", min=16)] = 160,
    split: Annotated[Optional[str], typer.Option(help="Only this split (train, val, test).")] = None,
    seed: Annotated[int, typer.Option(help="Picks the samples and seeds their augmentation.")] = 0,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Draw a grid of samples: pixlearn data preview DIR --augment standard -o grid.png.

    Each cell shows the class name, boxes with their class names, and masks as colour overlays.
    """
    from pixlearn.data.augment import parse_augment
    from pixlearn.data.preview import preview_grid
    from pixlearn.data.readers import read_dataset
    from pixlearn.io import write_image

    from pixlearn.cli._output import output_file

    output_file(out)
    spec: object = augment
    if Path(augment).suffix.lower() in (".yaml", ".yml") or Path(augment).is_file():
        spec = Path(augment)
    spec = parse_augment(spec)  # fail on a bad pipeline before reading the dataset
    index = read_dataset(data, format=from_)
    if split is not None:
        index = index.subset(split)
    grid = preview_grid(index, augment=spec, n=n, cols=cols, seed=seed, cell=cell)
    written = write_image(out, grid)
    shown = min(n, len(index))
    sys.stderr.write(f"wrote {written} ({grid.shape[1]}x{grid.shape[0]}, {shown} of {len(index)} samples)\n")


def register(app: typer.Typer) -> None:
    app.command("preview")(preview)
