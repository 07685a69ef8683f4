"""Colour: colour-space conversion, dominant colours and image-quality measurements.

``convert_color`` returns an image; ``dominant_colors`` and ``quality`` return
JSON-serialisable data (plain Python ``int``/``float``/``str``/``list``/``dict``, no
numpy scalars), ready for the REST ``analyze`` endpoint.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Annotated, Any, Literal

import cv2
import numpy as np

from pixlearn._core.checks import check_image, check_range
from pixlearn._core.errors import ConfigError
from pixlearn.ops._registry import Range, register_op

__all__ = ["convert_color", "dominant_colors", "quality", "color_name", "css_color_name", "EXTRA_COLORS"]

Space = Literal["rgb", "gray", "hsv", "lab", "ycrcb"]

# One OpenCV code per (source, target) pair that touches RGB; other pairs go through RGB.
_TO_RGB = {
    "gray": cv2.COLOR_GRAY2RGB,
    "hsv": cv2.COLOR_HSV2RGB,
    "lab": cv2.COLOR_Lab2RGB,
    "ycrcb": cv2.COLOR_YCrCb2RGB,
}
_FROM_RGB = {
    "gray": cv2.COLOR_RGB2GRAY,
    "hsv": cv2.COLOR_RGB2HSV,
    "lab": cv2.COLOR_RGB2Lab,
    "ycrcb": cv2.COLOR_RGB2YCrCb,
}
_SPACES = ("rgb", "gray", "hsv", "lab", "ycrcb")
_UINT8 = np.dtype(np.uint8)

# k-means settings of dominant_colors (OpenCV's cv2.kmeans, k-means++ seeding).
_KMEANS_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 50, 0.5)
_KMEANS_ATTEMPTS = 3


@register_op("convert_color", category="color", returns="image")
def convert_color(image: np.ndarray, *, source: Space = "rgb", target: Space = "gray") -> np.ndarray:
    """Convert between RGB, grey, HSV, CIE L*a*b* and YCrCb with OpenCV's 8-bit conventions.

    Every output is uint8; the 8-bit encodings are OpenCV's, exactly:

    - ``"gray"``: (H, W), ``Y = 0.299 R + 0.587 G + 0.114 B``, rounded, 0..255.
    - ``"hsv"``: (H, W, 3) H, S, V. **H is hue in degrees / 2, in 0..179**
      (so it fits a byte); S and V are 0..255.
    - ``"lab"``: (H, W, 3) L, a, b for sRGB with a D65 white: ``L = L* * 255 / 100``
      (0..255), ``a = a* + 128``, ``b = b* + 128`` (each 0..255).
    - ``"ycrcb"``: (H, W, 3) in the order **Y, Cr, Cb** (not Y, Cb, Cr), full range 0..255:
      ``Cr = 0.713 (R - Y) + 128``, ``Cb = 0.564 (B - Y) + 128``.
    - ``"rgb"``: (H, W, 3) R, G, B. Grey -> RGB repeats the grey level.

    Pairs that do not involve RGB (e.g. HSV -> L*a*b*) go through RGB. Converting
    to a space with fewer bits (grey, or the 8-bit HSV/LAB encodings) loses
    information, so a round trip is close to, not equal to, the input.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), or (H, W) when ``source="gray"``, uint8
        Pixels encoded in ``source``.
    source : {"rgb", "gray", "hsv", "lab", "ycrcb"}, default "rgb"
        The colour space of ``image``.
    target : {"rgb", "gray", "hsv", "lab", "ycrcb"}, default "gray"
        The colour space to return. ``source == target`` returns a copy.

    Returns
    -------
    ndarray of shape (H, W) for ``target="gray"``, else (H, W, 3), uint8

    Raises
    ------
    ShapeError
        If ``image`` is not uint8, or its channels do not match ``source``.
    ConfigError
        If ``source`` or ``target`` is not one of the spaces.

    Examples
    --------
    >>> red = np.array([[[255, 0, 0]]], np.uint8)
    >>> convert_color(red, target="hsv").tolist()  # H = 0 degrees, S = V = 255
    [[[0, 255, 255]]]
    >>> convert_color(red, target="gray").tolist()
    [[76]]
    >>> convert_color(np.array([[[0, 255, 0]]], np.uint8), target="hsv")[0, 0, 0]  # 120 deg / 2
    np.uint8(60)
    """
    if source not in _SPACES or target not in _SPACES:
        name, space = ("source", source) if source not in _SPACES else ("target", target)
        valid = ", ".join(repr(s) for s in _SPACES)
        raise ConfigError(f"{name} must be one of {valid}, got {space!r}")
    if not (  # check_image's own fast path covers only (1, 3) channels; this one fits source
        type(image) is np.ndarray
        and image.dtype == _UINT8
        and image.size
        and (image.ndim == 2 if source == "gray" else image.ndim == 3 and image.shape[2] == 3)
    ):
        channels = (1,) if source == "gray" else (3,)
        image = check_image(image, name=f"image (source={source!r})", channels=channels)
    if source == target:
        return image.copy()
    if source != "rgb":
        image = cv2.cvtColor(image, _TO_RGB[source])
    if target != "rgb":
        image = cv2.cvtColor(image, _FROM_RGB[target])
    return image


#: Names that the CSS table lacks, mostly browns and dark neutrals (CSS has no dark brown, so photos' dark
#: browns came out "black"). Hex values from Wikipedia's colour articles; a name may have several reference
#: colours (darkbrown: "Dark brown", "Cafe noir", "Bistre"; brown: the colour-wheel brown beside CSS's red-brown).
EXTRA_COLORS: dict[str, tuple[str, ...]] = {
    "darkbrown": ("#654321", "#4b3621", "#3d2b1f"),
    "brown": ("#964b00",),
    "coffee": ("#6f4e37",),
    "taupe": ("#483c32",),
    "charcoal": ("#36454f",),
    "burgundy": ("#800020",),
    "rust": ("#b7410e",),
    "mustard": ("#ffdb58",),
    "cream": ("#fffdd0",),
}


def _lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) RGB 0..255 -> (N, 3) CIE L*a*b* (D65; scikit-image's ``rgb2lab``)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, np.float64).reshape(1, -1, 3) / 255.0).reshape(-1, 3)


@lru_cache(maxsize=2)
def _name_table(extended: bool) -> tuple[tuple[str, ...], np.ndarray]:
    """Colour names sorted alphabetically (one entry per reference colour) and their L*a*b*."""
    from PIL import ImageColor

    # by name, not by colormap value: Pillow's getrgb caches a name it resolved as an (r, g, b) tuple in that same
    # colormap, so once any drawing code in the process used "red", colormap["red"] is no longer a string
    entries = [(n, ImageColor.getrgb(n)[:3]) for n in list(ImageColor.colormap)]
    if extended:
        entries += [(n, ImageColor.getrgb(h)[:3]) for n, hexes in EXTRA_COLORS.items() for h in hexes]
    entries.sort(key=lambda e: (e[0], e[1]))
    lab = _lab(np.array([rgb for _, rgb in entries], np.float64))
    lab.flags.writeable = False
    return tuple(n for n, _ in entries), lab


def _nearest_name(rgb: np.ndarray, *, extended: bool = True) -> list[str]:
    """The name nearest to each RGB row by CIEDE2000 colour difference (``skimage.color.deltaE_ciede2000``)."""
    from skimage.color import deltaE_ciede2000

    names, table = _name_table(extended)
    lab = _lab(rgb)
    dist = deltaE_ciede2000(lab[:, None, :], table[None, :, :], channel_axis=-1)
    return [names[i] for i in dist.argmin(axis=1)]


def _check_rgb(rgb: tuple[int, int, int]) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.shape != (3,) or not np.issubdtype(arr.dtype, np.number) or arr.min() < 0 or arr.max() > 255:
        raise ConfigError(f"rgb must be three values in 0..255, got {rgb!r}")
    return arr.reshape(1, 3)


def color_name(rgb: tuple[int, int, int]) -> str:
    """A plain name for ``rgb``: the nearest by CIEDE2000 among the CSS colours and :data:`EXTRA_COLORS`.

    This is the name :func:`dominant_colors` reports. The table is the 148 CSS Color Module Level 4
    names plus a few common names CSS lacks (``darkbrown``, ``coffee``, ``taupe``, ``charcoal``...),
    so a dark brown is not called "black". Distances are CIEDE2000 colour differences in CIE
    L*a*b* (D65), the CIE's perceptual metric; ties go to the alphabetically first name.

    Parameters
    ----------
    rgb : (int, int, int)
        Red, green, blue, each 0..255.

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        If ``rgb`` is not three numbers in 0..255.

    Examples
    --------
    >>> color_name((60, 40, 30)), color_name((101, 67, 33)), color_name((10, 10, 10)), color_name((250, 5, 5))
    ('darkbrown', 'darkbrown', 'black', 'red')
    """
    return _nearest_name(_check_rgb(rgb))[0]


def css_color_name(rgb: tuple[int, int, int]) -> str:
    """The CSS named colour nearest to ``rgb`` by CIEDE2000 colour difference in CIE L*a*b*.

    The table is the 148 CSS Color Module Level 4 names (as in Pillow's ``ImageColor``
    and matplotlib's ``CSS4_COLORS``). Where several names share a colour
    (``aqua``/``cyan``, ``fuchsia``/``magenta``, ``gray``/``grey``...) the
    alphabetically first is returned. :func:`color_name` also knows names CSS lacks
    (dark browns among them).

    Parameters
    ----------
    rgb : (int, int, int)
        Red, green, blue, each 0..255.

    Returns
    -------
    str

    Examples
    --------
    >>> css_color_name((250, 5, 5)), css_color_name((0, 255, 0)), css_color_name((0, 128, 0))
    ('red', 'lime', 'green')
    """
    return _nearest_name(_check_rgb(rgb), extended=False)[0]


@register_op("dominant_colors", category="color", returns="data")
def dominant_colors(
    image: np.ndarray,
    *,
    k: Annotated[int, Range(1, 64)] = 5,
    seed: Annotated[int, Range(0, 2**31 - 1)] = 0,
    sample: Annotated[int, Range(100, 10_000_000)] = 20000,
) -> list[dict[str, Any]]:
    """The ``k`` dominant colours (k-means on a seeded pixel sample), largest share first.

    Pixels are clustered in RGB with OpenCV's ``cv2.kmeans`` (k-means++ seeding, 3
    attempts, seeded through ``cv2.setRNGSeed(seed)``, which also resets OpenCV's RNG of
    the calling thread). Each cluster centre is rounded to an RGB colour and named after
    the nearest named colour by CIEDE2000 (:func:`color_name`: CSS names plus dark browns and
    other common names CSS lacks). If the sample holds ``k`` or fewer
    distinct colours, those colours are returned exactly, with no k-means, so there are
    never empty or duplicate entries: an image of 3 colours gives 3 entries for any
    ``k >= 3``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        RGB or grey (a grey level ``v`` is reported as the colour ``[v, v, v]``).
    k : int, default 5
        Most colours to return, in [1, 64].
    seed : int, default 0
        Seeds the pixel sample and the k-means initialisation, in [0, 2**31 - 1]: same
        image, same seed, same answer.
    sample : int, default 20000
        Most pixels used, in [100, 10_000_000]. An image with more pixels is sampled
        (stratified: the row-major pixels are cut into ``sample`` equal runs and one pixel
        is drawn at random from each); a smaller one is used whole, so its fractions are
        exact. Fractions from a sample are within about ``1 / sqrt(sample)``.

    Returns
    -------
    list of dict
        At most ``k`` entries sorted by ``"fraction"``, descending (ties by colour), each
        ``{"rgb": [r, g, b], "hex": "#rrggbb", "name": str, "fraction": float}``: ``rgb``
        ints 0..255, ``hex`` lower-case, ``fraction`` the share of (sampled) pixels in
        the cluster, in (0, 1]; the fractions sum to 1. Plain Python types only.

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).
    ConfigError
        If ``k``, ``seed`` or ``sample`` is out of range.

    Examples
    --------
    >>> img = np.zeros((10, 10, 3), np.uint8); img[:, :7] = (255, 0, 0); img[:, 7:] = (0, 0, 255)
    >>> [(c["name"], c["hex"], c["fraction"]) for c in dominant_colors(img, k=5)]
    [('red', '#ff0000', 0.7), ('blue', '#0000ff', 0.3)]
    """
    image = check_image(image)
    _check_int(k, name="k", low=1, high=64)
    seed = _check_int(seed, name="seed", low=0, high=2**31 - 1)
    _check_int(sample, name="sample", low=100, high=10_000_000)
    channels = 1 if image.ndim == 2 else 3
    pixels = _sample_pixels(image.reshape(-1, channels), sample, seed)
    # Few distinct colours? Then they are the answer, exactly. A random prefix with more than
    # k colours proves there are more (the common case for photos), without sorting the sample.
    distinct, counts = np.unique(_pack(pixels[:1024]), return_counts=True)
    if len(distinct) <= k and len(pixels) > 1024:
        distinct, counts = np.unique(_pack(pixels), return_counts=True)
    if len(distinct) <= k:
        centres = _unpack(distinct, channels)
    else:
        cv2.setRNGSeed(seed)
        _, labels, centres_f = cv2.kmeans(
            pixels.astype(np.float32), int(k), None, _KMEANS_CRITERIA, _KMEANS_ATTEMPTS, cv2.KMEANS_PP_CENTERS
        )
        counts = np.bincount(labels.ravel(), minlength=int(k))
        centres = np.clip(np.rint(centres_f), 0, 255).astype(np.int64)
        keep = counts > 0
        centres, counts = centres[keep], counts[keep]
        # Two centres may round to the same colour: merge them.
        key = centres[:, 0] if channels == 1 else (centres[:, 0] << 16) | (centres[:, 1] << 8) | centres[:, 2]
        key, inverse = np.unique(key, return_inverse=True)
        if len(key) < len(centres):
            counts = np.bincount(inverse.ravel(), weights=counts).astype(np.int64)
            centres = _unpack(key, channels)
    rgb = np.repeat(centres, 3, axis=1) if channels == 1 else centres
    total = int(counts.sum())
    order = sorted(range(len(rgb)), key=lambda i: (-int(counts[i]), tuple(int(v) for v in rgb[i])))
    names = _nearest_name(rgb)
    out = []
    for i in order:
        r, g, b = (int(v) for v in rgb[i])
        out.append({
            "rgb": [r, g, b],
            "hex": f"#{r:02x}{g:02x}{b:02x}",
            "name": names[i],
            "fraction": int(counts[i]) / total,
        })
    return out


def _sample_pixels(pixels: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """Stratified random sample: one pixel drawn uniformly from each of ``sample`` equal runs."""
    n = len(pixels)
    if n <= sample:
        return pixels
    starts, lengths = _runs(n, sample)
    offsets = (np.random.default_rng(seed).random(sample) * lengths).astype(np.int64)
    offsets += starts
    return np.take(pixels, offsets, axis=0)


@lru_cache(maxsize=8)
def _runs(n: int, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each of ``sample`` equal runs of ``n`` items (cached per image size)."""
    edges = (np.arange(sample + 1, dtype=np.int64) * n) // sample
    starts, lengths = edges[:-1], np.diff(edges).astype(np.float64)
    starts.flags.writeable = lengths.flags.writeable = False
    return starts, lengths


