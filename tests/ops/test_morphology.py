"""Morphology: erode, dilate, open, close and gradient, with known answers on masks."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops import get_op
from pixlearn.ops.morphology import closing, dilate, erode, morph_gradient, opening, structuring_element


def _square(side: int = 11, canvas: int = 31) -> np.ndarray:
    mask = np.zeros((canvas, canvas), np.uint8)
    start = (canvas - side) // 2
    mask[start : start + side, start : start + side] = 255
    return mask


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("ksize", [3, 5, 7])
def test_erode_shrinks_a_square_by_half_the_kernel_per_side(ksize):
    out = erode(_square(11), ksize=ksize)
    side = 11 - 2 * (ksize // 2)
    np.testing.assert_array_equal(out, _square(side))


@pytest.mark.parametrize("ksize", [3, 5])
def test_dilate_grows_a_square_by_half_the_kernel_per_side(ksize):
    np.testing.assert_array_equal(dilate(_square(11), ksize=ksize), _square(11 + 2 * (ksize // 2)))


def test_iterations_repeat_the_operation():
    np.testing.assert_array_equal(erode(_square(11), ksize=3, iterations=2), _square(7))
    np.testing.assert_array_equal(dilate(_square(11), ksize=3, iterations=3), _square(17))


def test_shapes_differ_at_the_corners():
    dot = np.zeros((9, 9), np.uint8)
    dot[4, 4] = 255
    cross = dilate(dot, ksize=3, shape="cross")[3:6, 3:6] > 0
    np.testing.assert_array_equal(cross, structuring_element(3, "cross") > 0)
    assert (dilate(dot, ksize=3, shape="rect")[3:6, 3:6] == 255).all()
    assert dilate(dot, ksize=5, shape="ellipse")[2, 2] == 0  # the corner of a 5x5 ellipse is off


def test_open_removes_an_isolated_dot_and_keeps_the_square():
    mask = _square(11)
    mask[1, 1] = 255
    np.testing.assert_array_equal(opening(mask, ksize=3), _square(11))


def test_close_fills_a_small_hole():
    mask = _square(11)
    mask[15, 15] = 0
    np.testing.assert_array_equal(closing(mask, ksize=3), _square(11))


def test_gradient_is_dilation_minus_erosion(gray_photo):
    expected = dilate(gray_photo, ksize=5).astype(int) - erode(gray_photo, ksize=5)
    np.testing.assert_array_equal(morph_gradient(gray_photo, ksize=5), expected)
    band = morph_gradient(_square(11), ksize=3) > 0
    assert _bbox(band) == (9, 21, 9, 21) and not band[15, 15]


def test_colour_images_are_processed_per_channel(photo):
    out = erode(photo, ksize=3)
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 1], erode(np.ascontiguousarray(photo[..., 1]), ksize=3))


@pytest.mark.parametrize(
    "bad",
    [{"ksize": 4}, {"ksize": 0}, {"ksize": 3.5}, {"shape": "disk"}, {"iterations": 0}, {"iterations": True}],
)
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        erode(_square(), **bad)


@pytest.mark.parametrize("func", [erode, dilate, opening, closing, morph_gradient])
def test_float_input_is_a_shape_error(func):
    with pytest.raises(ShapeError, match="float32"):
        func(np.zeros((8, 8), np.float32))


def test_registered_names():
    assert get_op("open").func is opening and get_op("close").func is closing
    for name in ("erode", "dilate", "open", "close", "morph_gradient"):
        spec = get_op(name)
        assert (spec.category, spec.returns) == ("morphology", "image")
    assert get_op("erode").validate({"ksize": "5", "shape": "ellipse"}) == {"ksize": 5, "shape": "ellipse"}
    with pytest.raises(ConfigError, match="ellipse"):
        get_op("erode").validate({"shape": "elipse"})
