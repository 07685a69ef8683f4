"""Features: HOG/LBP/colour histograms, SIFT/ORB keypoints, matching, RANSAC homography."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, PixlearnError, ShapeError, UnknownNameError
from pixlearn.ops import features as F

# a known perspective warp: slight rotation/shear, shift, and a little perspective
H_TRUE = np.array([[0.92, 0.06, 18.0], [-0.05, 0.95, 12.0], [8e-5, -4e-5, 1.0]])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8, a real textured photo


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:]


@pytest.mark.parametrize("detector", [F.sift, F.orb])
def test_homography_recovered_from_a_known_warp(astronaut, detector):
    h, w = astronaut.shape[:2]
    warped = cv2.warpPerspective(astronaut, H_TRUE, (w, h))
    kp_a, kp_b = detector(astronaut), detector(warped)
    matches, dist = F.match_descriptors(kp_a, kp_b, ratio=0.75)
    assert matches.shape[1] == 2 and len(matches) >= 20
    assert np.all(np.diff(dist) >= 0)  # sorted by distance
    H, inliers = F.find_homography(kp_a.points[matches[:, 0]], kp_b.points[matches[:, 1]])
    assert H.shape == (3, 3) and H.dtype == np.float64 and H[2, 2] == pytest.approx(1.0)
    assert inliers.dtype == bool and inliers.shape == (len(matches),) and inliers.mean() > 0.5
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], float)
    err = np.abs(_apply(H, corners) - _apply(H_TRUE, corners)).max()
    assert err < 2.0, err


def test_keypoints_are_xy_with_matching_arrays(astronaut):
    kp = F.sift(astronaut, max_features=200)
    assert len(kp) == 200
    assert kp.points.dtype == np.float32 and kp.points.shape == (200, 2)
    assert kp.size.shape == kp.angle.shape == kp.response.shape == (200,)
    assert kp.descriptors.shape == (200, 128) and kp.descriptors.dtype == np.float32
    # x is the column (< width), y the row (< height): use a non-square crop to tell them apart
    crop = astronaut[:200, :500]
    kp = F.orb(crop, max_features=300)
    assert kp.descriptors.dtype == np.uint8 and kp.descriptors.shape[1] == 32
    assert kp.points[:, 0].max() > 200  # some x beyond the crop's height: x is a column
    assert kp.points[:, 1].max() < 200
    d = kp.to_dict()
    assert d["count"] == len(kp) and len(d["points"][0]) == 2


def test_flat_image_gives_no_keypoints_and_no_matches():
    flat = np.full((64, 64), 100, np.uint8)
    kp = F.orb(flat)
    assert len(kp) == 0 and kp.descriptors.shape == (0, 32)
    m, d = F.match_descriptors(kp, kp)
    assert m.shape == (0, 2) and d.shape == (0,)


def test_match_ratio_and_cross_check():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 16)).astype(np.float32)
    b = a[::-1] + rng.normal(scale=0.01, size=a.shape).astype(np.float32)
    m, _ = F.match_descriptors(a, b, cross_check=True)
    assert sorted(m[:, 0].tolist()) == list(range(30))
    assert np.all(m[:, 1] == 29 - m[:, 0])
    # two identical candidates in b: the ratio test rejects the ambiguous match
    amb = np.array([[1, 0], [1, 0], [0, 5]], np.float32)
    m, _ = F.match_descriptors(amb[:1], amb[:2])
    assert len(m) == 0
    m, _ = F.match_descriptors(amb[:1], amb[:2], ratio=1.0)
    assert len(m) == 1


def test_match_rejects_mixed_descriptor_types():
    with pytest.raises(ShapeError, match="SIFT with SIFT"):
        F.match_descriptors(np.zeros((3, 32), np.uint8), np.zeros((3, 32), np.float32))
    with pytest.raises(ShapeError, match="float32"):
        F.match_descriptors(np.zeros((3, 8), np.float64), np.zeros((3, 8), np.float64))


@pytest.mark.parametrize("n", [0, 1, 3])
def test_homography_needs_four_matches(n):
    pts = np.arange(2 * n, dtype=float).reshape(n, 2)
    with pytest.raises(ShapeError, match="at least 4 point matches, got %d" % n):
        F.find_homography(pts, pts)


def test_homography_argument_errors():
    with pytest.raises(ShapeError, match="same length"):
        F.find_homography(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ShapeError, match=r"dst_pts must have shape \(N, 2\)"):
        F.find_homography(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(PixlearnError):
        F.find_homography(np.zeros((5, 2)), np.zeros((5, 2)))  # all points identical


@pytest.mark.parametrize(
    ("shape", "ppc", "cpb", "orient"),
    [((64, 64), (8, 8), (2, 2), 9), ((48, 80, 3), (8, 8), (3, 3), 9), ((37, 53), (6, 5), (2, 1), 12)],
)
def test_hog_length_matches_the_formula(shape, ppc, cpb, orient):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    v = F.hog(img, orientations=orient, pixels_per_cell=ppc, cells_per_block=cpb)
    n_r = shape[0] // ppc[0] - cpb[0] + 1
    n_c = shape[1] // ppc[1] - cpb[1] + 1
    assert v.dtype == np.float32 and v.shape == (n_r * n_c * cpb[0] * cpb[1] * orient,)


def test_hog_tells_stripe_directions_apart():
    img = np.zeros((32, 32), np.uint8)
    img[::4] = 255
    horizontal = F.hog(img)
    vertical = F.hog(np.ascontiguousarray(img.T))
    assert not np.allclose(horizontal, vertical)


def test_hog_too_small_image_is_a_shape_error():
    with pytest.raises(ShapeError, match="smaller than one HOG block"):
        F.hog(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize(("method", "bins"), [("uniform", 10), ("nri_uniform", 59), ("default", 256)])
def test_lbp_histogram_sums_to_one(gray_photo, method, bins):
    h = F.lbp_histogram(gray_photo, method=method)
    assert h.dtype == np.float32 and h.shape == (bins,)
    assert float(h.sum()) == pytest.approx(1.0, abs=1e-5)
    assert (h >= 0).all()


def test_lbp_unknown_method_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'uniform'"):
        F.lbp_histogram(np.zeros((8, 8), np.uint8), method="unifrom")  # type: ignore[arg-type]


@pytest.mark.parametrize("space", ["rgb", "hsv"])
def test_color_histogram_of_pure_red_peaks_in_one_bin(space):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    h = F.color_histogram(red, bins=8, space=space)
    assert h.shape == (512,) and h.dtype == np.float32
    assert float(h.sum()) == pytest.approx(1.0)
    assert float(h.max()) == pytest.approx(1.0) and np.count_nonzero(h) == 1
    # rgb: r in the top bin, g and b in the bottom; hsv: hue 0, full saturation and value
    assert int(h.argmax()) == (7 * 64 if space == "rgb" else 0 * 64 + 7 * 8 + 7)


def test_color_histogram_separates_colours(photo):
    blue = np.zeros_like(photo)
    blue[..., 2] = 255
    assert np.argmax(F.color_histogram(blue)) != np.argmax(F.color_histogram(np.roll(blue, 1, axis=2)))
    assert float(F.color_histogram(photo).sum()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda img: F.hog(img),
        lambda img: F.lbp_histogram(img),
        lambda img: F.color_histogram(img),
        lambda img: F.sift(img),
        lambda img: F.orb(img),
    ],
)
def test_inputs_are_validated(call):
    with pytest.raises(ShapeError, match="dtype uint8"):
        call(np.zeros((64, 64), np.float32))
    with pytest.raises(ShapeError, match="shape"):
        call(np.zeros((64, 64, 4), np.uint8))


def test_option_errors_name_the_option():
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(ConfigError, match="bins"):
        F.color_histogram(img, bins=0)
    with pytest.raises(ConfigError, match="max_features"):
        F.orb(img, max_features=0)
    with pytest.raises(ConfigError, match="pixels_per_cell"):
        F.hog(img, pixels_per_cell=(0, 8))
    with pytest.raises(UnknownNameError, match="did you mean 'hsv'"):
        F.color_histogram(img, space="hvs")  # type: ignore[arg-type]


def test_features_are_not_registered_as_ops():
    # their outputs are arrays / Keypoints, not JSON-able data
    from pixlearn.ops import list_ops

    names = {s.name for s in list_ops()}
    assert not names & {"hog", "lbp_histogram", "color_histogram", "sift", "orb", "match_descriptors", "find_homography"}
    assert set(F.__all__) >= {"hog", "lbp_histogram", "color_histogram", "sift", "orb", "match_descriptors",
                              "find_homography", "Keypoints"}
