"""Synthetic degradations for training and scoring restorers: noise, blur, JPEG, downscaling, low light.

A :class:`Pipeline` is a seeded, composable list of steps. Each step works on float32
(H, W, C) images in [0, 1] (values may leave that range between steps, e.g. unclipped
gaussian noise) and draws every random number -- the noise and any parameter given as a
``(low, high)`` range -- from the one generator the pipeline passes along, so the same seed
always gives the same degraded image.

Steps (name: options; a number or a ``(low, high)`` range where marked *):

==============  ==================================================================
``gaussian``    ``sigma``\\* (grey levels, 0..255 scale)
``poisson``     ``peak``\\* (photons at white; smaller is noisier)
``salt_pepper`` ``amount``\\* (share of pixels hit), ``salt`` (share of those set white)
``blur``        ``sigma``\\* (gaussian blur in pixels)
``jpeg``        ``quality``\\* (1..100; encoded and decoded with OpenCV)
``downscale``   ``factor`` (alias ``scale``: 2, 3, 4; antialiased bicubic), ``restore_size``
``low_light``   ``gamma``\\*, ``gain``\\*, ``sigma``\\* (darken ``gain * x**gamma``, then noise)
==============  ==================================================================

A pipeline is written as a list of ``{name: {option: value}}`` mappings (YAML) or as a string
``"blur:sigma=1..2+jpeg:quality=20..60"`` (steps joined by ``+``, ranges as ``low..high``).

Examples
--------
>>> import numpy as np
>>> clean = np.full((16, 16), 128, np.uint8)
>>> p = Pipeline.parse("gaussian:sigma=25")
>>> a, b = degrade(clean, p, seed=7), degrade(clean, p, seed=7)
>>> bool((a == b).all()), bool((a != clean).any())
(True, True)
>>> Pipeline.parse("blur:sigma=1..2+jpeg:quality=30").to_string()
'blur:sigma=1.0..2.0+jpeg:quality=30.0'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.names import check_name

__all__ = [
    "Degradation",
    "GaussianNoise",
    "PoissonNoise",
    "SaltPepper",
    "Blur",
    "Jpeg",
    "Downscale",
    "LowLight",
    "Pipeline",
    "STEPS",
    "degrade",
    "degrade_pair",
    "modcrop",
    "preset",
    "to_float",
    "to_uint8",
]

Value = float | tuple[float, float]


def _value(v: Any, name: str, *, low: float | None = None, high: float | None = None) -> Value:
    """A number or a (low, high) range, validated."""
    if isinstance(v, str):
        text = v.strip()
        if ".." in text:
            a, _, b = text.partition("..")
            v = (a, b)
        else:
            v = text
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ConfigError(f"{name} range must be (low, high), got {v!r}")
        try:
            a, b = float(v[0]), float(v[1])
        except (TypeError, ValueError):
            raise ConfigError(f"{name} range must hold two numbers, got {v!r}") from None
        if a > b:
            raise ConfigError(f"{name} range must have low <= high, got {a}..{b}")
        for x in (a, b):
            _bounds(x, name, low, high)
        return (a, b)
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number or a low..high range, got {v!r}") from None
    _bounds(x, name, low, high)
    return x


def _bounds(x: float, name: str, low: float | None, high: float | None) -> None:
    if not math.isfinite(x) or (low is not None and x < low) or (high is not None and x > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(f"{name} must lie in [{lo}, {hi}], got {x}")


def _draw(v: Value, rng: np.random.Generator) -> float:
    if isinstance(v, tuple):
        return float(rng.uniform(v[0], v[1])) if v[1] > v[0] else float(v[0])
    return float(v)


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return f"{v[0]}..{v[1]}"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> float32 (H, W, C) in [0, 1] (``x / 255``).

    Examples
    --------
    >>> to_float(np.array([[0, 255]], np.uint8)).shape
    (1, 2, 1)
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise ShapeError(f"expected a uint8 (H, W) or (H, W, C) image, got {a.dtype} {a.shape}")
    if a.ndim == 2:
        a = a[..., None]
    return a.astype(np.float32) * np.float32(1 / 255)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float (H, W, C) in [0, 1] -> uint8 (``round(255 x)``, clipped); a single channel comes back as (H, W).

    Examples
    --------
    >>> to_uint8(np.array([[[-0.1], [0.5], [1.2]]], np.float32))
    array([[  0, 128, 255]], dtype=uint8)
    """
    a = np.asarray(image, dtype=np.float32)
    out = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    return out[..., 0] if out.ndim == 3 and out.shape[2] == 1 else out