def _pack(pixels: np.ndarray) -> np.ndarray:
    """(N, 1) or (N, 3) uint8 -> one int32 per pixel (0xRRGGBB for colour)."""
    packed = pixels[:, 0].astype(np.int32)
    if pixels.shape[1] == 3:
        packed = (packed << 16) | (pixels[:, 1].astype(np.int32) << 8) | pixels[:, 2]
    return packed


def _unpack(packed: np.ndarray, channels: int) -> np.ndarray:
    packed = packed.astype(np.int64)
    if channels == 1:
        return packed.reshape(-1, 1)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)


def _check_int(value: object, *, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(check_range(int(value), name=name, low=low, high=high))


@register_op("quality", category="color", returns="data")
def quality(image: np.ndarray) -> dict[str, float | int]:
    """Brightness, contrast, sharpness and noise of an image, as plain numbers.

    All measurements except ``noise_sigma`` are taken on the grey (luma) image,
    ``Y = 0.299 R + 0.587 G + 0.114 B`` rounded to uint8 (OpenCV's ``RGB2GRAY``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8

    Returns
    -------
    dict
        Plain Python ``float``/``int`` values (``json.dumps`` works):

        - ``"brightness"``: mean luma / 255, in [0, 1] (all white -> 1.0).
        - ``"contrast"``: RMS contrast, the standard deviation of luma / 255, in [0, 0.5].
        - ``"sharpness"``: variance of the Laplacian of luma (OpenCV's 3x3 aperture,
          ``cv2.Laplacian(gray, cv2.CV_64F).var()``), in grey levels squared, >= 0;
          unbounded, comparable only between images of similar content and size
          (a blur lowers it).
        - ``"noise_sigma"``: estimated standard deviation of additive Gaussian noise in
          grey levels (0..255 units), from ``skimage.restoration.estimate_sigma``
          (wavelet median absolute deviation), averaged over R, G, B for a colour image;
          0.0 where nothing can be estimated (e.g. a flat image).
        - ``"width"``, ``"height"``: in pixels (``int``).

    Raises
    ------
    ShapeError
        If ``image`` is not uint8 (H, W) or (H, W, 3).

    Examples
    --------
    >>> q = quality(np.full((32, 32, 3), 255, np.uint8))
    >>> q["brightness"], q["contrast"], q["sharpness"], round(q["noise_sigma"], 3), q["width"], q["height"]
    (1.0, 0.0, 0.0, 0.0, 32, 32)
    """
    from skimage.restoration import estimate_sigma

    image = check_image(image)
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    _, std = cv2.meanStdDev(gray)
    mean = cv2.sumElems(gray)[0] / gray.size  # an exact integer sum, so all white gives exactly 1.0
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_64F))
    with warnings.catch_warnings():
        # A flat image has no wavelet detail (median of nothing -> nan); tiny images warn about channels.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        axis = None if image.ndim == 2 else -1
        sigma = float(estimate_sigma(image, channel_axis=axis, average_sigmas=True))
    return {
        "brightness": float(mean) / 255.0,
        "contrast": float(std[0, 0]) / 255.0,
        "sharpness": float(lap_std[0, 0]) ** 2,
        "noise_sigma": sigma if math.isfinite(sigma) else 0.0,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
    }
