"""Written files get the user's umask (not mkstemp's 0600); palette masks keep their indices."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from pixlearn import ConfigError, ImageWriteError, ShapeError
from pixlearn.io import atomic_write_bytes, atomic_write_text, read_image, read_mask, write_image

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(old)


def _mode(path: str | os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_write_image_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    out = write_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
    assert _mode(out) == expected
    # overwriting an existing file gives the same mode, and no temporary file is left behind
    write_image(out, np.ones((2, 2, 3), np.uint8))
    assert _mode(out) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_atomic_text_and_bytes_follow_the_umask(tmp_path, umask):
    umask(0o022)
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x\n")) == 0o644
    assert _mode(atomic_write_bytes(tmp_path / "b.bin", b"x")) == 0o644
    assert (tmp_path / "a.txt").read_text() == "x\n"


def test_dataset_writers_follow_the_umask(tmp_path, umask):
    """data convert's text files and data split's manifest went through mkstemp (0600) too."""
    from pixlearn._core.types import Task
    from pixlearn.data.index import DatasetIndex, Record
    from pixlearn.data.splits import write_split_manifest
    from pixlearn.data.writers import _write_text

    umask(0o022)
    _write_text(tmp_path / "labels.txt", "a\n")
    assert _mode(tmp_path / "labels.txt") == 0o644
    for i in range(2):
        write_image(tmp_path / "cat" / f"{i}.png", np.zeros((2, 2, 3), np.uint8))
    index = DatasetIndex(tmp_path, "imagefolder", Task.CLASSIFY, ["cat"], [Record(tmp_path / "cat" / f"{i}.png", label=0) for i in range(2)])
    out = write_split_manifest(index, {"train": [0], "val": [1]}, tmp_path / "splits.csv")
    assert _mode(out) == 0o644


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ShapeError):
        write_image(tmp_path / "a.png", np.zeros((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_palette_png_keeps_class_ids_and_shows_colours(tmp_path):
    mask = np.array([[0, 1, 2], [2, 1, 255]], np.uint8)
    palette = [(0, 0, 0), (230, 25, 75), (60, 180, 75)]
    out = write_image(tmp_path / "m.png", mask, palette=palette)
    from PIL import Image

    with Image.open(out) as im:
        assert im.mode == "P"
    assert np.array_equal(read_mask(out), mask)  # the class ids
    rgb = read_image(out)  # what a viewer shows
    assert rgb[0, 1].tolist() == [230, 25, 75] and rgb[0, 2].tolist() == [60, 180, 75]


def test_palette_refusals(tmp_path):
    with pytest.raises(ImageWriteError, match="PNG"):
        write_image(tmp_path / "m.jpg", np.zeros((2, 2), np.uint8), palette=[(0, 0, 0)])
    with pytest.raises(ShapeError, match="uint8"):
        write_image(tmp_path / "m.png", np.zeros((2, 2, 3), np.uint8), palette=[(0, 0, 0)])
    with pytest.raises(ConfigError, match="palette"):
        write_image(tmp_path / "m.png", np.zeros((2, 2), np.uint8), palette=[(0, 0, 300)])


def test_read_mask_grey_and_rgb(tmp_path: Path):
    grey = np.array([[0, 255], [7, 1]], np.uint8)
    assert np.array_equal(read_mask(write_image(tmp_path / "g.png", grey)), grey)
    rgb = np.dstack([grey, grey, grey])
    assert np.array_equal(read_mask(write_image(tmp_path / "c.png", rgb)), grey)
