"""Restoration metrics (MSE, PSNR, SSIM) and the comparison of a restorer with classical methods on the same images.

* :func:`mse`, :func:`psnr`, :func:`ssim` score one image against its clean original (numpy,
  uint8 or float), optionally on the luminance (Y) channel with the border cropped, as
  super-resolution papers do.
* :func:`classical_restore` runs a classical baseline -- non-local means, bilateral, TV,
  wavelet (denoising), bicubic (super-resolution), CLAHE / equalisation (enhancement) -- with
  parameters set from the noise level.
* :func:`evaluate_restoration` degrades clean images (seeded) or takes degraded/clean pairs,
  restores them with a trained model and with the classical methods, and scores every output
  the same way; :func:`save_crops` draws side-by-side crops (degraded | classical | model | clean).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.names import check_name

__all__ = [
    "CLASSICAL",
    "CLASSICAL_METHODS",
    "PSNR_CAP_DB",
    "RestorationEvaluation",
    "classical_restore",
    "evaluate_restoration",
    "method_table",
    "mse",
    "plot_restore_curves",
    "psnr",
    "rgb_to_y",
    "save_crops",
    "ssim",
    "summarize",
]

#: PSNR counted for an exactly restored image (MSE 0) when PSNRs are averaged (a single image gives ``inf``).
PSNR_CAP_DB = 100.0

#: Classical methods per restoration task.
CLASSICAL: dict[str, tuple[str, ...]] = {
    "denoise": ("nl_means", "bilateral", "tv", "wavelet"),
    "super-resolution": ("bicubic",),
    "enhance": ("clahe", "equalize", "nl_means"),
}
#: Every classical method :func:`classical_restore` runs.
CLASSICAL_METHODS = ("nl_means", "bilateral", "tv", "wavelet", "median", "bicubic", "clahe", "equalize")
_ALL_METHODS = CLASSICAL_METHODS


def _pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ShapeError(f"{what}: the images differ in shape {a.shape} vs {b.shape}; compare an output with its own clean image")
    if a.size == 0:
        raise ShapeError(f"{what}: empty images")
    return a, b


def _range(a: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        if data_range <= 0:
            raise ConfigError(f"data_range must be > 0, got {data_range}")
        return float(data_range)
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    return 1.0


def rgb_to_y(image: np.ndarray, *, data_range: float | None = None) -> np.ndarray:
    """ITU-R BT.601 luma as used by super-resolution papers (MATLAB ``rgb2ycbcr``): Y in [16, 235] grey levels.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3)
        uint8 RGB, or floats in [0, ``data_range``] (default 1).

    Returns
    -------
    ndarray of shape (H, W), float64, on the 0..255 scale

    Examples
    --------
    >>> rgb_to_y(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)).round(3).tolist()
    [[16.0, 235.0]]
    """
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ShapeError(f"rgb_to_y needs an (H, W, 3) image, got {a.shape}")
    x = a.astype(np.float64) / _range(a, data_range)
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def _prepare(a: np.ndarray, b: np.ndarray, *, crop_border: int, y_channel: bool, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    rng = _range(a, data_range)
    if y_channel:
        if a.ndim == 3 and a.shape[2] == 3:
            a, b, rng = rgb_to_y(a, data_range=rng), rgb_to_y(b, data_range=rng), 255.0
        else:  # already one channel: its values are the luma
            a, b = a.astype(np.float64) * (255.0 / rng), b.astype(np.float64) * (255.0 / rng)
            rng = 255.0
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
    if crop_border:
        c = int(crop_border)
        if a.shape[0] <= 2 * c or a.shape[1] <= 2 * c:
            raise ShapeError(f"crop_border={c} leaves nothing of a {a.shape[1]}x{a.shape[0]} image")
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[..., 0], b[..., 0]
    return a, b, rng


def mse(image: np.ndarray, reference: np.ndarray, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """Mean squared error between two images, in the images' own units (uint8: grey levels squared).

    Parameters
    ----------
    image, reference : ndarray of the same shape
        (H, W) or (H, W, C), uint8 or float.
    crop_border : int, default 0
        Pixels left out on every side (super-resolution convention: the scale).
    y_channel : bool, default False
        Compare the BT.601 luma of RGB images (0..255 scale).

    Examples
    --------
    >>> mse(np.array([[0, 0]], np.uint8), np.array([[3, 4]], np.uint8))
    12.5
    """
    a, b = _pair(image, reference, "mse")
    a, b, _ = _prepare(a, b, crop_border=crop_border, y_channel=y_channel, data_range=None)
    return float(np.mean((a - b) ** 2))


def psnr(
    image: np.ndarray, reference: np.ndarray, *, data_range: float | None = None, crop_border: int = 0, y_channel: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``; ``inf`` for identical images.

    Parameters
    ----------
    image, reference : ndarray of the same shape
    data_range : float, optional
        Default 255 for uint8, 1.0 for floats (values in [0, 1]).
    crop_border, y_channel
        As in :func:`mse`.

    Examples
    --------
    >>> a = np.zeros((4, 4), np.uint8)
    >>> round(psnr(a, a + 10), 4), psnr(a, a)
    (28.1308, inf)
    """
    a, b = _pair(image, reference, "psnr")
    a, b, rng = _prepare(a, b, crop_border=crop_border, y_channel=y_channel, data_range=data_range)
    err = float(np.mean((a - b) ** 2))
    return math.inf if err == 0 else 10.0 * math.log10(rng * rng / err)


