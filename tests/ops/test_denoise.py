"""Denoisers and sharpening: they remove noise (PSNR rises), keep shape and colour, and check options."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import pixlearn
from pixlearn.ops import denoise, get_op, list_ops

OPS = {
    "gaussian": {"sigma": 1.5},
    "median": {"ksize": 5},
    "bilateral": {},
    "nl_means": {"h": 20.0, "h_color": 20.0},
    "tv": {},
    "wavelet": {},
    "sharpen": {},
}


def _needs(name: str) -> None:
    if name == "wavelet":
        pytest.importorskip("pywt", reason="the wavelet op needs PyWavelets")


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    mse = np.mean((clean.astype(np.float64) - other.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def smooth() -> np.ndarray:
    """A smooth 48x48 grey image: the 'clean' reference."""
    yy, xx = np.mgrid[0:48, 0:48]
    return np.rint(128 + 60 * np.sin(xx / 10.0) * np.cos(yy / 13.0)).astype(np.uint8)


def _noisy(clean: np.ndarray, std: float = 20.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, std, clean.shape)
    return np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_shape_dtype_and_input_untouched(
    name: str, colour: bool, gray_photo: np.ndarray, photo: np.ndarray
) -> None:
    _needs(name)
    img = (photo if colour else gray_photo)[:48, :48].copy()
    before = img.copy()
    out = get_op(name)(img, **OPS[name])
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("name", sorted(set(OPS) - {"sharpen"}))
def test_denoisers_raise_psnr_of_a_noisy_smooth_image(name: str, smooth: np.ndarray) -> None:
    _needs(name)
    noisy = _noisy(smooth)
    gain = psnr(smooth, get_op(name)(noisy, **OPS[name])) - psnr(smooth, noisy)
    assert gain > 5.0, f"{name} improved PSNR by only {gain:.1f} dB"


@pytest.mark.parametrize("name", ["gaussian", "bilateral", "tv", "wavelet", "nl_means"])
def test_denoisers_raise_psnr_on_colour(name: str, smooth: np.ndarray) -> None:
    _needs(name)
    clean = np.dstack([smooth, np.flipud(smooth), 255 - smooth])[:32, :32].copy()
    noisy = _noisy(clean, seed=1)
    gain = psnr(clean, get_op(name)(noisy, **OPS[name])) - psnr(clean, noisy)
    assert gain > 4.0, f"{name} improved PSNR by only {gain:.1f} dB"


def test_gaussian_matches_opencv_and_keeps_flat_images(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(denoise.gaussian(photo, sigma=2.0), cv2.GaussianBlur(photo, (0, 0), 2.0))
    flat = np.full((16, 16, 3), 90, np.uint8)
    np.testing.assert_array_equal(denoise.gaussian(flat, sigma=3.0), flat)


@pytest.mark.parametrize("sigma", [0.0, -1.0])
@pytest.mark.parametrize("name", ["gaussian", "sharpen"])
def test_bad_sigma_raises_config_error(name: str, sigma: float, photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=rf"'sigma': {sigma} is out of range; expected float in \(0, 100\]"):
        get_op(name)(photo, sigma=sigma)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("gaussian", {"ksize": 4}, "'ksize': 4 is not odd"),
        ("median", {"ksize": 1}, r"'ksize': 1 is out of range; expected int, odd in \[3, 255\]"),
        ("median", {"ksize": 4}, "'ksize': 4 is not odd"),
        ("bilateral", {"sigma_color": 0.0}, "'sigma_color': 0.0 is out of range"),
        ("bilateral", {"ksize": -1}, "'ksize': -1 is out of range"),
        ("nl_means", {"h": -2.0}, "'h': -2.0 is out of range"),
        ("nl_means", {"patch_size": 6}, "'patch_size': 6 is not odd"),
        ("tv", {"weight": 0.0}, "'weight': 0.0 is out of range"),
        ("tv", {"max_iter": 0}, "'max_iter': 0 is out of range"),
        ("wavelet", {"noise_std": 0.0}, "'noise_std': 0.0 is out of range"),
        ("sharpen", {"amount": -0.5}, "'amount': -0.5 is out of range"),
    ],
)
def test_bad_options_raise_config_error(name: str, options: dict, match: str, gray_photo: np.ndarray) -> None:
    with pytest.raises(pixlearn.ConfigError, match=match):
        get_op(name)(gray_photo, **options)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.float64), np.zeros((2, 8, 8, 3), np.uint8)], ids=["float", "4d"]
)
def test_bad_images_raise_shape_error(name: str, bad: np.ndarray) -> None:
    with pytest.raises(pixlearn.ShapeError, match="image must have"):
        get_op(name)(bad)


def test_median_removes_salt_and_pepper(smooth: np.ndarray) -> None:
    dirty = smooth.copy()
    rng = np.random.default_rng(3)
    idx = rng.choice(dirty.size, 40, replace=False)
    dirty.flat[idx[:20]] = 0
    dirty.flat[idx[20:]] = 255
    cleaned = denoise.median(dirty, ksize=3)
    assert np.abs(cleaned.astype(int) - smooth).max() <= 12  # no impulse survives


def test_bilateral_keeps_an_edge_that_gaussian_blurs() -> None:
    img = np.zeros((16, 16), np.uint8)
    img[:, 8:] = 200
    kept = denoise.bilateral(img, ksize=7, sigma_color=20.0, sigma_space=5.0)
    blurred = denoise.gaussian(img, sigma=2.0)
    np.testing.assert_array_equal(kept, img)
    assert blurred[0, 7] > 50 and blurred[0, 8] < 150


def test_nl_means_colour_uses_opencv_bgr_order(photo: np.ndarray) -> None:
    img = _noisy(photo[:32, :32], std=15.0)
    ours = denoise.nl_means(img, h=10.0, h_color=10.0)
    bgr = np.ascontiguousarray(img[..., ::-1])
    expected = cv2.fastNlMeansDenoisingColored(bgr, None, 10.0, 10.0, 7, 21)[..., ::-1]
    np.testing.assert_array_equal(ours, expected)


def test_tv_matches_scikit_image_rounded(smooth: np.ndarray) -> None:
    from skimage.restoration import denoise_tv_chambolle

    noisy = _noisy(smooth)
    expected = np.rint(denoise_tv_chambolle(noisy, weight=0.2) * 255)
    np.testing.assert_array_equal(denoise.tv(noisy, weight=0.2), expected)


def test_wavelet_noise_std_is_in_grey_levels(smooth: np.ndarray) -> None:
    pytest.importorskip("pywt")
    from skimage.restoration import denoise_wavelet

    noisy = _noisy(smooth)
    expected = np.rint(denoise_wavelet(noisy.astype(np.float64) / 255, sigma=20.0 / 255) * 255)
    assert np.abs(denoise.wavelet(noisy, noise_std=20.0).astype(int) - expected).max() <= 1
    flat = np.full((16, 16), 40, np.uint8)
    np.testing.assert_array_equal(denoise.wavelet(flat, noise_std=5.0), flat)


def test_sharpen_increases_edge_contrast_and_zero_amount_is_identity() -> None:
    step = np.zeros((12, 12), np.uint8)
    step[:, 6:] = 150
    soft = denoise.gaussian(step, sigma=1.5)
    sharp = denoise.sharpen(soft, sigma=1.5, amount=1.5)
    assert int(sharp[5, 6]) - int(sharp[5, 5]) > int(soft[5, 6]) - int(soft[5, 5])
    np.testing.assert_array_equal(denoise.sharpen(soft, amount=0.0), soft)
    assert denoise.sharpen(np.full((4, 4), 250, np.uint8), amount=5.0).max() == 250  # flat stays flat


def test_registered_in_denoise_category() -> None:
    names = {s.name for s in list_ops("denoise")}
    assert set(OPS) <= names
    for name in OPS:
        assert get_op(name).category == "denoise" and get_op(name).returns == "image"
    assert get_op("gaussian").validate({"sigma": "2.5", "ksize": "5"}) == {"sigma": 2.5, "ksize": 5}
    clean = get_op("wavelet").validate({"method": "visu", "noise_std": "4"})
    assert clean == {"method": "visu", "noise_std": 4.0}
    with pytest.raises(pixlearn.ConfigError, match="method"):
        get_op("wavelet").validate({"method": "BayesShrink"})
