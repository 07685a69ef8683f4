"""``pixlearn data sample NAME DIR``: write a built-in dataset that needs no network."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def sample(
    name: Annotated[str, typer.Argument(help="digits, skimage, faces or shapes.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Destination folder.", show_default=False)],
    n: Annotated[Optional[int], typer.Option("--n", help="Number of images (shapes: default 200).", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Random seed (which images; how shapes are drawn).")] = 0,
    task: Annotated[str, typer.Option(help="shapes only: classify (ImageFolder), detect (COCO) or segment (masks).")] = "detect",
    size: Annotated[int, typer.Option(help="shapes only: image side in pixels.", min=32)] = 128,
) -> None:
    """Write a built-in sample dataset (no network needed)."""
    from pixlearn.data.samples import write_sample

    paths = write_sample(name, out, n=n, seed=seed, task=task, size=size)
    sys.stderr.write(f"wrote {len(paths)} images of '{name}' to {out}\n")


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