def ssim(
    image: np.ndarray, reference: np.ndarray, *, data_range: float | None = None, crop_border: int = 0, y_channel: bool = False,
) -> float:
    """Structural similarity (Wang et al. 2004: 11-tap gaussian window, sigma 1.5), channels averaged.

    Calls ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``; images smaller than 7 pixels a side are refused.

    Examples
    --------
    >>> a = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    >>> ssim(a, a)
    1.0
    """
    from skimage.metrics import structural_similarity

    a, b = _pair(image, reference, "ssim")
    a, b, rng = _prepare(a, b, crop_border=crop_border, y_channel=y_channel, data_range=data_range)
    if min(a.shape[:2]) < 7:
        raise ShapeError(f"ssim needs images of at least 7x7 pixels, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(
        a, b, data_range=rng, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=2 if a.ndim == 3 else None,
    ))


# ---------------------------------------------------------------- classical baselines
def _estimate_sigma(image_u8: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    s = estimate_sigma(image_u8.astype(np.float64), channel_axis=2 if image_u8.ndim == 3 else None, average_sigmas=True)
    return max(float(s), 1.0)


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of float (H, W, C) (Pillow, like MATLAB's imresize)."""
    from pixlearn.tasks.restore.degrade import _resize_float

    h, w = image.shape[:2]
    return _resize_float(np.asarray(image, np.float32), (h * scale, w * scale))


def _nl_means(x: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image's non-local means of a float (H, W, C) image in [0, 1] at noise ``sigma`` grey levels (h = 0.6 sigma)."""
    from skimage.restoration import denoise_nl_means

    s = float(sigma) / 255.0
    img = np.clip(x, 0.0, 1.0)
    out = denoise_nl_means(img[..., 0] if img.shape[2] == 1 else img, h=0.6 * s, sigma=s, patch_size=5, patch_distance=6,
                           fast_mode=True, channel_axis=None if img.shape[2] == 1 else 2)
    return np.asarray(out, np.float32).reshape(img.shape)


def classical_restore(method: str, degraded: np.ndarray, *, sigma: float | None = None, scale: int = 1) -> np.ndarray:
    """Restore a float (H, W, C) image in [0, 1] with a classical method; float32 (sH, sW, C) back.

    Parameters
    ----------
    method : {"nl_means", "bilateral", "tv", "wavelet", "median", "bicubic", "clahe", "equalize"}
        The denoisers take the image rounded to uint8 (the :mod:`pixlearn.ops` functions).
    sigma : float, optional
        Noise standard deviation in grey levels; estimated from the image when None
        (``skimage.restoration.estimate_sigma``). Parameters follow it: non-local means
        (scikit-image, on the float image, 5 px patches, 6 px search, the noise variance
        subtracted from the patch distances) ``h = 0.6 sigma``; bilateral 9 px,
        ``sigma_color = 2.5 sigma``, ``sigma_space = 2.5``; TV ``weight = 0.9 sigma / 255``;
        wavelet BayesShrink (db1) at ``sigma`` -- rules tuned on six BSD training images
        (train400) at sigma 15, 25, 50, not on any test set. (Non-local means this way scores
        0.6-0.9 dB above OpenCV's ``fastNlMeansDenoising`` with ``h = 0.9 sigma`` on those images,
        so a model is compared with the stronger baseline.)
    scale : int, default 1
        ``bicubic`` upscales by it; the others need 1.

    Examples
    --------
    >>> x = np.full((16, 16, 1), 0.5, np.float32)
    >>> classical_restore("bicubic", x, scale=2).shape
    (32, 32, 1)
    """
    from pixlearn.ops import denoise as dn
    from pixlearn.tasks.restore.degrade import to_float, to_uint8

    method = check_name(method, _ALL_METHODS, what="classical method")
    x = np.asarray(degraded, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if method == "bicubic":
        return _upscale(x, scale) if scale > 1 else x.copy()
    if scale != 1:
        raise ConfigError(f"{method} keeps the image size; for super-resolution use bicubic")
    u8 = to_uint8(x)  # (H, W) or (H, W, 3)
    s = float(sigma) if sigma is not None else _estimate_sigma(u8)
    if method == "nl_means":
        return _nl_means(x, s)
    if method == "bilateral":
        out = dn.bilateral(u8, ksize=9, sigma_color=2.5 * s, sigma_space=2.5)
    elif method == "tv":
        out = dn.tv(u8, weight=max(0.9 * s / 255.0, 1e-4))
    elif method == "wavelet":
        out = dn.wavelet(u8, noise_std=s, wavelet="db1", method="bayes")
    elif method == "median":
        out = dn.median(u8, ksize=3 if s < 30 else 5)
    else:
        from pixlearn.ops import adjust

        out = adjust.clahe(u8) if method == "clahe" else adjust.equalize(u8)
    return to_float(out)


# ---------------------------------------------------------------- evaluation
@dataclass
class RestorationEvaluation:
    """Scores of every method on every image, their means, and a few examples for the crops figure.

    Attributes
    ----------
    rows : list of dict
        ``{"image", "method", "mse", "psnr", "ssim", "seconds"}`` per image and method;
        ``mse`` on [0, 1] images (or the 0..255 luma with ``y_channel``).
    summary : dict
        Per method: mean ``psnr`` (an exact restoration counts as :data:`PSNR_CAP_DB`), ``ssim``,
        ``mse``, total ``seconds`` and the image count ``n``.
    examples : list of dict
        The first images' arrays: ``degraded`` (at output size), ``clean``, and each method's output.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean PSNR / SSIM / MSE and total seconds per method (rows from :func:`evaluate_restoration`).

    Examples
    --------
    >>> summarize([{"method": "m", "psnr": 30.0, "ssim": 0.8, "mse": 0.001, "seconds": 1.0},
    ...            {"method": "m", "psnr": math.inf, "ssim": 1.0, "mse": 0.0, "seconds": 1.0}])["m"]["psnr"]
    65.0
    """
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ps = [min(float(r["psnr"]), PSNR_CAP_DB) for r in mine]
        out[method] = {
            "psnr": float(np.mean(ps)),
            "ssim": float(np.mean([r["ssim"] for r in mine])),
            "mse": float(np.mean([r["mse"] for r in mine])),
            "seconds": float(np.sum([r.get("seconds") or 0.0 for r in mine])),
            "n": len(mine),
        }
    return out


def _crop_center(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return a[y:y + s, x:x + s]


def evaluate_restoration(
    clean: Sequence[np.ndarray],
    *,
    restorer: Any | None = None,
    pipeline: Any | None = None,
    degraded: Sequence[np.ndarray] | None = None,
    methods: Sequence[str] = (),
    sigma: float | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    crop_border: int = 0,
    y_channel: bool = False,
    keep_examples: int = 4,
    progress: bool | None = None,
) -> RestorationEvaluation:
    """Score a restorer and classical methods on the same images.

    Parameters
    ----------
    clean : sequence of ndarray
        Clean images: uint8 (H, W) / (H, W, C), or float32 (H, W, C) in [0, 1].
    restorer : Restorer, optional
        A trained model (:func:`~pixlearn.tasks.restore.predict.load_restorer`); scored as ``model``.
    pipeline : Pipeline, optional
        Degrades each clean image with the seed ``sample_seed(seed, 0, k)`` (image ``k``).
    degraded : sequence of ndarray, optional
        Degraded images instead of a pipeline (paired data), same layout as ``clean``.
    methods : sequence of str
        Classical methods (:func:`classical_restore`).
    sigma : float, optional
        Noise level handed to the classical denoisers (estimated per image when None).
    names : sequence of str, optional
        Image names for the rows (default ``image_<k>``).
    crop_border, y_channel
        As in :func:`psnr` (super-resolution: ``crop_border=scale``, ``y_channel=True``).
    keep_examples : int, default 4
        How many images keep their arrays for :func:`save_crops`.

    Returns
    -------
    RestorationEvaluation
        The degraded input itself is scored as ``input`` (``bicubic`` when it is smaller).
    """
    from pixlearn.data.augment import sample_seed
    from pixlearn.tasks.restore.degrade import modcrop, to_float

    if (pipeline is None) == (degraded is None):
        raise ConfigError("give either a degradation pipeline or the degraded images (not both)")
    if degraded is not None and len(degraded) != len(clean):
        raise ConfigError(f"{len(degraded)} degraded images for {len(clean)} clean ones")
    methods = [check_name(m, _ALL_METHODS, what="classical method") for m in methods]
    channels = 1 if restorer is None else restorer.channels
    from pixlearn.engine.progress import track

    it: Any = track(range(len(clean)), description="scoring", progress=progress)
    ev = RestorationEvaluation(settings={"seed": seed, "crop_border": crop_border, "y_channel": y_channel, "sigma": sigma})

    def as_float(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        f = to_float(a) if a.dtype == np.uint8 else np.asarray(a, np.float32)
        return f[..., None] if f.ndim == 2 else f

    for k in it:
        name = names[k] if names is not None else f"image_{k}"
        c = as_float(clean[k])
        if restorer is not None and c.shape[2] != channels:
            raise ShapeError(f"{name}: {c.shape[2]}-channel image for a {channels}-channel model")
        if degraded is not None:
            d = as_float(degraded[k])
            s = max(1, round(c.shape[0] / d.shape[0]))
            c = c[: d.shape[0] * s, : d.shape[1] * s]
        else:
            c = modcrop(c, pipeline.scale)
            d = pipeline(c, seed=sample_seed(seed, 0, k))
            s = pipeline.scale
        outputs: dict[str, tuple[np.ndarray, float]] = {}
        t0 = time.perf_counter()
        base = classical_restore("bicubic", d, scale=s) if s > 1 else d
        outputs["bicubic" if s > 1 else "input"] = (base, time.perf_counter() - t0)
        if restorer is not None:
            t0 = time.perf_counter()
            outputs["model"] = (restorer.restore_float(d), time.perf_counter() - t0)
        for m in methods:
            if m == "bicubic" and s > 1:
                continue
            t0 = time.perf_counter()
            outputs[m] = (classical_restore(m, d, sigma=sigma, scale=s), time.perf_counter() - t0)
        for method, (out, secs) in outputs.items():
            o = np.clip(out, 0.0, 1.0)
            if o.shape != c.shape:
                raise ShapeError(f"{name}: {method} gave {o.shape} for a clean image of {c.shape}")
            ev.rows.append({
                "image": name, "method": method,
                "mse": mse(o, c, crop_border=crop_border, y_channel=y_channel),
                "psnr": psnr(o, c, data_range=1.0, crop_border=crop_border, y_channel=y_channel),
                "ssim": ssim(o, c, data_range=1.0, crop_border=crop_border, y_channel=y_channel),
                "seconds": round(secs, 4),
            })
        if k < keep_examples:
            ev.examples.append({"image": name, "degraded": base, "clean": c, "outputs": {m: np.clip(o, 0, 1) for m, (o, _) in outputs.items()}})
    ev.summary = summarize(ev.rows)
    return ev


def save_crops(
    path: str | Path,
    examples: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] = (),
    crop: int = 96,
    rows: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
) -> Path:
    """Save a PNG grid of centre crops: degraded | each of ``columns`` (methods) | clean, one row per example.

    ``rows`` (from :func:`evaluate_restoration`) add each crop's image PSNR to its label.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        raise ConfigError("no examples to draw")
    cols = ["degraded"] + [c for c in columns if c in examples[0]["outputs"]] + ["clean"]
    score = {(r["image"], r["method"]): r["psnr"] for r in rows}
    fig, axes = plt.subplots(len(examples), len(cols), figsize=(2.2 * len(cols), 2.7 * len(examples)), squeeze=False)
    for i, ex in enumerate(examples):
        for j, col in enumerate(cols):
            if col == "degraded":
                img, key = ex["degraded"], "bicubic" if (ex["image"], "bicubic") in score else "input"
            elif col == "clean":
                img, key = ex["clean"], None
            else:
                img, key = ex["outputs"][col], col
            a = _crop_center(np.clip(img, 0, 1), crop)
            ax = axes[i][j]
            ax.imshow(a[..., 0] if a.shape[2] == 1 else a, cmap="gray" if a.shape[2] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = col
            if key is not None and (ex["image"], key) in score:
                label += f"\n{score[(ex['image'], key)]:.2f} dB"
            if i == 0 or key is not None:
                ax.set_title(label, fontsize=8)
            if j == 0:
                ax.set_ylabel(str(ex["image"])[:18], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def method_table(summary: Mapping[str, Mapping[str, float]], *, order: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Rows ``{"method", "psnr", "ssim", "mse", "seconds", "n"}`` for printing, best PSNR first."""
    items = sorted(summary.items(), key=order or (lambda kv: -kv[1]["psnr"]))
    return [{"method": m, **{k: v[k] for k in ("psnr", "ssim", "mse", "seconds", "n") if k in v}} for m, v in items]


def plot_restore_curves(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Training curves of a restoration run (rows of ``metrics.csv``): losses, and val PSNR of the model and the input.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"epoch": 1, "train_loss": 0.01, "val_loss": 0.009, "val_psnr": 27.0, "val_input_psnr": 20.2},
    ...         {"epoch": 2, "train_loss": 0.008, "val_loss": 0.008, "val_psnr": 28.0, "val_input_psnr": 20.2}]
    >>> plot_restore_curves(rows, Path(tempfile.mkdtemp()) / "c.png").suffix
    '.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def col(key: str) -> np.ndarray:
        out = []
        for r in rows:
            try:
                out.append(float(r.get(key)))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                out.append(np.nan)
        return np.asarray(out)

    epoch = col("epoch")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("train_loss", "train loss (patches)"), ("val_loss", "val loss (val crops)")):
        y = col(key)
        if np.isfinite(y).any():
            ax1.plot(epoch, y, marker="o", markersize=3, label=label)
    ax1.set_xlabel("epoch")
    ax1.set_title("loss")
    if ax1.lines:
        ax1.set_yscale("log")
        ax1.legend(fontsize=7)
    for key, label in (("val_psnr", "model"), ("val_input_psnr", "degraded input")):
        y = col(key)
        if np.isfinite(y).any():
            ax2.plot(epoch, y, marker="o", markersize=3, label=label)
    ax2.set_xlabel("epoch")
    ax2.set_title("val PSNR (dB, fixed centre crops)")
    if ax2.lines:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
