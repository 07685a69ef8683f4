"""Intensity adjustments: known answers, clipping, colour handling, errors and registration."""

from __future__ import annotations

import numpy as np
import pytest

import pixlearn
from pixlearn.ops import adjust, get_op, list_ops

OPS = {
    "brightness": {"factor": 1.3},
    "contrast": {"factor": 1.5},
    "gamma": {"gamma": 0.7},
    "auto_contrast": {},
    "equalize": {},
    "clahe": {},
    "grayscale": {},
    "invert": {},
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_grey_in_grey_out(name: str, gray_photo: np.ndarray) -> None:
    out = get_op(name)(gray_photo, **OPS[name])
    assert out.shape == gray_photo.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", sorted(OPS))
def test_colour_in_colour_out_except_grayscale(name: str, photo: np.ndarray) -> None:
    before = photo.copy()
    out = get_op(name)(photo, **OPS[name])
    expected = photo.shape[:2] if name == "grayscale" else photo.shape
    assert out.shape == expected and out.dtype == np.uint8
    np.testing.assert_array_equal(photo, before)  # the input is never modified


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8), np.float32), np.zeros((1, 8, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8)],
    ids=["float", "4d", "4-channels"],
)
def test_bad_images_raise_shape_error(name: str, bad: np.ndarray) -> None:
    with pytest.raises(pixlearn.ShapeError, match="image must have"):
        get_op(name)(bad)


def test_registered_in_adjust_category() -> None:
    names = {s.name for s in list_ops("adjust")}
    assert set(OPS) <= names
    for name in OPS:
        assert get_op(name).category == "adjust" and get_op(name).returns == "image"
        assert get_op(name).summary  # the docstring's first line


# --- brightness / contrast / gamma / invert ----------------------------------------------


def test_brightness_scales_and_clips_at_255() -> None:
    img = np.array([[0, 50, 100, 200]], np.uint8)
    np.testing.assert_array_equal(adjust.brightness(img, factor=2.0), [[0, 100, 200, 255]])
    np.testing.assert_array_equal(adjust.brightness(img, factor=0.0), np.zeros_like(img))
    np.testing.assert_array_equal(adjust.brightness(img, factor=1.0), img)


def test_brightness_rejects_negative_factor(photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=r"factor must be in \[0, inf\], got -1"):
        adjust.brightness(photo, factor=-1.0)


