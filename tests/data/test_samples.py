"""Built-in samples: written offline, seeded, with labels that agree with the pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixlearn import UnknownNameError
from pixlearn.cli import main
from pixlearn.data.samples import SHAPE_CLASSES, make_shapes_image, write_sample
from pixlearn.io import read_image


def test_digits_as_imagefolder(tmp_path):
    paths = write_sample("digits", tmp_path, n=50, seed=1)
    assert len(paths) == 50
    assert {p.parent.name for p in paths} <= {str(d) for d in range(10)}
    img = read_image(paths[0], mode="L")
    assert img.shape == (8, 8) and img.max() <= 255 and img.max() > 100


def test_faces_and_skimage(tmp_path):
    faces = write_sample("faces", tmp_path / "f")
    assert len(faces) == 200 and {p.parent.name for p in faces} == {"face", "not_face"}
    photos = write_sample("skimage", tmp_path / "s", n=3)
    assert len(photos) == 3 and read_image(photos[0]).ndim == 3


def test_shapes_masks_polygons_boxes_agree():
    rng = np.random.default_rng(3)
    for _ in range(10):
        img, shapes = make_shapes_image(rng, size=96)
        assert img.shape == (96, 96, 3) and 1 <= len(shapes) <= 3
        union = np.zeros((96, 96), int)
        for s in shapes:
            ys, xs = np.nonzero(s.mask)
            assert s.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            union += s.mask
            # the shape's pixels are one colour, different from the surrounding background on average
            colour = img[s.mask]
            assert (colour == colour[0]).all()
        assert union.max() <= 1  # no overlaps


def test_shapes_seeded(tmp_path):
    a = write_sample("shapes", tmp_path / "a", n=4, seed=7, task="segment", size=64)
    b = write_sample("shapes", tmp_path / "b", n=4, seed=7, task="segment", size=64)
    c = write_sample("shapes", tmp_path / "c", n=4, seed=8, task="segment", size=64)
    assert all(np.array_equal(read_image(x), read_image(y)) for x, y in zip(a, b))
    assert not all(np.array_equal(read_image(x), read_image(y)) for x, y in zip(a, c))


def test_shapes_detect_is_valid_coco(tmp_path):
    write_sample("shapes", tmp_path, n=5, task="detect", size=64)
    coco = json.loads((tmp_path / "annotations" / "instances.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(SHAPE_CLASSES)
    assert len(coco["images"]) == 5 and coco["annotations"]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64
        poly = np.array(ann["segmentation"][0]).reshape(-1, 2)
        assert poly[:, 0].min() >= x - 1 and poly[:, 0].max() <= x + w + 1


def test_shapes_segment_mask_values(tmp_path):
    write_sample("shapes", tmp_path, n=3, task="segment", size=64)
    mask = read_image(tmp_path / "masks" / "shapes_00000.png", mode="unchanged")
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 1, 2, 3} and mask.max() > 0
    assert (tmp_path / "classes.txt").read_text().split() == ["background", *SHAPE_CLASSES]


def test_cli_and_errors(tmp_path, capsys):
    assert main(["data", "sample", "shapes", str(tmp_path / "s"), "--n", "6", "--task", "classify", "--size", "48"]) == 0
    assert len(list((tmp_path / "s").rglob("*.png"))) == 6
    assert main(["data", "sample", "digts", str(tmp_path / "d")]) == 1
    assert "did you mean 'digits'" in capsys.readouterr().err
    with pytest.raises(UnknownNameError):
        write_sample("shapes", tmp_path, task="detection")
