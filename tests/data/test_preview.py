"""Preview grids: size, what is drawn, unreadable files, and the `pixlearn data preview` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.types import Task
from pixlearn.data.index import DatasetIndex, Record
from pixlearn.data.preview import PALETTE, preview_grid
from pixlearn.io import read_image, write_image


def classify_index(root: Path, n: int = 6) -> DatasetIndex:
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        path = root / f"c{i}.png"
        write_image(path, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        records.append(Record(path=path, label=i % 2))
    return DatasetIndex(root=root, format="test", task=Task.CLASSIFY, classes=["cat", "dog"], records=records)


def detect_index(root: Path) -> DatasetIndex:
    image = np.full((32, 48, 3), 90, np.uint8)
    write_image(root / "d.png", image)
    mask = np.zeros((32, 48), np.uint8)
    mask[4:16, 4:20] = 1
    write_image(root / "d_mask.png", mask)
    rec = Record(
        path=root / "d.png",
        boxes=np.array([[24, 8, 44, 28]], np.float32),
        box_labels=np.array([3]),
        mask_path=root / "d_mask.png",
    )
    (root / "broken.png").write_bytes(b"not an image")
    bad = Record(
        path=root / "broken.png", boxes=np.zeros((0, 4), np.float32), box_labels=np.zeros(0, np.int64)
    )
    return DatasetIndex(
        root=root, format="test", task=Task.DETECT, classes=["a", "b", "c", "bus"], records=[rec, bad]
    )


def test_grid_size_and_png(tmp_path):
    index = classify_index(tmp_path, 6)
    grid = preview_grid(index, augment="standard", n=6, cols=4, cell=64, seed=1)
    assert grid.shape == (128, 256, 3) and grid.dtype == np.uint8
    out = write_image(tmp_path / "grid.png", grid)
    assert read_image(out).shape == (128, 256, 3)
    assert preview_grid(index, n=2, cols=4, cell=40).shape == (40, 80, 3)  # fewer samples: a narrower grid
    np.testing.assert_array_equal(
        preview_grid(index, augment="strong", seed=3, cell=48),
        preview_grid(index, augment="strong", seed=3, cell=48),
    )


def test_boxes_masks_and_unreadable_cells_are_drawn(tmp_path):
    index = detect_index(tmp_path)
    grid = preview_grid(index, n=2, cols=2, cell=96)
    assert grid.shape == (96, 192, 3)
    # the 32x48 image is scaled x2 into the cell and centred vertically (16 px bands)
    assert tuple(grid[50, 87]) == PALETTE[3]  # right edge of the box of class 3 ("bus")
    overlay = np.array([90, 90, 90]) * 0.55 + np.array(PALETTE[1]) * 0.45  # the translucent class-1 mask
    assert np.abs(grid[30, 20].astype(float) - overlay).max() <= 1
    assert tuple(grid[20, 30]) == (90, 90, 90)  # outside mask and box: the image itself
    assert PALETTE[0] in {tuple(c) for c in grid[:, 96:].reshape(-1, 3).tolist()}  # the "unreadable" band


def test_bad_arguments_fail_before_reading(tmp_path):
    index = DatasetIndex(
        root=tmp_path,
        format="test",
        task=Task.CLASSIFY,
        classes=["a"],
        records=[Record(path=tmp_path / "missing.png", label=0)],
    )
    with pytest.raises(UnknownNameError, match="did you mean 'strong'"):
        preview_grid(index, augment="stron")
    with pytest.raises(ConfigError):
        preview_grid(index, n=0)
    with pytest.raises(ConfigError):
        preview_grid(DatasetIndex(root=tmp_path, format="test", task=Task.CLASSIFY, classes=[], records=[]))


def test_cli_writes_the_grid(tmp_path, capsys):
    pytest.importorskip("pixlearn.data.readers")
    from pixlearn.cli import main

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(3):
            write_image(
                tmp_path / "data" / cls / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            )
    (tmp_path / "aug.yaml").write_text("- hflip: {p: 0.5}\n- rotate: {degrees: 10}\n")
    out = tmp_path / "grid.png"
    code = main(
        [
            "data",
            "preview",
            str(tmp_path / "data"),
            "--augment",
            str(tmp_path / "aug.yaml"),
            "--n",
            "5",
            "--cols",
            "3",
            "--cell",
            "48",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert read_image(out).shape == (96, 144, 3) and "wrote" in err
    code = main(["data", "preview", str(tmp_path / "data"), "--augment", "standrd", "-o", str(out)])
    assert code == 1 and "did you mean 'standard'" in capsys.readouterr().err
