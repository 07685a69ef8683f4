"""Geometry: resize, crop, pad, rotate and flip, checked against numpy and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops import get_op
from pixlearn.ops.geometry import crop, flip, pad, resize, rotate


@pytest.fixture
def wide(rng) -> np.ndarray:
    """A 60x100 (height x width) RGB image of random pixels: non-square, so axes can't be confused."""
    return rng.integers(0, 256, (60, 100, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- resize


def test_resize_size_is_height_width(wide):
    out = resize(wide, size=(30, 80))
    assert out.shape == (30, 80, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("size", [(50, 50), (200, 120), (31, 400), (7, 9)])
def test_keep_aspect_fits_the_box_and_keeps_the_ratio(wide, size):
    out = resize(wide, size=size, mode="keep_aspect")
    h, w = out.shape[:2]
    assert h <= size[0] and w <= size[1] and (h == size[0] or w == size[1])
    # aspect kept within a pixel: the other side is the exact scaled length, rounded
    assert abs(w - h * 100 / 60) <= 1 and abs(h - w * 60 / 100) <= 1


def test_pad_mode_gives_the_exact_size_with_the_content_centred():
    img = np.full((60, 100, 3), 200, np.uint8)
    out = resize(img, size=(80, 80), mode="pad", fill=7)
    assert out.shape == (80, 80, 3)
    content = (out == 200).all(axis=2)
    rows = np.nonzero(content.any(axis=1))[0]
    assert content[:, 0].any() and content[:, -1].any()  # content spans the full width (80 px)
    assert len(rows) == 48  # 60 * 80 / 100
    top, bottom = rows[0], 80 - 1 - rows[-1]
    assert abs(top - bottom) <= 1 and top == 16
    assert (out[:top] == 7).all() and (out[80 - bottom :] == 7).all()


def test_pad_mode_on_a_grey_image_and_the_same_aspect():
    img = np.full((40, 20), 255, np.uint8)
    assert resize(img, size=(80, 40), mode="pad").min() == 255  # no padding needed
    out = resize(img, size=(40, 40), mode="pad")
    assert out.shape == (40, 40) and (out[:, :10] == 0).all() and (out[:, 10:30] == 255).all()


def test_nearest_keeps_label_values():
    labels = np.zeros((40, 40), np.uint8)
    labels[:20] = 3
    labels[20:, 20:] = 7
    assert set(np.unique(resize(labels, size=(17, 23), interpolation="nearest"))) == {0, 3, 7}


def test_area_and_auto_agree_when_shrinking(photo):
    area = resize(photo, size=(50, 60), interpolation="area")
    np.testing.assert_array_equal(resize(photo, size=(50, 60)), area)


def test_resize_errors(wide):
    with pytest.raises(ConfigError, match=r"size=\(height, width\)"):
        resize(wide)
    with pytest.raises(ConfigError):
        resize(wide, size=(0, 10))
    with pytest.raises(ConfigError):
        resize(wide, size=(10, 10), interpolation="bilinear")
    with pytest.raises(ShapeError):
        resize(wide.astype(np.float32), size=(10, 10))


# --------------------------------------------------------------------------- crop


def test_crop_known_values_and_copy(wide):
    out = crop(wide, top=5, left=10, height=20, width=30)
    np.testing.assert_array_equal(out, wide[5:25, 10:40])
    out[:] = 0
    assert wide[5:25, 10:40].any()  # a copy, not a view
    assert crop(wide, top=50, left=90).shape == (10, 10, 3)  # None: to the edges


@pytest.mark.parametrize(
    "box",
    [
        {"top": -1, "height": 5},
        {"left": 95, "width": 6},
        {"top": 60},
        {"height": 61},
        {"width": 0},
    ],
)
def test_crop_out_of_bounds_is_a_config_error(wide, box):
    with pytest.raises(ConfigError, match="60x100"):  # the message gives the image size
        crop(wide, **box)
    with pytest.raises(ConfigError, match="integers"):
        crop(wide, top=1.5)


# --------------------------------------------------------------------------- pad


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_equals_numpy_pad(wide, mode):
    kwargs = {"constant_values": 9} if mode == "constant" else {}
    expected = np.pad(wide, ((1, 2), (3, 4), (0, 0)), mode=mode, **kwargs)
    extra = {"fill": 9} if mode == "constant" else {}
    np.testing.assert_array_equal(pad(wide, top=1, bottom=2, left=3, right=4, mode=mode, **extra), expected)


def test_pad_grey_and_errors(gray_photo):
    assert pad(gray_photo, top=2).shape == (130, 128)
    with pytest.raises(ConfigError):
        pad(gray_photo, left=-1)
    with pytest.raises(ConfigError):
        pad(gray_photo, fill=256)
    with pytest.raises(ConfigError):
        pad(gray_photo, mode="wrap")


# --------------------------------------------------------------------------- rotate


@pytest.mark.parametrize("angle,k", [(90, 1), (-90, -1), (180, 2), (270, 3), (450, 1), (0, 0)])
def test_rotate_multiples_of_90_with_expand_equal_rot90(wide, angle, k):
    np.testing.assert_array_equal(rotate(wide, angle=angle, expand=True), np.rot90(wide, k))


def test_rotate_90_on_a_square_image_without_expand_is_exact(photo):
    np.testing.assert_array_equal(rotate(photo, angle=90), np.rot90(photo))


def test_rotate_keeps_or_expands_the_canvas(wide):
    assert rotate(wide, angle=30).shape == wide.shape
    assert rotate(wide, angle=90).shape == wide.shape  # non-square, no expand: corners cut
    h, w = rotate(wide, angle=45, expand=True).shape[:2]
    expected = round((60 + 100) / np.sqrt(2))
    assert abs(h - expected) <= 1 and abs(w - expected) <= 1


def test_rotate_turns_counter_clockwise():
    img = np.zeros((21, 21), np.uint8)
    img[10, 15:] = 255  # a bar pointing right (east)
    out = rotate(img, angle=45, interpolation="nearest")
    rows, cols = np.nonzero(out > 127)
    assert rows.mean() < 10 and cols.mean() > 10  # now points up-right (north-east)
    assert rotate(img, angle=30, fill=50)[0, 0] == 50


def test_rotate_errors(wide):
    with pytest.raises(ConfigError):
        rotate(wide, angle=float("nan"))
    with pytest.raises(ConfigError):
        rotate(wide, angle=10, interpolation="area")


# --------------------------------------------------------------------------- flip


@pytest.mark.parametrize(
    "direction,expected",
    [("horizontal", np.fliplr), ("vertical", np.flipud), ("both", lambda a: a[::-1, ::-1])],
)
def test_flip_equals_numpy(wide, direction, expected):
    np.testing.assert_array_equal(flip(wide, direction=direction), expected(wide))


def test_flip_errors(wide):
    with pytest.raises(ConfigError, match="horizontal"):
        flip(wide, direction="diagonal")
    with pytest.raises(ShapeError):
        flip(wide[..., :2])
    with pytest.raises(ShapeError):
        flip(wide.astype(np.float64))


def test_geometry_ops_are_registered():
    for name in ("resize", "crop", "pad", "rotate", "flip"):
        spec = get_op(name)
        assert (spec.category, spec.returns) == ("geometry", "image")
    assert get_op("resize").validate({"size": [32, 48], "mode": "pad"}) == {"size": (32, 48), "mode": "pad"}
    assert get_op("rotate").validate({"angle": "90", "expand": "true"}) == {"angle": 90.0, "expand": True}
