"""Smoothing and denoising filters (Gaussian, median, bilateral, non-local means, TV, wavelet) and sharpening.

Every op takes a uint8 (H, W) or (H, W, 3) RGB image and returns a uint8 image of the
same shape: colour in, colour out. OpenCV runs the filters it has; total-variation and
wavelet denoising come from scikit-image, imported on first use. Borders are handled
by reflection without repeating the edge pixel (OpenCV's ``BORDER_REFLECT_101``,
``dcb|abcd|cba``) unless a docstring says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Kernel, Range, register_op

__all__ = ["gaussian", "median", "bilateral", "nl_means", "tv", "wavelet", "sharpen"]



_checked = check_image  # has a fast path for plain uint8 grey/RGB arrays


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _odd(value: int, name: str, *, low: int, zero_ok: bool = False) -> int:
    if zero_ok and value == 0:
        return value
    if value < low or value % 2 == 0:
        also = " (or 0)" if zero_ok else ""
        raise ConfigError(f"{name} must be an odd integer >= {low}{also}, got {value}")
    return value


def _unit_float_to_uint8(out: np.ndarray) -> np.ndarray:
    """scikit-image's float result in [0, 1] back to 0..255: ``round(255 * out)``, saturated.

    (``cv2.convertScaleAbs`` takes the absolute value, which is harmless here: the
    results are clipped to [0, 1] by scikit-image or stay within it up to rounding.)
    """
    return cv2.convertScaleAbs(out, alpha=255.0)


@register_op("gaussian", category="denoise")
def gaussian(
    image: np.ndarray,
    *,
    sigma: Annotated[float, Range(0, 100, low_open=True)] = 1.0,
    ksize: Annotated[int, Kernel(1, 255, also=(0,))] = 0,
) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (``cv2.GaussianBlur``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image; channels are blurred independently.
    sigma : float, default 1.0
        Standard deviation of the kernel in pixels, in (0, 100], the same along rows and columns.
    ksize : int, default 0
        Kernel width in pixels, odd, in [1, 255] and at most ``2 * max(H, W) + 1``. 0 lets OpenCV derive it from ``sigma``: the odd
        number ``round(6 * sigma + 1) | 1`` (covering about +-3 sigma).

    Returns
    -------
    ndarray of the same shape, dtype uint8
        Rounded to the nearest level.

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``sigma <= 0`` or ``ksize`` is not 0 or an odd number >= 1.

    Examples
    --------
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 255
    >>> gaussian(img, sigma=1.0)[2]
    array([11, 25, 40, 25, 11], dtype=uint8)
    """
    image = _checked(image)
    _positive(sigma, "sigma")
    _odd(ksize, "ksize", low=1, zero_ok=True)
    return cv2.GaussianBlur(image, (ksize, ksize), sigma)


@register_op("median", category="denoise")
def median(image: np.ndarray, *, ksize: Annotated[int, Kernel(3, 255)] = 3) -> np.ndarray:
    """Median filter over a ``ksize`` x ``ksize`` square (``cv2.medianBlur``); removes salt-and-pepper noise.

    Borders replicate the edge pixel (``aaa|abcd|ddd``), as OpenCV's median filter does.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image; channels are filtered independently.
    ksize : int, default 3
        Window width in pixels, odd, in [3, 255] and at most ``2 * max(H, W) + 1`` (or 3).

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``ksize`` is even or below 3.

    Examples
    --------
    >>> img = np.full((5, 5), 10, np.uint8); img[2, 2] = 255
    >>> int(median(img, ksize=3)[2, 2])
    10
    """
    image = _checked(image)
    _odd(ksize, "ksize", low=3)
    return cv2.medianBlur(image, ksize)


#: Largest bilateral diameter, given (``ksize``) or derived from ``sigma_space`` (``ksize=0``).
MAX_BILATERAL_DIAMETER = 63


def _bilateral_diameter(ksize: object, sigma_space: object) -> None:
    """With ``ksize=0`` OpenCV derives the diameter ``2 * round(1.5 * sigma_space) + 1``: keep it within the cap."""
    if ksize != 0 or isinstance(sigma_space, bool) or not isinstance(sigma_space, (int, float)):
        return
    if not 0 < sigma_space < 1e6:
        return  # the sigma_space check says what is wrong
    diameter = 2 * round(1.5 * sigma_space) + 1
    if diameter > MAX_BILATERAL_DIAMETER:
        raise ConfigError(
            f"ksize=0 derives the diameter 2 * round(1.5 * sigma_space) + 1 = {diameter} from "
            f"sigma_space={sigma_space}, over the limit of {MAX_BILATERAL_DIAMETER}; give ksize (e.g. ksize=9) "
            f"or sigma_space <= 20"
        )


def _bilateral_constraint(options, shape) -> None:  # noqa: ANN001 (see register_op)
    _bilateral_diameter(options.get("ksize"), options.get("sigma_space"))


