"""Thresholds: masks are 0/255, Otsu separates modes, multi-Otsu finds levels, adaptive copes with shading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import pixlearn
from pixlearn.ops import get_op, list_ops, threshold

OPS = {"threshold": "mask", "otsu": "mask", "multi_otsu": "image", "adaptive_threshold": "mask"}


@pytest.fixture
def bimodal(rng: np.random.Generator) -> np.ndarray:
    """Two noisy modes: left half around 60, right half around 190."""
    img = np.empty((40, 40))
    img[:, :20] = rng.normal(60, 12, (40, 20))
    img[:, 20:] = rng.normal(190, 12, (40, 20))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture
def three_levels() -> np.ndarray:
    """Three flat bands at 30, 128 and 220."""
    img = np.empty((30, 30), np.uint8)
    img[:10], img[10:20], img[20:] = 30, 128, 220
    return img


@pytest.mark.parametrize("name", sorted(OPS))
def test_grey_and_rgb_give_grey_uint8(name: str, photo: np.ndarray, gray_photo: np.ndarray) -> None:
    before = photo.copy()
    for img in (gray_photo, photo):
        out = get_op(name)(img)
        assert out.shape == photo.shape[:2] and out.dtype == np.uint8
    np.testing.assert_array_equal(photo, before)
    luma = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(get_op(name)(photo), get_op(name)(luma))


@pytest.mark.parametrize("name", ["threshold", "otsu", "adaptive_threshold"])
def test_masks_hold_only_0_and_255(name: str, photo: np.ndarray) -> None:
    assert set(np.unique(get_op(name)(photo))) == {0, 255}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.float32), np.zeros((1, 8, 8, 3), np.uint8)], ids=["float", "4d"]
)
def test_bad_images_raise_shape_error(name: str, bad: np.ndarray) -> None:
    with pytest.raises(pixlearn.ShapeError, match="image must have"):
        get_op(name)(bad)


def test_fixed_threshold_is_strictly_above_value() -> None:
    img = np.array([[0, 99, 100, 101, 255]], np.uint8)
    np.testing.assert_array_equal(threshold.threshold(img, value=100), [[0, 0, 0, 255, 255]])
    np.testing.assert_array_equal(threshold.threshold(img, value=100, invert=True), [[255, 255, 255, 0, 0]])


def test_otsu_threshold_lies_between_the_two_modes(bimodal: np.ndarray) -> None:
    t = threshold.otsu_threshold(bimodal)
    assert isinstance(t, int) and 60 < t < 190
    mask = threshold.otsu(bimodal)
    np.testing.assert_array_equal(mask, np.where(bimodal > t, 255, 0))
    assert (mask[:, 20:] == 255).mean() > 0.99 and (mask[:, :20] == 0).mean() > 0.99
    np.testing.assert_array_equal(threshold.otsu(bimodal, invert=True), 255 - mask)


def test_multi_otsu_on_three_levels_gives_three_levels(three_levels: np.ndarray) -> None:
    t = threshold.multi_otsu_thresholds(three_levels, classes=3)
    assert len(t) == 2 and 30 <= t[0] < 128 <= t[1] < 220
    levels = threshold.multi_otsu(three_levels, classes=3)
    assert set(np.unique(levels)) == {0, 128, 255}
    assert (levels[:10] == 0).all() and (levels[10:20] == 128).all() and (levels[20:] == 255).all()
    labels = threshold.multi_otsu(three_levels, classes=3, output="labels")
    np.testing.assert_array_equal(np.unique(labels), [0, 1, 2])
    assert (labels[:10] == 0).all() and (labels[10:20] == 1).all() and (labels[20:] == 2).all()


def test_multi_otsu_on_a_noisy_photo_uses_the_documented_levels(gray_photo: np.ndarray) -> None:
    for classes in (2, 4):
        levels = threshold.multi_otsu(gray_photo, classes=classes)
        expected = {round(255 * k / (classes - 1)) for k in range(classes)}
        assert set(np.unique(levels)) == expected
        t = threshold.multi_otsu_thresholds(gray_photo, classes=classes)
        labels = threshold.multi_otsu(gray_photo, classes=classes, output="labels")
        np.testing.assert_array_equal(labels, np.digitize(gray_photo, t, right=True))


@pytest.mark.parametrize("classes", [1, 6])
def test_multi_otsu_rejects_bad_class_counts(classes: int, three_levels: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=r"classes must be in \[2, 5\]"):
        threshold.multi_otsu(three_levels, classes=classes)


def test_multi_otsu_with_too_few_grey_levels_is_a_config_error(three_levels: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match="only 3 different values"):
        threshold.multi_otsu(three_levels, classes=4)


def test_adaptive_threshold_copes_with_uneven_lighting() -> None:
    background = np.tile(np.linspace(40, 220, 64), (64, 1))
    img = background.copy()
    dots = np.zeros((64, 64), bool)
    dots[8:56:12, 4:60:8] = True
    img[dots] -= 30  # dark marks, each 30 levels below its local background
    img = np.rint(img).astype(np.uint8)
    mask = threshold.adaptive_threshold(img, method="mean", ksize=7, offset=10.0, invert=True)
    np.testing.assert_array_equal(mask > 0, dots)
    # one global threshold cannot separate them: Otsu splits the shading instead
    assert not np.array_equal(threshold.otsu(img, invert=True) > 0, dots)
    gaussian = threshold.adaptive_threshold(img, method="gaussian", ksize=7, offset=10.0, invert=True)
    np.testing.assert_array_equal(gaussian > 0, dots)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("threshold", {"value": 300}, r"'value': 300 is out of range; expected int in \[0, 255\]"),
        ("threshold", {"value": -1}, "'value': -1 is out of range"),
        ("adaptive_threshold", {"ksize": 4}, "'ksize': 4 is not odd"),
        ("adaptive_threshold", {"ksize": 1}, r"'ksize': 1 is out of range; expected int, odd in \[3, 255\]"),
        ("adaptive_threshold", {"method": "median"}, "method must be 'mean' or 'gaussian'"),
        ("multi_otsu", {"output": "colours"}, "output must be 'levels' or 'labels'"),
    ],
)
def test_bad_options_raise_config_error(name: str, options: dict, match: str, gray_photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=match):
        get_op(name)(gray_photo, **options)


def test_registered_in_threshold_category() -> None:
    names = {s.name for s in list_ops("threshold")}
    assert set(OPS) <= names
    for name, returns in OPS.items():
        assert get_op(name).category == "threshold" and get_op(name).returns == returns
    assert get_op("adaptive_threshold").validate({"method": "mean", "ksize": "15", "offset": "-3"}) == {
        "method": "mean",
        "ksize": 15,
        "offset": -3.0,
    }
    with pytest.raises(pixlearn.ConfigError, match="'mean' \\| 'gaussian'"):
        get_op("adaptive_threshold").validate({"method": "median"})
    with pytest.raises(pixlearn.UnknownNameError, match="did you mean 'classes'"):
        get_op("multi_otsu").validate({"clases": 3})
