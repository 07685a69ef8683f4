"""Mask datasets for segmentation: reading layouts, split plans, joint crops and flips of image and mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Sample
from pixlearn.io import write_image
from pixlearn.tasks.segment.data import SegmentCrop, make_segment_dataset, plan_segment_splits, read_segment_dataset

from .conftest import disc_image


def test_isbi_layout_with_binary_labels_is_read(tmp_path, rng):
    for i in range(3):  # train/image/N.png + train/label/N.png, labels 0 / 255
        img, mask = disc_image(rng)
        write_image(tmp_path / "train" / "image" / f"{i}.png", img[..., 0])
        write_image(tmp_path / "train" / "label" / f"{i}.png", mask)
    index = read_segment_dataset(tmp_path)
    assert index.classes == ["background", "foreground"] and len(index) == 3
    sample = index.load(0)
    assert sample.image.shape == (40, 40, 3) and set(np.unique(sample.mask)) <= {0, 1}


def test_not_a_mask_dataset(tmp_path, rng):
    write_image(tmp_path / "cats" / "a.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    write_image(tmp_path / "dogs" / "b.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="not a mask dataset"):
        read_segment_dataset(tmp_path)


def test_split_plan_is_seeded_and_keeps_given_splits(shapes_data, tmp_path):
    index = read_segment_dataset(shapes_data)
    a = plan_segment_splits(index, val_fraction=0.25, test_fraction=0.0, seed=3)
    b = plan_segment_splits(index, val_fraction=0.25, test_fraction=0.0, seed=3)
    assert a.val == b.val and len(a.val) == 3 and len(a.train) == 9 and not set(a.val) & set(a.train)
    assert plan_segment_splits(index, val_fraction=0.25, test_fraction=0.0, seed=4).val != a.val
    fixed = index.with_splits({i: ("val" if i < 2 else "train") for i in range(len(index))})
    s = plan_segment_splits(fixed, val_fraction=0.25, test_fraction=0.0, seed=0)
    assert s.val == [0, 1] and s.sources["val"] == "the dataset's val split"
    with pytest.raises(ConfigError, match="too few images"):
        plan_segment_splits(index.subset(indices=[0, 1]), val_fraction=0.5, test_fraction=0.3, seed=0)


def test_crop_and_flips_move_image_and_mask_together(rng):
    img, mask = disc_image(rng, (50, 70))
    crop = SegmentCrop(32, hflip=0.5, vflip=0.5)
    import torch

    for seed in range(6):
        torch.manual_seed(seed)
        out = crop(Sample(image=img, mask=mask))
        assert out.image.shape == (32, 32, 3) and out.mask.shape == (32, 32)
        bright = out.image[..., 0] > 120  # the disc is bright: the mask must follow it exactly
        assert np.array_equal(bright, out.mask == 255)


def test_small_images_are_padded_with_the_ignore_label():
    out = SegmentCrop(32, hflip=0, vflip=0)(Sample(image=np.full((10, 20, 3), 9, np.uint8), mask=np.ones((10, 20), np.uint8)))
    assert out.mask.shape == (32, 32)
    assert (out.mask == 1).sum() == 200 and (out.mask == 255).sum() == 32 * 32 - 200
    assert (out.image[out.mask == 255] == 0).all()


def test_training_dataset_yields_crops_and_validation_whole_images(binary_data):
    index = read_segment_dataset(binary_data)
    train = make_segment_dataset(index, [0, 1], mean=(0.5,) * 3, std=(0.25,) * 3, crop=32)
    item = train[(0, 123)]
    assert tuple(item.image.shape) == (3, 32, 32) and tuple(item.targets["mask"].shape) == (32, 32)
    again = train[(0, 123)]
    assert np.array_equal(item.image.numpy(), again.image.numpy())  # seeded crops
    val = make_segment_dataset(index, [2], mean=(0.5,) * 3, std=(0.25,) * 3)
    assert tuple(val[0].image.shape) == (3, 40, 40)
    assert Path(index.records[0].path).parent.name == "images"