@register_op("bilateral", category="denoise", constraint=_bilateral_constraint)
def bilateral(
    image: np.ndarray,
    *,
    ksize: Annotated[int, Kernel(0, 63, odd=False)] = 9,
    sigma_color: Annotated[float, Range(0, 1000, low_open=True)] = 75.0,
    sigma_space: Annotated[float, Range(0, 100, low_open=True)] = 75.0,
) -> np.ndarray:
    """Edge-preserving bilateral filter (``cv2.bilateralFilter``).

    Each pixel becomes a mean of its neighbours weighted by both distance (``sigma_space``)
    and colour difference (``sigma_color``), so flat areas are smoothed and edges kept.
    RGB pixels are compared by their Euclidean colour distance.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    ksize : int, default 9
        Diameter of the neighbourhood in pixels, in [0, 63] and at most ``2 * max(H, W) + 1`` (or 9);
        0 derives it from ``sigma_space`` (``2 * round(1.5 * sigma_space) + 1``, also at most 63).
    sigma_color : float, default 75.0
        Colour standard deviation in grey levels (0..255 scale), in (0, 1000].
    sigma_space : float, default 75.0
        Spatial standard deviation in pixels, in (0, 100].

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If an option is out of range, or ``ksize=0`` derives a diameter over 63 from ``sigma_space``.

    Examples
    --------
    >>> img = np.zeros((8, 8), np.uint8); img[:, 4:] = 200  # a sharp edge survives
    >>> bilateral(img, ksize=5, sigma_color=20.0, sigma_space=5.0)[0]
    array([  0,   0,   0,   0, 200, 200, 200, 200], dtype=uint8)
    """
    image = _checked(image)
    check_range(ksize, name="ksize", low=0)
    _positive(sigma_color, "sigma_color")
    _positive(sigma_space, "sigma_space")
    _bilateral_diameter(ksize, sigma_space)
    return cv2.bilateralFilter(image, ksize, sigma_color, sigma_space)


@register_op("nl_means", category="denoise")
def nl_means(
    image: np.ndarray,
    *,
    h: Annotated[float, Range(0, 1000, low_open=True)] = 10.0,
    h_color: Annotated[float, Range(0, 1000, low_open=True)] = 10.0,
    patch_size: Annotated[int, Kernel(1, 21)] = 7,
    search_size: Annotated[int, Kernel(1, 45)] = 21,
) -> np.ndarray:
    """Non-local means denoising (OpenCV ``fastNlMeansDenoising`` / ``fastNlMeansDenoisingColored``).

    Each pixel is replaced by a weighted mean of pixels whose surrounding patches look
    alike within a search window. RGB images are denoised in CIELAB, lightness with
    ``h`` and the two colour components with ``h_color`` (the RGB <-> BGR order OpenCV
    expects is handled here).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    h : float, default 10.0
        Filter strength for the luminance, in grey levels, in (0, 1000]; about the noise
        standard deviation. Larger removes more noise and more detail.
    h_color : float, default 10.0
        Filter strength for the colour components (RGB only), in (0, 1000].
    patch_size : int, default 7
        Width of the compared patches in pixels, odd, in [1, 21].
    search_size : int, default 21
        Width of the search window in pixels, odd, in [1, 45]; the time grows with its square.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If a strength is ``<= 0`` or a size is not odd and positive.

    Examples
    --------
    >>> noisy = np.random.default_rng(0).normal(128, 10, (32, 32)).clip(0, 255).astype(np.uint8)
    >>> float(nl_means(noisy, h=15.0).std()) < float(noisy.std()) / 2
    True
    """
    image = _checked(image)
    _positive(h, "h")
    _positive(h_color, "h_color")
    _odd(patch_size, "patch_size", low=1)
    _odd(search_size, "search_size", low=1)
    if image.ndim == 2:
        return cv2.fastNlMeansDenoising(image, None, h, patch_size, search_size)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h_color, patch_size, search_size)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


@register_op("tv", category="denoise")
def tv(
    image: np.ndarray,
    *,
    weight: Annotated[float, Range(0, 1000, low_open=True)] = 0.1,
    eps: Annotated[float, Range(0, 1, low_open=True)] = 2e-4,
    max_iter: Annotated[int, Range(1, 1000)] = 200,
) -> np.ndarray:
    """Total-variation denoising (Chambolle; ``skimage.restoration.denoise_tv_chambolle``).

    Produces piecewise-flat ("cartoon") results that keep sharp edges. scikit-image works
    on the image as floats in [0, 1]; the result is converted back with
    ``round(255 * out)``. RGB channels are denoised independently.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    weight : float, default 0.1
        Denoising strength relative to the [0, 1] intensity range, in (0, 1000]; larger
        removes more noise and more detail.
    eps : float, default 2e-4
        Stop when the relative change of the cost falls below this, in (0, 1].
    max_iter : int, default 200
        Maximum number of iterations, in [1, 1000].

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``weight`` or ``eps`` is ``<= 0`` or ``max_iter < 1``.

    Examples
    --------
    >>> noisy = np.random.default_rng(0).normal(128, 10, (32, 32)).clip(0, 255).astype(np.uint8)
    >>> float(tv(noisy, weight=0.2).std()) < float(noisy.std()) / 2
    True
    """
    from skimage.restoration import denoise_tv_chambolle

    image = _checked(image)
    _positive(weight, "weight")
    _positive(eps, "eps")
    check_range(max_iter, name="max_iter", low=1)
    out = denoise_tv_chambolle(
        image, weight=weight, eps=eps, max_num_iter=max_iter, channel_axis=-1 if image.ndim == 3 else None
    )
    return _unit_float_to_uint8(out)


