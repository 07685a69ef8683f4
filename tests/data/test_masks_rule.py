"""One rule for mask values: the reader, data check, data info, loading and the help texts agree.

A set whose masks hold only 0 and 255 is binary (255 = foreground, class 1); any other set has
class indices with 255 = ignore.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixlearn.data.check import check_dataset
from pixlearn.data.masks import MaskCoding, mask_coding
from pixlearn.data.readers import describe_dataset, read_dataset
from pixlearn.io import write_image


def _mask_set(root: Path, masks: list[np.ndarray], *, classes: list[str] | None = None, palette: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for i, m in enumerate(masks):
        write_image(root / "images" / f"{i}.png", (rng.random((*m.shape, 3)) * 255).astype(np.uint8))
        write_image(root / "masks" / f"{i}.png", m, palette=[(0, 0, 0), (200, 0, 0), (0, 200, 0), (0, 0, 200)] if palette else None)
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def _binary_masks() -> list[np.ndarray]:
    a = np.zeros((8, 8), np.uint8)
    a[2:5, 2:5] = 255
    b = np.zeros((8, 8), np.uint8)
    b[0:3, 4:8] = 255
    return [a, b]


def _multi_masks() -> list[np.ndarray]:
    a = np.zeros((8, 8), np.uint8)
    a[:4] = 1
    a[6:, 6:] = 255  # ignored pixels
    b = np.full((8, 8), 2, np.uint8)
    b[:2] = 0
    return [a, b]


def _codes(report) -> set[str]:
    return {f.code for f in report.findings}


def test_binary_0_255_set_is_background_foreground_everywhere(tmp_path):
    index = read_dataset(_mask_set(tmp_path, _binary_masks()))
    assert index.classes == ["background", "foreground"]
    assert MaskCoding.from_meta(index.meta).kind == "binary255"
    # the loader maps 255 to class 1 (what training sees)
    assert set(np.unique(index.load(0).mask).tolist()) == {0, 1}
    # data check counts foreground images instead of reporting the class empty (255 read as ignore)
    report = check_dataset(index)
    assert "empty_class" not in _codes(report) and "mask_values" not in _codes(report)
    assert report.counts[report.splits[0]] == {"background": 2, "foreground": 2}
    # data info says what the values mean
    assert describe_dataset(index)["mask_coding"] == "binary255"


def test_multi_class_set_keeps_indices_and_ignores_255(tmp_path):
    index = read_dataset(_mask_set(tmp_path, _multi_masks()))
    assert index.classes == ["0", "1", "2"]
    coding = MaskCoding.from_meta(index.meta)
    assert coding.kind == "index" and coding.ignore_index == 255
    assert set(np.unique(index.load(0).mask).tolist()) == {0, 1, 255}
    report = check_dataset(index)
    assert report.counts[report.splits[0]] == {"0": 2, "1": 1, "2": 1}
    assert not _codes(report) & {"empty_class", "mask_values"}
    assert describe_dataset(index)["mask_coding"] == "index"


def test_value_outside_the_classes_is_reported(tmp_path):
    masks = _multi_masks()
    masks[1][0, 0] = 7
    index = read_dataset(_mask_set(tmp_path, masks, classes=["bg", "a", "b"]))
    report = check_dataset(index)
    bad = [f for f in report.findings if f.code == "mask_values"]
    assert len(bad) == 1 and bad[0].details["values"] == [7]


def test_class_map_of_two_names_with_0_255_masks_is_binary(tmp_path):
    index = read_dataset(_mask_set(tmp_path, _binary_masks(), classes=["sky", "cell"]))
    assert index.classes == ["sky", "cell"] and MaskCoding.from_meta(index.meta).kind == "binary255"
    assert "empty_class" not in _codes(check_dataset(index))


def test_class_map_of_three_names_keeps_255_as_ignore(tmp_path):
    index = read_dataset(_mask_set(tmp_path, _binary_masks(), classes=["a", "b", "c"]))
    assert MaskCoding.from_meta(index.meta).kind == "index"
    assert set(np.unique(index.load(0).mask).tolist()) == {0, 255}


def test_palette_masks_are_read_by_index(tmp_path):
    index = read_dataset(_mask_set(tmp_path, _multi_masks(), palette=True))
    assert index.classes == ["0", "1", "2"]
    assert set(np.unique(index.load(1).mask).tolist()) == {0, 2}
    assert not _codes(check_dataset(index)) & {"empty_class", "mask_values"}


@pytest.mark.parametrize("values, classes, kind", [
    ({0, 255}, None, "binary255"), ({255}, None, "binary255"), ({0}, None, "index"), ({0, 1}, None, "index"),
    ({0, 1, 255}, None, "index"), ({0, 255}, 2, "binary255"), ({0, 255}, 3, "index"),
])
def test_the_rule(values, classes, kind):
    assert mask_coding(values, num_classes=classes).kind == kind


def test_coding_round_trip():
    c = MaskCoding("binary255")
    stored = np.array([[0, 255]], np.uint8)
    assert np.array_equal(c.to_stored(c.to_class_ids(stored)), stored)
    assert MaskCoding.from_meta(c.to_meta()) == c
    assert MaskCoding.from_meta({"mask_values": {"0": 0, "255": 1}}).kind == "binary255"  # from JSON
    assert MaskCoding.from_meta(None).kind == "index"


@pytest.mark.parametrize("command", [["data", "check"], ["data", "info"], ["train", "segment"]])
def test_help_states_the_rule(command):
    from typer.testing import CliRunner

    from pixlearn.cli.app import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("\u2502", " ").split())  # help tables wrap text between box lines
    assert "only 0 and 255" in text
    assert "255 foreground" in text or "255 is foreground" in text
    assert "255 = ignore" in text or "255 marks pixels to ignore" in text
