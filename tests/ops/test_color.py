"""Colour: colour-space conversion, dominant colours and quality measurements."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops import get_op
from pixlearn.ops.color import EXTRA_COLORS, color_name, convert_color, css_color_name, dominant_colors, quality

RED, LIME, BLUE, GREEN = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 128, 0)


def _stripes(height: int, width: int, parts: list[tuple[tuple[int, int, int], float]]) -> np.ndarray:
    """Vertical stripes of the given colours taking the given fractions of the width."""
    img = np.zeros((height, width, 3), np.uint8)
    start = 0
    for colour, frac in parts:
        stop = start + round(frac * width)
        img[:, start:stop] = colour
        start = stop
    return img


# --------------------------------------------------------------------------- dominant_colors


@pytest.mark.parametrize("size", [(20, 50), (200, 300)])  # whole image (1000 px) and sampled (60000 px)
def test_dominant_colors_of_three_colours(size):
    img = _stripes(*size, [(BLUE, 0.2), (RED, 0.5), (LIME, 0.3)])
    colours = dominant_colors(img, k=5)
    assert [c["rgb"] for c in colours] == [list(RED), list(LIME), list(BLUE)]
    assert [c["name"] for c in colours] == ["red", "lime", "blue"]
    assert [c["hex"] for c in colours] == ["#ff0000", "#00ff00", "#0000ff"]
    for c, expected in zip(colours, [0.5, 0.3, 0.2]):
        assert c["fraction"] == pytest.approx(expected, abs=0.01)
    assert sum(c["fraction"] for c in colours) == pytest.approx(1.0, abs=1e-6)


def test_dominant_colors_on_a_photo_are_sorted_plain_and_reproducible(photo):
    colours = dominant_colors(photo, k=4, seed=3)
    assert len(colours) == 4
    fractions = [c["fraction"] for c in colours]
    assert fractions == sorted(fractions, reverse=True) and all(f > 0 for f in fractions)
    assert sum(fractions) == pytest.approx(1.0, abs=1e-6)
    for c in colours:
        assert set(c) == {"rgb", "hex", "name", "fraction"}
        assert type(c["fraction"]) is float and all(type(v) is int for v in c["rgb"])
        assert c["hex"] == "#{:02x}{:02x}{:02x}".format(*c["rgb"])
    assert json.loads(json.dumps(colours)) == colours
    assert dominant_colors(photo, k=4, seed=3) == colours


def test_single_colour_image_gives_one_entry():
    img = np.full((30, 40, 3), (0, 128, 0), np.uint8)
    expected = [{"rgb": [0, 128, 0], "hex": "#008000", "name": "green", "fraction": 1.0}]
    assert dominant_colors(img, k=5) == expected


def test_fewer_distinct_colours_than_k_gives_no_empty_clusters():
    img = _stripes(10, 10, [(RED, 0.6), (BLUE, 0.4)])
    colours = dominant_colors(img, k=8)
    assert [(c["name"], c["fraction"]) for c in colours] == [("red", 0.6), ("blue", 0.4)]


def test_dominant_colors_of_a_grey_image_are_grey():
    img = np.zeros((10, 10), np.uint8)
    img[:, :3] = 200
    got = [(c["rgb"], c["fraction"]) for c in dominant_colors(img, k=3)]
    assert got == [([0, 0, 0], 0.7), ([200, 200, 200], 0.3)]


def test_css_names_are_nearest_by_ciede2000():
    assert css_color_name((254, 1, 2)) == "red"
    assert css_color_name((0, 130, 2)) == "green"
    assert css_color_name((255, 255, 255)) == "white"
    assert css_color_name((0, 255, 255)) == "aqua"  # aqua == cyan: the alphabetically first
    assert css_color_name((128, 128, 128)) == "gray"


@pytest.mark.parametrize("rgb", [(60, 40, 30), (50, 35, 25), (40, 26, 13), (70, 45, 20), (45, 30, 20), (101, 67, 33)])
def test_dark_browns_are_named_brown_not_black(rgb):
    img = np.zeros((8, 8, 3), np.uint8)
    img[:5] = rgb
    img[5:] = (245, 245, 245)
    colours = dominant_colors(img, k=2)
    assert colours[0]["rgb"] == list(rgb)
    assert colours[0]["name"] == "darkbrown" == color_name(rgb)
    assert css_color_name(rgb) != "darkbrown"  # the CSS names alone have no dark brown


def test_color_names_use_ciede2000_over_css_and_extra_names():
    assert [color_name(c) for c in [(0, 0, 0), (12, 12, 12), (255, 0, 0), (150, 75, 0), (54, 69, 79), (128, 0, 32)]] == [
        "black", "black", "red", "brown", "charcoal", "burgundy"]
    assert set(EXTRA_COLORS) >= {"darkbrown", "brown", "taupe", "charcoal"}
    with pytest.raises(ConfigError, match="three values in 0..255"):
        color_name((300, 0, 0))


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": 65}, {"sample": 10}, {"seed": -1}, {"k": 2.5}])
def test_dominant_colors_rejects_bad_options(bad):
    with pytest.raises(ConfigError):
        dominant_colors(np.zeros((4, 4, 3), np.uint8), **bad)


def test_dominant_colors_is_registered_as_data():
    spec = get_op("dominant_colors")
    assert (spec.category, spec.returns) == ("color", "data")
    assert spec.validate({"k": "3"}) == {"k": 3}


# --------------------------------------------------------------------------- quality


def _smooth(rng: np.random.Generator) -> np.ndarray:
    """A smooth mid-grey RGB image (gentle gradients, no clipping when noise is added)."""
    yy, xx = np.mgrid[:128, :128]
    base = 100 + 0.3 * xx + 0.2 * yy
    return np.stack([base, base + 10, base - 10], axis=2).round().astype(np.uint8)


def test_quality_of_white_and_black():
    white = quality(np.full((20, 30, 3), 255, np.uint8))
    assert white["brightness"] == 1.0 and white["contrast"] == 0.0 and white["sharpness"] == 0.0
    assert (white["width"], white["height"]) == (30, 20)
    assert quality(np.zeros((20, 30), np.uint8))["brightness"] == 0.0


def test_quality_contrast_is_rms_of_luma():
    img = np.zeros((20, 20), np.uint8)
    img[:, 10:] = 255
    assert quality(img)["contrast"] == pytest.approx(0.5)
    assert quality(img)["brightness"] == pytest.approx(0.5)


def test_blur_lowers_sharpness(photo):
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    assert quality(blurred)["sharpness"] < 0.5 * quality(photo)["sharpness"]


def test_noise_sigma_estimates_added_gaussian_noise(rng):
    clean = _smooth(rng)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).round().astype(np.uint8)
    q_clean, q_noisy = quality(clean), quality(noisy)
    assert q_noisy["noise_sigma"] == pytest.approx(10, abs=3)
    assert q_noisy["noise_sigma"] > q_clean["noise_sigma"] + 5


def test_quality_values_are_plain_json(photo):
    q = quality(photo)
    assert set(q) == {"brightness", "contrast", "sharpness", "noise_sigma", "width", "height"}
    assert all(type(q[k]) is float for k in ("brightness", "contrast", "sharpness", "noise_sigma"))
    assert type(q["width"]) is int and type(q["height"]) is int
    assert 0 < q["brightness"] < 1 and 0 < q["contrast"] < 0.5
    assert json.loads(json.dumps(q)) == q
    assert quality(np.full((8, 8), 7, np.uint8))["noise_sigma"] == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------- convert_color


def test_hsv_uses_opencv_8bit_ranges():
    px = np.array([[RED, LIME, BLUE]], np.uint8)
    hsv = convert_color(px, target="hsv")
    assert hsv[0, :, 0].tolist() == [0, 60, 120]  # hue in degrees / 2
    assert hsv[0, :, 1].tolist() == [255, 255, 255] and hsv[0, :, 2].tolist() == [255, 255, 255]


def test_rgb_is_not_treated_as_bgr():
    red = np.array([[RED]], np.uint8)
    _, a, b = convert_color(red, target="lab")[0, 0].tolist()
    assert a > 128 + 60 and b > 128 + 40  # red: a* ~ +80, b* ~ +67; as BGR it would read blue
    y, cr, cb = convert_color(red, target="ycrcb")[0, 0].tolist()
    assert y == 76 and cr > 200 and cb < 128  # Y, Cr, Cb order
    assert convert_color(red, target="gray").tolist() == [[76]]


def test_lab_of_white_and_gray_expansion():
    white = np.full((1, 1, 3), 255, np.uint8)
    assert convert_color(white, target="lab")[0, 0].tolist() == [255, 128, 128]
    gray = np.array([[0, 77, 255]], np.uint8)
    assert convert_color(gray, source="gray", target="rgb").tolist() == [[[0] * 3, [77] * 3, [255] * 3]]


@pytest.mark.parametrize("space", ["hsv", "lab", "ycrcb"])
def test_round_trip_is_close(photo, space):
    back = convert_color(convert_color(photo, target=space), source=space, target="rgb")
    err = np.abs(back.astype(int) - photo).mean()
    assert err < 2.0
    assert back.dtype == np.uint8 and back.shape == photo.shape


def test_conversion_between_non_rgb_spaces_goes_through_rgb(photo):
    hsv = convert_color(photo, target="hsv")
    expected = cv2.cvtColor(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), cv2.COLOR_RGB2Lab)
    np.testing.assert_array_equal(convert_color(hsv, source="hsv", target="lab"), expected)
    same = convert_color(photo, source="rgb", target="rgb")
    assert same is not photo and np.array_equal(same, photo)


def test_convert_color_errors():
    with pytest.raises(ShapeError, match="source='gray'"):
        convert_color(np.zeros((4, 4, 3), np.uint8), source="gray", target="rgb")
    with pytest.raises(ShapeError):
        convert_color(np.zeros((4, 4), np.uint8), target="hsv")
    with pytest.raises(ShapeError, match="float32"):
        convert_color(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ConfigError, match="'hsv'"):
        convert_color(np.zeros((4, 4, 3), np.uint8), target="hsl")


@pytest.mark.parametrize("func", [dominant_colors, quality])
def test_float_input_is_a_shape_error(func):
    with pytest.raises(ShapeError):
        func(np.zeros((4, 4, 3), np.float64))
