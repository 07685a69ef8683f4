"""Edge detectors: documented scaling of magnitudes, Canny on a known shape, the median rule, registry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import pixlearn
from pixlearn.ops import edges, get_op, list_ops

OPS = {"sobel": {}, "scharr": {}, "laplacian": {}, "canny": {}}


@pytest.fixture
def step() -> np.ndarray:
    """A vertical step from 0 to 100 between columns 7 and 8."""
    img = np.zeros((16, 16), np.uint8)
    img[:, 8:] = 100
    return img


@pytest.fixture
def square() -> np.ndarray:
    """A filled 20x20 square of 200 on a 40x40 black image."""
    img = np.zeros((40, 40), np.uint8)
    img[10:30, 10:30] = 200
    return img


@pytest.mark.parametrize("name", sorted(OPS))
def test_grey_and_rgb_give_grey_uint8(name: str, photo: np.ndarray, gray_photo: np.ndarray) -> None:
    before = photo.copy()
    for img in (gray_photo, photo):
        out = get_op(name)(img)
        assert out.shape == photo.shape[:2] and out.dtype == np.uint8
    np.testing.assert_array_equal(photo, before)


@pytest.mark.parametrize("name", sorted(OPS))
def test_rgb_is_processed_as_its_luma(name: str, photo: np.ndarray) -> None:
    luma = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    a, b = get_op(name)(photo).astype(int), get_op(name)(luma).astype(int)
    if name in ("sobel", "scharr"):
        # float gradient magnitudes: OpenCV's SIMD and scalar paths (chosen per stripe of its thread
        # pool) can round a value that lands on .5 either way, so a handful of pixels may differ by 1
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.002
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.float32), np.zeros((1, 8, 8, 3), np.uint8)], ids=["float", "4d"]
)
def test_bad_images_raise_shape_error(name: str, bad: np.ndarray) -> None:
    with pytest.raises(pixlearn.ShapeError, match="image must have"):
        get_op(name)(bad)


# --- gradient magnitudes -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sobel", "scharr"])
def test_normalised_gradient_of_a_step_is_its_height(name: str, step: np.ndarray) -> None:
    out = get_op(name)(step)
    np.testing.assert_array_equal(out[:, 7:9], 100)  # both sides of the step
    assert (out[:, :6] == 0).all() and (out[:, 10:] == 0).all()  # flat areas


@pytest.mark.parametrize("ksize", [1, 3, 5, 7])
def test_sobel_normalisation_holds_for_every_aperture(ksize: int, step: np.ndarray) -> None:
    assert edges.sobel(step, ksize=ksize).max() == 100


def test_explicit_scale_multiplies_the_raw_response_and_clips(step: np.ndarray) -> None:
    assert edges.sobel(step, scale=0.5)[0, 8] == 200  # raw 3x3 Sobel response 400, halved
    assert edges.sobel(step, scale=1.0)[0, 8] == 255  # raw 400, clipped — not stretched
    assert edges.scharr(step, scale=0.1)[0, 8] == 160  # raw 1600


def test_stretch_maps_the_image_range_to_0_255(step: np.ndarray) -> None:
    weak = (step // 10).astype(np.uint8)  # a step of 10
    assert edges.sobel(weak).max() == 10
    stretched = edges.sobel(weak, stretch=True)
    assert stretched.min() == 0 and stretched.max() == 255
    assert edges.laplacian(weak, stretch=True).max() == 255


def test_laplacian_of_a_point_and_of_flat_areas() -> None:
    img = np.zeros((7, 7), np.uint8)
    img[3, 3] = 200
    out = edges.laplacian(img)
    assert out[3, 3] == 200 and out[2, 3] == 50 and out[2, 2] == 0
    assert (edges.laplacian(np.full((7, 7), 90, np.uint8)) == 0).all()
    assert edges.laplacian(img, ksize=3).max() == 200
    assert edges.laplacian(img, scale=1.0)[3, 3] == 255  # raw -800: absolute value, clipped


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("sobel", {"ksize": 4}, r"'ksize': 4 is not odd; expected int, odd in \[1, 7\]"),
        ("sobel", {"scale": 0.0}, r"'scale': 0.0 is out of range; expected float \| None in \(0, 1000\]"),
        ("scharr", {"scale": -1.0}, "'scale': -1.0 is out of range"),
        ("laplacian", {"ksize": 9}, "'ksize': 9 is out of range"),
        ("canny", {"ksize": 1}, r"'ksize': 1 is out of range; expected int, odd in \[3, 7\]"),
        ("canny", {"low": 50}, "give both low and high"),
        ("canny", {"high": 50}, "give both low and high"),
        ("canny", {"low": 100, "high": 50}, r"high must be in \[100, inf\]"),
        ("canny", {"low": -5, "high": 50}, "'low': -5 is out of range"),
        ("canny", {"spread": 1.5}, r"'spread': 1.5 is out of range; expected float in \[0, 1\]"),
    ],
)
def test_bad_options_raise_config_error(name: str, options: dict, match: str, gray_photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=match):
        get_op(name)(gray_photo, **options)


# --- canny -----------------------------------------------------------------------------------


def _distance_to_border(shape: tuple[int, int], top: int, bottom: int) -> np.ndarray:
    """Chebyshev distance of each pixel to the outline of the square [top, bottom) x [top, bottom)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = (yy >= top) & (yy < bottom) & (xx >= top) & (xx < bottom)
    to_edge = np.minimum.reduce([yy - top, bottom - 1 - yy, xx - top, bottom - 1 - xx])
    outside = np.maximum.reduce([top - yy, yy - (bottom - 1), top - xx, xx - (bottom - 1)])
    return np.where(inside, to_edge, outside)