# ---------------------------------------------------------------- steps
@dataclass(frozen=True)
class Degradation:
    """One step: ``step(image, rng)`` with ``image`` float32 (H, W, C)."""

    name: ClassVar[str] = ""
    #: Output size = input size / scale.
    scale: ClassVar[int] = 1

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_string(self) -> str:
        opts = ",".join(f"{k}={_show(v)}" for k, v in self.options().items())
        return f"{self.name}:{opts}" if opts else self.name


@dataclass(frozen=True)
class GaussianNoise(Degradation):
    """Additive white gaussian noise of standard deviation ``sigma`` grey levels (a range: drawn per image)."""

    name: ClassVar[str] = "gaussian"
    sigma: Value = 25.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _value(self.sigma, "gaussian sigma", low=0.0, high=255.0))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = _draw(self.sigma, rng) / 255.0
        return image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(s)


@dataclass(frozen=True)
class PoissonNoise(Degradation):
    """Shot noise: ``poisson(x * peak) / peak`` (``peak`` photons at white)."""

    name: ClassVar[str] = "poisson"
    peak: Value = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak", _value(self.peak, "poisson peak", low=1e-3))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        peak = _draw(self.peak, rng)
        return (rng.poisson(np.clip(image, 0, None) * peak) / peak).astype(np.float32)


@dataclass(frozen=True)
class SaltPepper(Degradation):
    """Impulse noise: a share ``amount`` of the pixels set to white (``salt``) or black (all channels)."""

    name: ClassVar[str] = "salt_pepper"
    amount: Value = 0.05
    salt: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _value(self.amount, "salt_pepper amount", low=0.0, high=1.0))
        object.__setattr__(self, "salt", float(_value(self.salt, "salt_pepper salt", low=0.0, high=1.0)))  # type: ignore[arg-type]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        amount = _draw(self.amount, rng)
        h, w = image.shape[:2]
        u = rng.random((h, w), dtype=np.float32)
        out = image.copy()
        out[u < amount * self.salt] = 1.0
        out[(u >= amount * self.salt) & (u < amount)] = 0.0
        return out


@dataclass(frozen=True)
class Blur(Degradation):
    """Gaussian blur of ``sigma`` pixels (kernel ``2 ceil(3 sigma) + 1``, reflected borders)."""

    name: ClassVar[str] = "blur"
    sigma: Value = 1.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _value(self.sigma, "blur sigma", low=0.0, high=50.0))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        s = _draw(self.sigma, rng)
        if s <= 0:
            return image
        k = 2 * math.ceil(3 * s) + 1
        out = cv2.GaussianBlur(np.ascontiguousarray(image), (k, k), s, borderType=cv2.BORDER_REFLECT_101)
        return out.reshape(image.shape)


@dataclass(frozen=True)
class Jpeg(Degradation):
    """JPEG artefacts: the image (clipped, rounded to uint8) encoded at ``quality`` and decoded by OpenCV."""

    name: ClassVar[str] = "jpeg"
    quality: Value = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "quality", _value(self.quality, "jpeg quality", low=1.0, high=100.0))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import cv2

        q = int(round(_draw(self.quality, rng)))
        u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        colour = u8.shape[2] == 3
        src = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if colour else u8[..., 0]
        ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 images
            raise ShapeError(f"OpenCV could not JPEG-encode a {u8.shape} image")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
        if colour:
            dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
        return dec.reshape(image.shape).astype(np.float32) * np.float32(1 / 255)


def _resize_float(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bicubic resize of float (H, W, C) to (h, w) with Pillow's 32-bit float mode (MATLAB-like)."""
    from PIL import Image

    h, w = size
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize((w, h), Image.Resampling.BICUBIC)) for c in range(image.shape[2])]
    return np.stack(chans, axis=2).astype(np.float32)