def test_contrast_blends_with_mean_luma(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(adjust.contrast(photo, factor=1.0), photo)
    flat = adjust.contrast(photo, factor=0.0)
    mean_luma = (photo @ np.array([0.299, 0.587, 0.114])).mean()
    assert np.unique(flat).size == 1 and abs(int(flat[0, 0, 0]) - mean_luma) <= 0.5
    assert adjust.contrast(photo, factor=1.5).std() > photo.std()


def test_gamma_one_is_identity_and_endpoints_stay(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(adjust.gamma(photo, gamma=1.0), photo)
    levels = np.arange(256, dtype=np.uint8)[None, :]
    bright = adjust.gamma(levels, gamma=0.5)
    assert bright[0, 0] == 0 and bright[0, 255] == 255
    assert (bright.astype(int) >= levels).all()  # gamma < 1 brightens
    expected = np.rint(255 * (np.arange(256) / 255) ** 2.2)
    np.testing.assert_array_equal(adjust.gamma(levels, gamma=2.2)[0], expected)


@pytest.mark.parametrize("value", [0.0, -0.5])
def test_gamma_must_be_positive(value: float, photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match="gamma must be > 0"):
        adjust.gamma(photo, gamma=value)


def test_invert_is_255_minus_and_an_involution(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(adjust.invert(photo), 255 - photo)
    np.testing.assert_array_equal(adjust.invert(adjust.invert(photo)), photo)


def test_grayscale_uses_bt601_weights(photo: np.ndarray) -> None:
    expected = photo @ np.array([0.299, 0.587, 0.114])
    assert np.abs(adjust.grayscale(photo) - expected).max() <= 1.0
    grey = adjust.grayscale(photo)
    again = adjust.grayscale(grey)
    np.testing.assert_array_equal(again, grey)
    assert again is not grey  # a copy, never the caller's array


# --- auto_contrast -------------------------------------------------------------------------


def test_auto_contrast_maps_percentiles_to_0_and_255(photo: np.ndarray) -> None:
    narrow = (photo // 4 + 100).astype(np.uint8)  # levels 100..163
    out = adjust.auto_contrast(narrow, percentiles=(2.0, 98.0))
    lo, hi = np.percentile(narrow, (2.0, 98.0), method="inverted_cdf")
    assert (out[narrow <= lo] == 0).all() and (out[narrow >= hi] == 255).all()
    inside = (narrow > lo) & (narrow < hi)
    expected = np.rint((narrow[inside].astype(float) - lo) * 255 / (hi - lo))
    np.testing.assert_array_equal(out[inside], expected)


def test_auto_contrast_full_range_is_minmax_stretch() -> None:
    img = np.array([[60, 80, 100]], np.uint8)
    np.testing.assert_array_equal(adjust.auto_contrast(img, percentiles=(0, 100)), [[0, 128, 255]])


def test_auto_contrast_leaves_flat_image_alone() -> None:
    flat = np.full((4, 4, 3), 77, np.uint8)
    out = adjust.auto_contrast(flat)
    np.testing.assert_array_equal(out, flat)
    assert out is not flat


@pytest.mark.parametrize("percentiles", [(99.0, 1.0), (-1.0, 50.0), (10.0, 101.0), (5.0, 5.0)])
def test_auto_contrast_rejects_bad_percentiles(percentiles: tuple[float, float], photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match="percentiles"):
        adjust.auto_contrast(photo, percentiles=percentiles)


# --- equalize / clahe ----------------------------------------------------------------------


def test_equalize_spreads_a_narrow_histogram(gray_photo: np.ndarray) -> None:
    narrow = (gray_photo // 12 + 100).astype(np.uint8)  # about 21 levels wide
    assert np.ptp(narrow) <= 22
    out = adjust.equalize(narrow)
    assert out.min() == 0 and out.max() == 255
    assert np.unique(out).size == np.unique(narrow).size  # a monotone remap: no levels merged
    order = np.argsort(narrow, axis=None, kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()


def test_equalize_luma_keeps_grey_pixels_grey(gray_photo: np.ndarray) -> None:
    narrow = (gray_photo // 12 + 100).astype(np.uint8)
    rgb = np.dstack([narrow] * 3)
    out = adjust.equalize(rgb)
    assert np.abs(out.astype(int) - out[..., :1]).max() <= 1  # R = G = B still
    assert np.abs(out[..., 0].astype(int) - adjust.equalize(narrow)).max() <= 2


def test_equalize_per_channel_equalises_each_channel(photo: np.ndarray) -> None:
    out = adjust.equalize(photo, per_channel=True)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], adjust.equalize(np.ascontiguousarray(photo[..., c])))


def test_clahe_raises_local_contrast(gray_photo: np.ndarray) -> None:
    narrow = (gray_photo // 8 + 90).astype(np.uint8)
    out = adjust.clahe(narrow, clip_limit=3.0, tile=(4, 4))
    assert out.std() > 2 * narrow.std()
    rgb_out = adjust.clahe(np.dstack([narrow] * 3), clip_limit=3.0, tile=(4, 4))
    assert np.abs(rgb_out[..., 1].astype(int) - out).max() <= 2


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"clip_limit": 0.0}, "clip_limit must be > 0"),
        ({"tile": (0, 8)}, r"tile\[0\]"),
        ({"tile": (8, -1)}, r"tile\[1\]"),
    ],
)
def test_clahe_rejects_bad_options(options: dict, match: str, photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=match):
        adjust.clahe(photo, **options)


def test_options_from_strings_are_coerced() -> None:
    assert get_op("clahe").validate({"tile": "4,6", "clip_limit": "3"}) == {"tile": (4, 6), "clip_limit": 3.0}
    with pytest.raises(pixlearn.UnknownNameError, match="did you mean 'clip_limit'"):
        get_op("clahe").validate({"cliplimit": 2})
