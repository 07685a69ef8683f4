"""Tiny mask datasets made in-process, and one tiny trained segmentation run shared by the tests that need it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixlearn.io import write_image

#: A tiny timm encoder (timm's own test network) and narrow decoder: a U-Net of ~150k parameters.
TINY = {"arch": "unet", "encoder": "tu-test_efficientnet", "set": ["model.decoder_channels=[16,16,8,8,8]"]}


def disc_image(rng: np.random.Generator, size: tuple[int, int] = (40, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a dark noisy background, and its 0/255 mask."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r = rng.uniform(0.15, 0.3) * min(h, w)
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    img = rng.integers(20, 70, (h, w, 3)).astype(np.uint8)
    img[inside] = rng.integers(170, 230, (int(inside.sum()), 3)).astype(np.uint8)
    return img, (inside * 255).astype(np.uint8)


def make_binary_dataset(root: Path, *, n: int = 10, size: tuple[int, int] = (40, 40), seed: int = 0) -> Path:
    """``root/images/*.png`` + ``root/masks/*.png`` with 0/255 masks (read as background / foreground)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img, mask = disc_image(rng, size)
        write_image(root / "images" / f"d{i:02d}.png", img)
        write_image(root / "masks" / f"d{i:02d}.png", mask)
    return root


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic 48-px shape images with 4-class masks (background, circle, square, triangle)."""
    from pixlearn.data.samples import write_sample

    root = tmp_path_factory.mktemp("shapes")
    write_sample("shapes", root, n=12, task="segment", size=48, seed=0)
    return root


@pytest.fixture(scope="session")
def binary_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_binary_dataset(tmp_path_factory.mktemp("discs"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, shapes_data: Path):
    """One epoch of a tiny U-Net on 32-px crops of the shapes data (the run the predict / eval tests use)."""
    from pixlearn.tasks.segment.train import train_segmenter

    out = tmp_path_factory.mktemp("runs") / "unet"
    return train_segmenter(shapes_data, model=TINY["arch"], encoder=TINY["encoder"], set=TINY["set"], epochs=1, img_size=32,
                           batch=4, out=out, progress=False)