@dataclass(frozen=True)
class Downscale(Degradation):
    """Bicubic downscaling by ``scale`` (antialiased, like MATLAB's ``imresize``); the size must divide by it.

    With ``restore_size`` the result is upscaled back (bicubic) to the input size, for models that
    keep the size (the VDSR set-up).
    """

    name: ClassVar[str] = "downscale"
    factor: int = 2
    restore_size: bool = False

    def __post_init__(self) -> None:
        f = self.factor
        if isinstance(f, str) and f.strip().isdigit():
            f = int(f)
        if isinstance(f, float) and f.is_integer():
            f = int(f)
        if isinstance(f, bool) or not isinstance(f, int) or f < 2 or f > 8:
            raise ConfigError(f"downscale factor must be an integer 2..8, got {self.factor!r}")
        object.__setattr__(self, "factor", f)
        r = self.restore_size
        if isinstance(r, str):
            r = r.strip().lower() in ("1", "true", "yes")
        object.__setattr__(self, "restore_size", bool(r))

    @property
    def scale(self) -> int:  # type: ignore[override]
        return 1 if self.restore_size else self.factor

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        f = self.factor
        if h % f or w % f:
            raise ShapeError(f"downscale x{f} needs a height and width divisible by {f}, got {w}x{h}; crop it first (modcrop)")
        small = _resize_float(image, (h // f, w // f))
        return _resize_float(small, (h, w)) if self.restore_size else small


@dataclass(frozen=True)
class LowLight(Degradation):
    """Low light: ``gain * x ** gamma`` (darker, more so in the shadows), then gaussian noise of ``sigma`` grey levels."""

    name: ClassVar[str] = "low_light"
    gamma: Value = (2.0, 3.0)
    gain: Value = (0.5, 0.9)
    sigma: Value = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", _value(self.gamma, "low_light gamma", low=1.0, high=10.0))
        object.__setattr__(self, "gain", _value(self.gain, "low_light gain", low=0.0, high=1.0))
        object.__setattr__(self, "sigma", _value(self.sigma, "low_light sigma", low=0.0, high=255.0))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        g, k, s = _draw(self.gamma, rng), _draw(self.gain, rng), _draw(self.sigma, rng) / 255.0
        dark = np.float32(k) * np.power(np.clip(image, 0, 1), np.float32(g))
        return dark + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(s)


#: Every step by name.
STEPS: dict[str, type[Degradation]] = {
    c.name: c for c in (GaussianNoise, PoissonNoise, SaltPepper, Blur, Jpeg, Downscale, LowLight)
}


def _step(name: str, options: Mapping[str, Any] | None) -> Degradation:
    cls = STEPS[check_name(str(name), STEPS, what="degradation")]
    valid = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in dict(options or {}).items():
        key = {"scale": "factor"}.get(key, key) if cls is Downscale else key
        check_name(key, valid, what=f"option of degradation {cls.name!r}")
        kwargs[key] = value
    return cls(**kwargs)


# ---------------------------------------------------------------- pipeline
@dataclass(frozen=True)
class Pipeline:
    """Degradation steps applied in order, with one seeded generator.

    Parameters
    ----------
    steps : sequence of Degradation
    clip : bool, default True
        Clip the result to [0, 1] (what an 8-bit camera or file does). Off reproduces the
        usual denoising benchmarks (unclipped gaussian noise).

    Examples
    --------
    >>> p = Pipeline([GaussianNoise(10)], clip=False)
    >>> x = np.zeros((4, 4, 1), np.float32)
    >>> bool((p(x, seed=1) == p(x, seed=1)).all()), float(p(x, seed=1).min()) < 0
    (True, True)
    """

    steps: tuple[Degradation, ...]
    clip: bool = True

    def __init__(self, steps: Sequence[Degradation], *, clip: bool = True) -> None:
        steps = tuple(steps)
        for s in steps:
            if not isinstance(s, Degradation):
                raise ConfigError(f"pipeline steps must be degradations ({', '.join(STEPS)}), got {type(s).__name__}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "clip", bool(clip))

    @property
    def scale(self) -> int:
        """How many times smaller the output is than the input (1 unless it downscales)."""
        out = 1
        for s in self.steps:
            out *= s.scale
        return out

    def __call__(self, image: np.ndarray, *, seed: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Degrade a float32 (H, W, C) image in [0, 1]; ``seed`` (or a generator ``rng``) makes it reproducible."""
        x = np.asarray(image, dtype=np.float32)
        if x.ndim != 3:
            raise ShapeError(f"a pipeline degrades float (H, W, C) images, got shape {x.shape}; use degrade() for uint8 images")
        if rng is None:
            rng = np.random.default_rng(seed)
        for step in self.steps:
            x = step(x, rng)
        if self.clip:
            x = np.clip(x, 0.0, 1.0)
        return x.astype(np.float32, copy=False)

    # ------------------------------------------------------------ (de)serialisation
    @classmethod
    def parse(cls, spec: str | Sequence[Any] | Mapping[str, Any] | Pipeline, *, clip: bool | None = None) -> Pipeline:
        """A pipeline from a string (``"blur:sigma=1.5+jpeg:quality=20..60"``), a list of ``{name: {options}}``
        mappings (or names), or ``{"steps": [...], "clip": bool}``.

        Raises
        ------
        UnknownNameError
            Unknown step or option (with the closest valid name).
        ConfigError
            Bad values or an empty pipeline.
        """
        if isinstance(spec, Pipeline):
            return spec if clip is None else Pipeline(spec.steps, clip=clip)
        if isinstance(spec, Mapping) and "steps" in spec:
            c = spec.get("clip", True) if clip is None else clip
            return cls.parse(spec["steps"], clip=bool(c))
        steps: list[Degradation] = []
        if isinstance(spec, str):
            for part in (p.strip() for p in spec.split("+")):
                if not part:
                    continue
                name, _, rest = part.partition(":")
                opts: dict[str, str] = {}
                for item in (i.strip() for i in rest.split(",") if i.strip()):
                    key, eq, value = item.partition("=")
                    if not eq:
                        raise ConfigError(f"degradation {part!r}: options are key=value, got {item!r}")
                    opts[key.strip()] = value.strip()
                steps.append(_step(name.strip(), opts))
        elif isinstance(spec, Mapping):
            steps = [_step(k, v) for k, v in spec.items()]
        elif isinstance(spec, Sequence):
            for item in spec:
                if isinstance(item, str):
                    steps.extend(cls.parse(item).steps)
                elif isinstance(item, Mapping) and len(item) == 1:
                    (name, opts), = item.items()
                    steps.append(_step(name, opts))
                else:
                    raise ConfigError(f"each degradation is a name or a one-key mapping {{name: {{options}}}}, got {item!r}")
        else:
            raise ConfigError(f"a degradation pipeline is a string or a list, got {type(spec).__name__}")
        if not steps:
            raise ConfigError(f"empty degradation pipeline {spec!r}; name at least one of {', '.join(STEPS)}")
        return cls(steps, clip=True if clip is None else clip)

    def to_list(self) -> list[dict[str, dict[str, Any]]]:
        """``[{name: {option: value}}]``, JSON/YAML-able (ranges as lists); :meth:`parse` reads it back."""
        return [{s.name: {k: list(v) if isinstance(v, tuple) else v for k, v in s.options().items()}} for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.to_list(), "clip": self.clip}

    def to_string(self) -> str:
        return "+".join(s.to_string() for s in self.steps)


def preset(task: str, *, sigma: Value | None = None, noise: str = "gaussian", scale: int = 2, restore_size: bool = False) -> Pipeline:
    """The default degradation of a restoration task.

    ``denoise``: ``noise`` (gaussian at ``sigma`` grey levels, default 25; poisson; salt_pepper);
    ``super-resolution``: bicubic downscaling by ``scale``; ``enhance``: low light.

    Examples
    --------
    >>> preset("denoise", sigma=(0, 55)).to_string()
    'gaussian:sigma=0.0..55.0'
    >>> preset("super-resolution", scale=4).scale
    4
    """
    task = check_name(task, ("denoise", "super-resolution", "enhance"), what="restoration task")
    if task == "denoise":
        noise = check_name(noise, ("gaussian", "poisson", "salt_pepper"), what="noise")
        if noise == "gaussian":
            return Pipeline([GaussianNoise(25.0 if sigma is None else sigma)])
        if sigma is not None:
            raise ConfigError(f"sigma applies to gaussian noise; {noise} noise takes its options through --degrade")
        return Pipeline([STEPS[noise]()])
    if task == "super-resolution":
        return Pipeline([Downscale(scale, restore_size)])
    return Pipeline([LowLight()] if sigma is None else [LowLight(sigma=sigma)])


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right edge so that height and width divide by ``scale``.

    Examples
    --------
    >>> modcrop(np.zeros((7, 10)), 4).shape
    (4, 8)
    """
    if scale <= 1:
        return image
    h, w = image.shape[:2]
    if h < scale or w < scale:
        raise ShapeError(f"an image of {w}x{h} is smaller than the scale {scale}")
    return image[: h - h % scale, : w - w % scale]


def degrade_pair(clean: np.ndarray, pipeline: Pipeline, *, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(degraded, clean)`` float32 (H, W, C) from a clean float image (cropped to the pipeline's scale first)."""
    x = np.asarray(clean, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    x = modcrop(x, pipeline.scale)
    return pipeline(x, seed=seed), x


def degrade(image: np.ndarray, pipeline: Pipeline | str | Sequence[Any], *, seed: int | None = None) -> np.ndarray:
    """Degrade a uint8 (H, W) or (H, W, 3) image; the result is uint8 too (clipped, rounded), same layout.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), dtype uint8
    pipeline : Pipeline, str or list
        See :meth:`Pipeline.parse`.
    seed : int, optional
        Same seed, same result.

    Returns
    -------
    ndarray, dtype uint8
        Smaller by the pipeline's scale when it downscales (the input is cropped to a multiple first).

    Examples
    --------
    >>> img = np.zeros((9, 9, 3), np.uint8)
    >>> degrade(img, "downscale:scale=2", seed=0).shape
    (4, 4, 3)
    """
    p = Pipeline.parse(pipeline)
    arr = np.asarray(image)
    out, _ = degrade_pair(to_float(arr), p, seed=seed)
    res = to_uint8(out)
    return res if arr.ndim == 2 or res.ndim == 3 else res[..., None]
