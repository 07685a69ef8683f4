"""Predicted masks are written in the training set's value coding and are visible in a viewer.

A binary set read from 0/255 masks gets 0/255 masks back; a multi-class set gets a palette PNG
whose pixel values are the class ids (not an all-black image of 0, 1, 2, ...).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixlearn.cli import main
from pixlearn.io import read_image, read_mask, write_image
from pixlearn.tasks.segment.predict import PALETTE, Segmenter, mask_file_array, predict_segment_files


def _segmenter(binary: bool, coding: str, fixed: np.ndarray) -> Segmenter:
    from pixlearn.models import create_segmentation_model

    net = create_segmentation_model("unet", encoder="tu-test_efficientnet", num_classes=1 if binary else 3, img_size=32,
                                    decoder_channels=[16, 16, 8, 8, 8])
    seg = Segmenter(net, ["background", "foreground"] if binary else ["bg", "a", "b"], binary=binary, tile=(32, 32), mask_coding=coding)
    seg.predict = lambda image: fixed  # type: ignore[method-assign]  # the test is about the file, not the network
    return seg


def test_binary_0_255_run_writes_0_255_masks(tmp_path):
    fixed = np.zeros((6, 8), np.uint8)
    fixed[2:5, 0:4] = 1  # 12 of 48 pixels
    img = write_image(tmp_path / "in.png", np.zeros((6, 8, 3), np.uint8))
    rows = predict_segment_files(_segmenter(True, "binary255", fixed), [img], out=tmp_path / "out")
    written = read_mask(rows[0]["mask"])
    assert np.array_equal(written, fixed * 255)
    assert rows[0]["classes"] == {"background": 0.75, "foreground": 0.25}  # the row still speaks in classes


def test_multi_class_run_writes_a_palette_png_of_class_ids(tmp_path):
    fixed = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    img = write_image(tmp_path / "in.png", np.zeros((2, 3, 3), np.uint8))
    rows = predict_segment_files(_segmenter(False, "index", fixed), [img], out=tmp_path / "m.png")
    with Image.open(rows[0]["mask"]) as im:
        assert im.mode == "P"
    assert np.array_equal(read_mask(rows[0]["mask"]), fixed)  # class ids preserved as pixel values
    shown = read_image(rows[0]["mask"])  # what a viewer shows: the overlay colours, not near-black 1 and 2
    assert shown[0, 0].tolist() == [0, 0, 0]
    assert shown[0, 1].tolist() == PALETTE[0].tolist() and shown[0, 2].tolist() == PALETTE[1].tolist()


def test_unknown_coding_is_refused():
    from pixlearn import ConfigError

    with pytest.raises(ConfigError, match="binary255"):
        mask_file_array(np.zeros((2, 2), np.uint8), "rgb")


def test_a_run_records_its_coding_and_predict_uses_it(trained_run, tmp_path, capsys, rng):
    """The shapes set holds class ids 0..3: the run says 'index' and predict writes palette PNGs."""
    card = json.loads((trained_run.run_dir / "weights" / "model.json").read_text())
    assert card["mask_coding"] == "index"
    img = write_image(tmp_path / "in" / "x.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    code = main(["predict", str(trained_run.run_dir), str(img), "-o", str(tmp_path / "out"), "--format", "json"])
    assert code == 0, capsys.readouterr().err
    mask = json.loads(capsys.readouterr().out)[0]["mask"]
    with Image.open(mask) as im:
        assert im.mode == "P"
    assert set(np.unique(read_mask(mask)).tolist()) <= {0, 1, 2, 3}