@pytest.mark.parametrize("options", [{"low": 50, "high": 150}, {}], ids=["given", "auto"])
def test_canny_of_a_filled_square_is_its_outline(options: dict, square: np.ndarray) -> None:
    out = edges.canny(square, **options)
    assert set(np.unique(out)) == {0, 255}
    dist = _distance_to_border(square.shape, 10, 30)
    on = out == 255
    assert (dist[on] <= 1).all()  # every edge pixel is on the border or next to it
    assert not on[dist >= 2].any()  # none in the interior, none far outside
    # the outline is closed: every row and column crossing the square has edge pixels at both sides
    for i in range(12, 28):
        assert on[i, 9:12].any() and on[i, 28:31].any() and on[9:12, i].any() and on[28:31, i].any()


def test_canny_colour_square_same_as_grey(square: np.ndarray) -> None:
    rgb = np.dstack([square, square // 2, square])
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(edges.canny(rgb, low=30, high=90), cv2.Canny(luma, 30, 90))


@pytest.mark.parametrize("spread", [0.0, 0.33, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(31, 17), (32, 18)], ids=["odd-count", "even-count"])
def test_auto_thresholds_follow_the_median_rule(
    spread: float, shape: tuple[int, int], rng: np.random.Generator
) -> None:
    img = rng.integers(0, 256, shape).astype(np.uint8)
    m = float(np.median(img))
    expected = (int(max(0, (1 - spread) * m)), int(min(255, (1 + spread) * m)))
    assert edges.canny_thresholds(img, spread=spread) == expected


def test_auto_thresholds_even_count_uses_mean_of_middle_values() -> None:
    img = np.array([[10, 20, 30, 41]], np.uint8)  # median 25.0
    assert edges.canny_thresholds(img, spread=0.2) == (20, 30)
    assert edges.canny_thresholds(np.full((3, 3), 250, np.uint8)) == (167, 255)  # high clipped at 255


def test_canny_without_thresholds_uses_the_median_rule(photo: np.ndarray) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    low, high = edges.canny_thresholds(photo, spread=0.4)
    assert (low, high) == edges.canny_thresholds(grey, spread=0.4)
    np.testing.assert_array_equal(edges.canny(photo, spread=0.4), cv2.Canny(grey, low, high))


# --- registry --------------------------------------------------------------------------------


def test_registered_in_edges_category() -> None:
    names = {s.name for s in list_ops("edges")}
    assert set(OPS) <= names
    for name in OPS:
        assert get_op(name).category == "edges"
    assert get_op("canny").returns == "mask" and get_op("sobel").returns == "image"


def test_misspelt_op_suggests_canny() -> None:
    with pytest.raises(pixlearn.UnknownNameError, match="did you mean 'canny'"):
        get_op("cany")


def test_canny_options_from_strings_are_coerced() -> None:
    clean = get_op("canny").validate({"low": "50", "high": "150"})
    assert clean == {"low": 50, "high": 150}
    assert all(type(v) is int for v in clean.values())
    clean = get_op("canny").validate({"l2-gradient": "true", "ksize": "5"})  # CLI spelling with a dash
    assert clean == {"l2_gradient": True, "ksize": 5}


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(pixlearn.UnknownNameError, match="did you mean 'high'"):
        get_op("canny").validate({"hihg": 100})
    with pytest.raises(pixlearn.ConfigError, match="'low'"):
        get_op("canny").validate({"low": "fifty"})
