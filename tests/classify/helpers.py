"""Tiny labelled image folders made in-process: each class is a colour, so a small CNN learns it in an epoch or two."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixlearn.io import write_image

COLOURS = {"red": 0, "green": 1, "blue": 2}


def colour_image(cls: str, rng: np.random.Generator, size: int = 12) -> np.ndarray:
    img = rng.integers(0, 70, (size, size, 3), dtype=np.uint8)
    img[..., COLOURS[cls]] += np.uint8(150)
    return img


def make_dataset(
    root: Path,
    *,
    per_class: int | dict[str, int] = 16,
    classes: tuple[str, ...] = ("red", "green", "blue"),
    splits: dict[str, int] | None = None,
    size: int = 12,
    seed: int = 0,
) -> Path:
    """``root/<class>/*.png`` (or ``root/<split>/<class>/*.png`` with ``splits={"train": n, "test": m}``)."""
    rng = np.random.default_rng(seed)
    if splits:
        for split, n in splits.items():
            for cls in classes:
                for i in range(n):
                    write_image(root / split / cls / f"{cls}_{i:03d}.png", colour_image(cls, rng, size))
        return root
    for cls in classes:
        n = per_class[cls] if isinstance(per_class, dict) else per_class
        for i in range(n):
            write_image(root / cls / f"{cls}_{i:03d}.png", colour_image(cls, rng, size))
    return root