_WaveletName = Literal["db1", "db2", "db4", "haar", "sym2", "sym4", "sym8", "coif1", "bior1.3"]


@register_op("wavelet", category="denoise")
def wavelet(
    image: np.ndarray,
    *,
    noise_std: Annotated[float | None, Range(0, 255, low_open=True)] = None,
    wavelet: _WaveletName = "db1",
    mode: Literal["soft", "hard"] = "soft",
    method: Literal["bayes", "visu"] = "bayes",
    levels: Annotated[int | None, Range(1, 16)] = None,
    ycbcr: bool = True,
) -> np.ndarray:
    """Wavelet-shrinkage denoising (``skimage.restoration.denoise_wavelet``; needs PyWavelets).

    Wavelet coefficients below a threshold set from the noise level are shrunk towards
    zero. scikit-image works on floats in [0, 1] and clips its result there; it is
    converted back with ``round(255 * out)``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image.
    noise_std : float or None, default None
        Noise standard deviation in grey levels (0..255 scale), in (0, 255]; None estimates
        it from the finest wavelet coefficients.
    wavelet : str, default "db1"
        PyWavelets wavelet name.
    mode : {"soft", "hard"}, default "soft"
        Shrinkage type.
    method : {"bayes", "visu"}, default "bayes"
        Threshold rule: BayesShrink (one threshold per sub-band) or VisuShrink (one
        universal threshold; smoother).
    levels : int or None, default None
        Number of decomposition levels, in [1, 16]; None uses 3 fewer than the maximum.
    ycbcr : bool, default True
        RGB only: denoise in YCbCr (usually better) instead of each RGB channel.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``noise_std <= 0`` or ``levels < 1``.
    ImportError
        If PyWavelets is not installed (``pip install PyWavelets``).

    Examples
    --------
    >>> noisy = np.random.default_rng(0).normal(128, 10, (64, 64)).clip(0, 255).astype(np.uint8)
    >>> float(wavelet(noisy, noise_std=10.0, method="visu").std()) < float(noisy.std()) / 2
    True
    """
    image = _checked(image)
    if noise_std is not None:
        _positive(noise_std, "noise_std")
    if levels is not None:
        check_range(levels, name="levels", low=1)
    try:
        import pywt  # noqa: F401  (scikit-image's wavelet code needs it)
    except ImportError:
        raise ImportError("op 'wavelet' needs PyWavelets; install it with: pip install PyWavelets") from None
    from skimage.restoration import denoise_wavelet

    if noise_std is not None and int(image.max()) == int(image.min()):
        return image.copy()  # flat: nothing to denoise (and scikit-image would divide by the zero range)
    colour = image.ndim == 3
    out = denoise_wavelet(
        image,
        sigma=noise_std,  # in grey levels: scikit-image rescales it with the image (rescale_sigma=True)
        wavelet=wavelet,
        mode=mode,
        wavelet_levels=levels,
        convert2ycbcr=colour and ycbcr,
        method="BayesShrink" if method == "bayes" else "VisuShrink",
        rescale_sigma=True,
        channel_axis=-1 if colour else None,
    )
    return _unit_float_to_uint8(out)


@register_op("sharpen", category="denoise")
def sharpen(
    image: np.ndarray,
    *,
    sigma: Annotated[float, Range(0, 100, low_open=True)] = 1.0,
    amount: Annotated[float, Range(0, 100)] = 1.0,
) -> np.ndarray:
    """Sharpen by unsharp masking: ``image + amount * (image - gaussian(image, sigma))``, clipped.

    Computed as ``cv2.addWeighted(image, 1 + amount, blurred, -amount, 0)`` with
    ``blurred = cv2.GaussianBlur(image, (0, 0), sigma)``; rounded and saturated to 0..255.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
        Grey or RGB image; channels are sharpened independently.
    sigma : float, default 1.0
        Standard deviation of the blur in pixels, in (0, 100]; the scale of the details enhanced.
    amount : float, default 1.0
        Strength, in [0, 100]; 0 returns the image unchanged.

    Returns
    -------
    ndarray of the same shape, dtype uint8

    Raises
    ------
    ShapeError
        If ``image`` is not a uint8 (H, W) or (H, W, 3) array.
    ConfigError
        If ``sigma <= 0`` or ``amount < 0``.

    Examples
    --------
    >>> img = np.array([[50, 50, 50, 200, 200, 200]], np.uint8)
    >>> sharpen(img, sigma=1.0, amount=1.0)  # overshoot on both sides of the edge
    array([[ 49,  41,   5, 245, 209, 201]], dtype=uint8)
    """
    image = _checked(image)
    _positive(sigma, "sigma")
    check_range(amount, name="amount", low=0)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)
