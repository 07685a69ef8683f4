"""Box- and mask-aware augmentation on torchvision.transforms.v2: presets and YAML pipelines.

A :class:`Sample` is turned into torchvision tv_tensors (``Image``, ``BoundingBoxes`` in xyxy
with its canvas, ``Mask`` for the semantic mask and for the instance masks), every step of the
pipeline samples its parameters once and applies them to all of them, degenerate boxes are then
dropped with their labels and instance masks (``SanitizeBoundingBoxes``), and the result goes
back into a Sample (uint8 (H, W, 3) image, xyxy boxes).

Geometric steps (``hflip``, ``vflip``, ``rotate``, ``zoom_crop``) move the image, the boxes,
the masks and a restoration target together; masks always use nearest-neighbour interpolation.
Photometric steps (``color``, ``noise``, ``blur``) change the input image only: masks, boxes and
a restoration target are never touched by them.

Reproducibility: all randomness comes from torch's CPU generator. ``augment(sample, seed=s)``
seeds that generator with ``s`` for the call and restores its previous state afterwards, so the
same seed gives the same augmentation in any process. The training loader derives ``s`` from
``(seed, epoch, index)`` with :func:`sample_seed`, so a run is reproducible whatever the number
of workers.

Examples
--------
>>> import numpy as np
>>> from pixlearn._core.types import Sample
>>> aug = build_augment([{"hflip": {"p": 1.0}}], task="classify")
>>> image = np.zeros((4, 6, 3), np.uint8); image[:, 0] = 255
>>> aug(Sample(image=image)).image[:, -1, 0].tolist()
[255, 255, 255, 255]
>>> build_augment("standart", task="classify")
Traceback (most recent call last):
...
pixlearn._core.errors.UnknownNameError: unknown augment preset 'standart'; did you mean 'standard'? Valid: 'light', 'none', 'standard', 'strong'
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.names import check_name
from pixlearn._core.types import Boxes, BoxFormat, Sample, Task

__all__ = [
    "PRESETS",
    "TRANSFORMS",
    "Augment",
    "build_augment",
    "load_augment_spec",
    "parse_augment",
    "sample_seed",
    "to_tensor_sample",
]

# ---------------------------------------------------------------- option checks (no torch)
_M64 = (1 << 64) - 1


def _number(t: str, o: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ConfigError(f"augment '{t}': option '{o}' must be a number, got {v!r}")
    return float(v)


def _prob(t: str, o: str, v: Any) -> float:
    p = _number(t, o, v)
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augment '{t}': option '{o}' is a probability in [0, 1], got {v!r}")
    return p


def _pair(t: str, o: str, v: Any, *, lo: float, hi: float, symmetric: bool = False) -> tuple[float, float]:
    """A number or a [min, max] pair within [lo, hi]; a single number d means (-d, d) when symmetric."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ConfigError(f"augment '{t}': option '{o}' must be a number or a [min, max] pair, got {v!r}")
        a, b = _number(t, o, v[0]), _number(t, o, v[1])
    else:
        d = _number(t, o, v)
        if symmetric and d < 0:
            raise ConfigError(f"augment '{t}': option '{o}' must be >= 0 (it means ±{o}), got {v!r}")
        a, b = (-d, d) if symmetric else (d, d)
    if a > b:
        raise ConfigError(f"augment '{t}': option '{o}' must have min <= max, got {v!r}")
    if a < lo or b > hi:
        raise ConfigError(f"augment '{t}': option '{o}' must lie within [{lo:g}, {hi:g}], got {v!r}")
    return (a, b)


def _factor(t: str, o: str, v: Any) -> float:
    f = _number(t, o, v)
    if f < 0:
        raise ConfigError(f"augment '{t}': option '{o}' must be >= 0 (0 turns it off), got {v!r}")
    return f


def _unit(t: str, o: str, v: Any) -> float:
    f = _number(t, o, v)
    if not 0.0 <= f <= 1.0:
        raise ConfigError(
            f"augment '{t}': option '{o}' must lie within [0, 1] (a fraction of the 0..255 range), got {v!r}"
        )
    return f


def _hue(t: str, o: str, v: Any) -> float:
    f = _number(t, o, v)
    if not 0.0 <= f <= 0.5:
        raise ConfigError(f"augment '{t}': option '{o}' must lie within [0, 0.5], got {v!r}")
    return f


def _kernel(t: str, o: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
        raise ConfigError(
            f"augment '{t}': option '{o}' must be a positive odd integer (or null for automatic), got {v!r}"
        )
    return v


def _fill(t: str, o: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
        raise ConfigError(
            f"augment '{t}': option '{o}' is the grey level of uncovered pixels, an integer in 0..255, got {v!r}"
        )
    return v


@dataclass(frozen=True)
class _Opt:
    default: Any
    check: Callable[[str, str, Any], Any]


@dataclass(frozen=True)
class _Kind:
    geometric: bool
    options: dict[str, _Opt]
    doc: str


#: Every transform a pipeline may name: whether it moves targets (geometric) and its options.
TRANSFORMS: dict[str, _Kind] = {
    "hflip": _Kind(True, {"p": _Opt(0.5, _prob)}, "mirror left-right with probability p"),
    "vflip": _Kind(True, {"p": _Opt(0.5, _prob)}, "mirror top-bottom with probability p"),
    "rot90": _Kind(
        True,
        {"p": _Opt(1.0, _prob)},
        "rotate by 0, 90, 180 or 270 degrees, drawn uniformly (exact: no resampling; with flips, every symmetry of "
        "the square); a non-square image turns by 0 or 180 only, keeping its size",
    ),
    "rotate": _Kind(
        True,
        {
            "degrees": _Opt((-10.0, 10.0), lambda t, o, v: _pair(t, o, v, lo=-180, hi=180, symmetric=True)),
            "fill": _Opt(0, _fill),
            "p": _Opt(1.0, _prob),
        },
        "rotate by an angle drawn from ±degrees (or [min, max]); boxes become the enclosing box",
    ),
    "zoom_crop": _Kind(
        True,
        {
            "scale": _Opt((0.5, 1.0), lambda t, o, v: _pair(t, o, v, lo=1e-3, hi=1.0)),
            "ratio": _Opt((3 / 4, 4 / 3), lambda t, o, v: _pair(t, o, v, lo=1e-2, hi=100.0)),
            "p": _Opt(1.0, _prob),
        },
        "crop an area fraction drawn from scale and resize it back (img_size, or the input size); "
        "for detection the crop keeps at least one box centre (RandomIoUCrop)",
    ),
    "color": _Kind(
        False,
        {
            "brightness": _Opt(0.0, _factor),
            "contrast": _Opt(0.0, _factor),
            "saturation": _Opt(0.0, _factor),
            "hue": _Opt(0.0, _hue),
            "p": _Opt(1.0, _prob),
        },
        "jitter brightness, contrast, saturation (factors drawn from [1-x, 1+x]) and hue (±x)",
    ),
    "noise": _Kind(
        False,
        {"sigma": _Opt(0.03, _unit), "p": _Opt(1.0, _prob)},
        "add gaussian noise of standard deviation sigma (in units of the full 0..255 range)",
    ),
    "blur": _Kind(
        False,
        {
            "sigma": _Opt((0.1, 2.0), lambda t, o, v: _pair(t, o, v, lo=1e-3, hi=50.0)),
            "kernel_size": _Opt(None, _kernel),
            "p": _Opt(1.0, _prob),
        },
        "gaussian blur with a sigma drawn from [min, max]",
    ),
}

#: Named pipelines. Crops come first so photometric steps run on the smaller image.
PRESETS: dict[str, list[dict[str, dict[str, Any]]]] = {
    "none": [],
    "light": [
        {"zoom_crop": {"scale": [0.85, 1.0]}},
        {"hflip": {"p": 0.5}},
        {"color": {"brightness": 0.1, "contrast": 0.1}},
    ],
    "standard": [
        {"zoom_crop": {"scale": [0.7, 1.0]}},
        {"hflip": {"p": 0.5}},
        {"rotate": {"degrees": 10}},
        {"color": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2}},
    ],
    "strong": [
        {"zoom_crop": {"scale": [0.4, 1.0]}},
        {"hflip": {"p": 0.5}},
        {"rotate": {"degrees": 20}},
        {"color": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.05}},
        {"blur": {"sigma": [0.1, 1.5], "p": 0.3}},
        {"noise": {"sigma": 0.03, "p": 0.3}},
    ],
}

_YAML_SUFFIXES = (".yaml", ".yml")


def load_augment_spec(path: str | os.PathLike[str]) -> list[Any]:
    """Read a pipeline from a YAML file: a list of steps, or a mapping with an ``augment:`` or ``steps:`` list.

    Raises
    ------
    ConfigError
        The file is missing, is not valid YAML, or holds no list of steps.
    """
    from pixlearn._core.safe_yaml import load_yaml_file

    path = Path(path)
    try:  # bounded size, depth and values, no anchors/aliases
        data = load_yaml_file(path, max_bytes=256 * 1024, max_depth=16)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such augmentation file; give a preset ({', '.join(PRESETS)}) or a YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the augmentation YAML ({exc})") from None
    if isinstance(data, Mapping) and len(data) == 1 and next(iter(data)) in ("augment", "steps"):
        data = next(iter(data.values()))
    if not isinstance(data, list):
        raise ConfigError(
            f"{path}: expected a list of steps such as '- hflip: {{p: 0.5}}', got {type(data).__name__}"
        )
    return data


def parse_augment(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """Validate a pipeline and return its steps as ``(name, options)`` with every default filled in.

    ``spec`` is a preset name (``none``, ``light``, ``standard``, ``strong``), a path to a
    ``.yaml``/``.yml`` file, or a list whose items are a transform name or a one-key mapping
    ``{name: {option: value}}``; an ordered mapping ``{name: options, ...}`` is accepted too.
    Nothing is built and no image is touched.

    Raises
    ------
    UnknownNameError
        An unknown preset, transform or option; the message names the closest one.
    ConfigError
        An option value of the wrong type or out of range.

    Examples
    --------
    >>> parse_augment([{"hflip": {"p": 1}}, "vflip"])
    [('hflip', {'p': 1.0}), ('vflip', {'p': 0.5})]
    >>> parse_augment([{"rotate": {"degres": 5}}])
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown option of augment 'rotate' 'degres'; did you mean 'degrees'? Valid: 'degrees', 'fill', 'p'
    """
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and spec.lower().endswith(_YAML_SUFFIXES)):
        spec = load_augment_spec(spec)
    elif isinstance(spec, str):
        spec = PRESETS[check_name(spec, PRESETS, what="augment preset")]
    elif spec is None:
        spec = []
    if isinstance(spec, Mapping):
        spec = [{k: v} for k, v in spec.items()]
    if not isinstance(spec, (list, tuple)):
        raise ConfigError(
            f"augment must be a preset name ({', '.join(PRESETS)}), a YAML file or a list of steps, got {type(spec).__name__}"
        )
    steps: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(spec):
        if isinstance(item, str):
            name, given = item, {}
        elif (
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
        ):  # parse_augment's own output
            name, given = item
        elif isinstance(item, Mapping) and len(item) == 1:
            name, given = next(iter(item.items()))
        else:
            raise ConfigError(
                f"augment step {i + 1} must be a transform name or a one-key mapping {{name: {{options}}}}, got {item!r}"
            )
        given = {} if given is None else given
        if not isinstance(given, Mapping):
            raise ConfigError(
                f"augment step {i + 1} ({name!r}): options must be a mapping like {{p: 0.5}}, got {given!r}"
            )
        name = check_name(str(name), TRANSFORMS, what="augment transform")
        kind = TRANSFORMS[name]
        options = {}
        for key, value in given.items():
            key = check_name(str(key), kind.options, what=f"option of augment '{name}'")
            options[key] = kind.options[key].check(name, key, value)
        for key, opt in kind.options.items():
            options.setdefault(key, opt.default)
        steps.append((name, options))
    return steps


# ---------------------------------------------------------------- seeding
def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation: a 63-bit hash of ``(seed, epoch, index)``.

    Examples
    --------
    >>> sample_seed(0, 0, 1) == sample_seed(0, 0, 1) != sample_seed(0, 1, 1)
    True
    """
    return _splitmix(_splitmix(_splitmix(seed & _M64) ^ (epoch & _M64)) ^ (index & _M64)) >> 1


class _seeded:
    """Run a block with torch's CPU generator seeded, then put its state back."""

    __slots__ = ("seed", "state")

    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        if self.seed is not None:
            self.state = torch.default_generator.get_state()
            torch.default_generator.manual_seed(int(self.seed))

    def __exit__(self, *exc: object) -> None:
        if self.seed is not None:
            torch.default_generator.set_state(self.state)


# ---------------------------------------------------------------- Sample <-> tv_tensors
def _size_pair(img_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if img_size is None:
        return None
    if isinstance(img_size, numbers.Integral) and not isinstance(img_size, bool):
        size = (int(img_size), int(img_size))
    elif (
        isinstance(img_size, (list, tuple))
        and len(img_size) == 2
        and all(isinstance(v, numbers.Integral) for v in img_size)
    ):
        size = (int(img_size[0]), int(img_size[1]))
    else:
        raise ConfigError(f"img_size must be an int or an (height, width) pair of ints, got {img_size!r}")
    if min(size) < 1:
        raise ConfigError(f"img_size must be positive, got {img_size!r}")
    return size


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory; copied only when torch cannot share it (read-only, negative strides)."""
    if not array.flags.writeable or any(s < 0 for s in array.strides):
        array = np.array(array)
    return torch.from_numpy(array)


def _chw(array: np.ndarray, name: str) -> torch.Tensor:
    """(H, W[, C]) uint8 numpy -> (C, H, W) tensor view (no copy unless the strides are negative)."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ShapeError(
            f"sample {name} must be a uint8 (H, W, 3) or (H, W) array, got {array.dtype} {array.shape}"
        )
    t = _from_numpy(array)
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


def _to_tv(sample: Sample) -> dict[str, Any]:
    """A Sample as a dict of tv_tensors (views of its arrays where possible); ``labels`` a plain tensor."""
    image = sample.image
    if not isinstance(image, np.ndarray):
        raise ShapeError(f"sample image must be a numpy array, got {type(image).__name__}")
    h, w = image.shape[:2]
    tv: dict[str, Any] = {"image": tv_tensors.Image(_chw(image, "image"))}
    if sample.boxes is not None:
        boxes = sample.boxes.to(BoxFormat.XYXY).data
        tv["boxes"] = tv_tensors.BoundingBoxes(
            _from_numpy(np.ascontiguousarray(boxes, np.float32)),
            format="XYXY",
            canvas_size=(h, w),
            clamping_mode="hard",
        )
        labels = sample.box_labels if sample.box_labels is not None else np.zeros(len(boxes), np.int64)
        tv["labels"] = torch.as_tensor(np.asarray(labels, np.int64))
        if sample.masks is not None:
            masks = np.asarray(sample.masks)
            if masks.shape != (len(boxes), h, w):
                raise ShapeError(
                    f"instance masks must have shape {(len(boxes), h, w)} (one per box), got {masks.shape}"
                )
            masks = masks.view(np.uint8) if masks.dtype == bool else (masks != 0).view(np.uint8)
            tv["masks"] = tv_tensors.Mask(_from_numpy(masks))
    if sample.mask is not None:
        mask = np.asarray(sample.mask)
        if mask.shape != (h, w):
            raise ShapeError(f"the semantic mask must have the image's shape {(h, w)}, got {mask.shape}")
        if mask.dtype not in (np.uint8, np.int32, np.int64, np.int16, np.bool_):
            mask = mask.astype(np.int32 if mask.dtype != np.int8 else np.int16)
        tv["mask"] = tv_tensors.Mask(_from_numpy(mask))
    if sample.target is not None:
        tv["target"] = tv_tensors.Image(_chw(np.asarray(sample.target), "target"))
    return tv


def _numpy_image(t: torch.Tensor) -> np.ndarray:
    arr = t.as_subclass(torch.Tensor).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def _from_tv(tv: dict[str, Any], sample: Sample) -> Sample:
    image = _numpy_image(tv["image"])
    h, w = image.shape[:2]
    changes: dict[str, Any] = {"image": image}
    if "boxes" in tv:
        changes["boxes"] = Boxes(
            tv["boxes"].as_subclass(torch.Tensor).numpy(), BoxFormat.XYXY, canvas_size=(h, w)
        )
        changes["box_labels"] = tv["labels"].numpy().astype(np.int64, copy=False)
        if "masks" in tv:
            changes["masks"] = tv["masks"].as_subclass(torch.Tensor).numpy().astype(bool)
    if "mask" in tv:
        mask = tv["mask"].as_subclass(torch.Tensor).numpy()
        changes["mask"] = mask.astype(sample.mask.dtype, copy=False) if sample.mask is not None else mask
    if "target" in tv:
        changes["target"] = _numpy_image(tv["target"])
    return sample.replace(**changes)


def _image_hw(tv: dict[str, Any]) -> tuple[int, int]:
    shape = tv["image"].shape
    return int(shape[-2]), int(shape[-1])


_SANITIZE = v2.SanitizeBoundingBoxes(min_size=1.0, min_area=1.0)


def _sanitize(tv: dict[str, Any]) -> dict[str, Any]:
    """Drop degenerate boxes with their labels and instance masks (never the semantic mask)."""
    if "boxes" not in tv:
        return tv
    part = {k: tv[k] for k in ("boxes", "labels", "masks") if k in tv}
    tv.update(_SANITIZE(part))
    return tv


def _resize_to(tv: dict[str, Any], size: tuple[int, int] | None) -> dict[str, Any]:
    """Resize every target to ``size`` (bilinear antialiased images, nearest masks); no-op when already there."""
    if size is None or _image_hw(tv) == size:
        return tv
    return _call(v2.Resize(list(size), antialias=True), tv)


def _call(t: Callable[[Any], Any], tv: dict[str, Any]) -> dict[str, Any]:
    if len(tv) == 1:  # image only: skip the pytree walk
        return {"image": t(tv["image"])}
    return t(tv)


# ---------------------------------------------------------------- steps
class _ZoomCrop:
    """Crop a random area and resize it to the output size (``img_size``, else the input size).

    With boxes present (detection, instance segmentation) the crop is sampled like SSD's
    ``RandomIoUCrop`` (boxes whose centre falls outside are dropped by the sanitising step);
    otherwise like ``RandomResizedCrop``.
    """

    def __init__(
        self,
        scale: tuple[float, float],
        ratio: tuple[float, float],
        size: tuple[int, int] | None,
        box_aware: bool,
    ) -> None:
        self.scale, self.ratio, self.size, self.box_aware = scale, ratio, size, box_aware
        self._rrc = (
            v2.RandomResizedCrop(list(size), scale=scale, ratio=ratio, antialias=True) if size else None
        )

    def __call__(self, tv: dict[str, Any]) -> dict[str, Any]:
        h, w = _image_hw(tv)
        size = self.size or (h, w)
        if self.box_aware and "boxes" in tv and len(tv["boxes"]):
            aspect = w / h
            crop = v2.RandomIoUCrop(
                min_scale=math.sqrt(self.scale[0]),
                max_scale=math.sqrt(self.scale[1]),
                min_aspect_ratio=self.ratio[0] * aspect,
                max_aspect_ratio=self.ratio[1] * aspect,
            )
            return _resize_to(crop(tv), size)
        rrc = self._rrc or v2.RandomResizedCrop(
            list(size), scale=self.scale, ratio=self.ratio, antialias=True
        )
        return _call(rrc, tv)


class _Identity:
    def __call__(self, tv: dict[str, Any]) -> dict[str, Any]:
        return tv


class _ResizeTo:
    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, tv: dict[str, Any]) -> dict[str, Any]:
        return _resize_to(tv, self.size)


class _ImageOnly:
    """Apply a photometric transform to the input image alone."""

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        self.transform = transform

    def __call__(self, tv: dict[str, Any]) -> dict[str, Any]:
        tv = dict(tv)
        tv["image"] = self.transform(tv["image"])
        return tv


class _Maybe:
    """Apply ``step`` with probability ``p`` (one draw from torch's generator)."""

    def __init__(self, step: Callable[[dict[str, Any]], dict[str, Any]], p: float) -> None:
        self.step, self.p = step, p

    def __call__(self, tv: dict[str, Any]) -> dict[str, Any]:
        if self.p >= 1.0 or float(torch.rand(1)) < self.p:
            return self.step(tv)
        return tv


class _Rot90(v2.Transform):
    """A quarter turn drawn from {0, 1, 2, 3}, applied to the image, mask and boxes together (exact); a non-square
    image turns by 0 or 180 degrees only, so that its size (a batch's) is kept."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = next(x.shape[-2:] for x in flat_inputs if isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.BoundingBoxes))
        k = int(torch.randint(4, (1,)))
        return {"k": k if h == w else 2 * (k % 2)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return F.rotate(inpt, 90.0 * params["k"], expand=True) if params["k"] else inpt


class _Geometric:
    def __init__(self, transform: Callable[[Any], Any]) -> None:
        self.transform = transform

    def __call__(self, tv: dict[str, Any]) -> dict[str, Any]:
        return _call(self.transform, tv)


def _blur_kernel(sigma: tuple[float, float], kernel_size: int | None) -> int:
    return kernel_size or 2 * math.ceil(3 * sigma[1]) + 1


class _Blur:
    def __init__(self, sigma: tuple[float, float], kernel_size: int | None) -> None:
        self.sigma, self.kernel_size = sigma, _blur_kernel(sigma, kernel_size)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        s = self.sigma[0] + float(torch.rand(1)) * (self.sigma[1] - self.sigma[0])
        h, w = image.shape[-2:]
        k = min(self.kernel_size, (min(h, w) - 1) | 1)  # the kernel must fit the image
        return F.gaussian_blur(image, [k, k], [s, s]) if k >= 3 else image


def _build_step(
    name: str, o: dict[str, Any], *, task: Task, size: tuple[int, int] | None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    p = o.get("p", 1.0)
    if name == "hflip":
        return _Geometric(v2.RandomHorizontalFlip(p))
    if name == "vflip":
        return _Geometric(v2.RandomVerticalFlip(p))
    if name == "rot90":
        return _Maybe(_Geometric(_Rot90()), p) if p < 1.0 else _Geometric(_Rot90())
    if name == "rotate":
        # fill None is grid_sample's zero padding: the same black corners as fill 0 at half the cost
        # (an explicit fill makes torchvision resample an extra alpha channel and blend it).
        fill = {tv_tensors.Image: o["fill"] or None, tv_tensors.Mask: None}
        step: Callable[[dict[str, Any]], dict[str, Any]] = _Geometric(
            v2.RandomRotation(o["degrees"], interpolation=v2.InterpolationMode.BILINEAR, fill=fill)
        )
    elif name == "zoom_crop":
        step = _ZoomCrop(o["scale"], o["ratio"], size, box_aware=task in (Task.DETECT, Task.INSTANCE))
    elif name == "color":
        jitter = {k: o[k] for k in ("brightness", "contrast", "saturation", "hue") if o[k]}
        if not jitter:
            return _Identity()
        step = _ImageOnly(v2.ColorJitter(**jitter))
    elif name == "noise":
        step = _ImageOnly(v2.GaussianNoise(sigma=o["sigma"], clip=True))
    elif name == "blur":
        step = _ImageOnly(_Blur(o["sigma"], o["kernel_size"]))
    else:  # pragma: no cover - parse_augment rejects unknown names first
        raise ConfigError(f"unknown augment transform {name!r}")
    return _Maybe(step, p) if p < 1.0 else step


# ---------------------------------------------------------------- the pipeline
class Augment:
    """A validated augmentation pipeline: call it on a :class:`Sample` (see :func:`build_augment`).

    Attributes
    ----------
    steps : list of (name, options)
        The validated pipeline, every option filled in.
    task : Task
    img_size : (height, width) or None
        Output size; ``None`` keeps each image's size.
    """

    def __init__(
        self, steps: list[tuple[str, dict[str, Any]]], *, task: Task, img_size: tuple[int, int] | None
    ) -> None:
        self.steps = steps
        self.task = task
        self.img_size = img_size
        built = [_build_step(name, opts, task=task, size=img_size) for name, opts in steps]
        if img_size is not None and not any(name == "zoom_crop" for name, _ in steps):
            built.insert(0, _ResizeTo(img_size))  # resize first: later steps run on fewer pixels
        self._built = built

    def __getstate__(self) -> dict[str, Any]:  # rebuilt on unpickling (DataLoader workers under spawn)
        return {"steps": self.steps, "task": self.task, "img_size": self.img_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["steps"], task=state["task"], img_size=state["img_size"])  # type: ignore[misc]

    def __repr__(self) -> str:
        names = ", ".join(name for name, _ in self.steps) or "nothing"
        return f"Augment({names}; task={self.task.value}, img_size={self.img_size})"

    def __call__(self, sample: Sample, *, seed: int | None = None) -> Sample:
        """Augment one sample; ``seed`` makes the draw reproducible (torch's global state is left as it was)."""
        return _from_tv(self.apply_tv(_to_tv(sample), seed=seed), sample)

    def apply_tv(self, tv: dict[str, Any], *, seed: int | None = None) -> dict[str, Any]:
        """Augment a dict of tv_tensors (``image``, ``boxes``, ``labels``, ``masks``, ``mask``, ``target``)."""
        with _seeded(seed):
            for step in self._built:
                tv = step(tv)
        tv = _resize_to(tv, self.img_size)
        return _sanitize(tv)


def _task(task: Task | str) -> Task:
    if isinstance(task, Task):
        return task
    return Task(check_name(str(task), [t.value for t in Task], what="task"))


def build_augment(spec: Any, *, task: Task | str, img_size: int | tuple[int, int] | None = None) -> Augment:
    """Build a box- and mask-aware augmentation pipeline.

    Parameters
    ----------
    spec : str, path, list or mapping
        A preset (``"none"``, ``"light"``, ``"standard"``, ``"strong"``), a ``.yaml`` file, or a
        pipeline such as ``[{"hflip": {"p": 0.5}}, {"rotate": {"degrees": 10}},
        {"zoom_crop": {"scale": [0.8, 1.0]}}, {"color": {"brightness": 0.2}},
        {"noise": {"sigma": 0.03}}, {"blur": {"sigma": [0.1, 1.5]}}]``. See :data:`TRANSFORMS`.
    task : Task or str
        Selects the crop: SSD-style IoU crops that keep boxes for ``detect``/``instance``.
    img_size : int or (height, width), optional
        Output size of every image (crops resize to it; without a crop the image is resized
        first). ``None`` keeps each input's size.

    Returns
    -------
    Augment
        ``augment(sample, seed=None) -> Sample``.

    Raises
    ------
    UnknownNameError, ConfigError
        Raised here, before any image is touched, for unknown names or bad option values.
    """
    steps = parse_augment(spec)
    return Augment(steps, task=_task(task), img_size=_size_pair(img_size))


# ---------------------------------------------------------------- model side
def _check_stats(name: str, values: Sequence[float] | None, channels: int) -> torch.Tensor | None:
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() not in (1, channels):
        raise ShapeError(f"{name} must have 1 or {channels} values (one per channel), got {list(values)}")
    return t.expand(channels).reshape(channels, 1, 1)


def _normalizer(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) so that ``uint8 * scale + shift`` is ``(x / 255 - mean) / std``."""
    m = _check_stats("mean", mean, channels)
    s = _check_stats("std", std, channels)
    if (m is None) != (s is None):
        raise ConfigError("give both mean and std to normalise, or neither")
    if m is None or s is None:
        return torch.full((channels, 1, 1), 1 / 255), torch.zeros((channels, 1, 1))
    if bool((s <= 0).any()):
        raise ConfigError(f"std must be positive, got {list(std or [])}")
    return 1 / (255 * s), -m / s


def _targets(tv: dict[str, Any], sample: Sample) -> dict[str, torch.Tensor]:
    """Plain-tensor targets in torchvision's convention (uint8 images stay uint8)."""
    out: dict[str, torch.Tensor] = {}
    if sample.label is not None:
        out["label"] = torch.tensor(int(sample.label), dtype=torch.int64)
    if "boxes" in tv:
        out["boxes"] = tv["boxes"].as_subclass(torch.Tensor).to(torch.float32)
        out["labels"] = tv["labels"].to(torch.int64)
        if "masks" in tv:
            out["masks"] = tv["masks"].as_subclass(torch.Tensor).to(torch.uint8)
    if "mask" in tv:
        out["mask"] = tv["mask"].as_subclass(torch.Tensor).to(torch.int64)
    if "target" in tv:
        out["target"] = tv["target"].as_subclass(torch.Tensor)
    return out


def to_tensor_sample(
    sample: Sample,
    *,
    img_size: int | tuple[int, int] | None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A Sample as the model sees it: a float32 (C, H, W) image in [0, 1] and a targets dict.

    Parameters
    ----------
    sample : Sample
    img_size : int or (height, width) or None
        Resize every part to this size (boxes scaled, masks nearest); ``None`` keeps the size.
    mean, std : sequence of float, optional
        Per-channel statistics in [0, 1] units; the image becomes ``(x - mean) / std``
        only when both are given.

    Returns
    -------
    image : Tensor of shape (C, H, W), float32
        ``image.unsqueeze(0)`` is a model's N x C x H x W input.
    targets : dict
        What the sample has, in torchvision's detection convention: ``boxes`` float32 (N, 4)
        xyxy, ``labels`` int64 (N,), ``masks`` uint8 (N, H, W); plus ``label`` int64 scalar
        (classification), ``mask`` int64 (H, W) (semantic), ``target`` float32 (C, H, W) in [0, 1]
        (restoration).

    Examples
    --------
    >>> import numpy as np
    >>> x, y = to_tensor_sample(Sample(image=np.full((4, 6, 3), 255, np.uint8), label=2), img_size=8)
    >>> tuple(x.shape), float(x.max()), int(y["label"])
    ((3, 8, 8), 1.0, 2)
    """
    tv = _sanitize(_resize_to(_to_tv(sample), _size_pair(img_size)))
    image = tv["image"].as_subclass(torch.Tensor)
    scale, shift = _normalizer(mean, std, image.shape[0])
    x = image * scale + shift
    targets = _targets(tv, sample)
    if "target" in targets:
        targets["target"] = targets["target"].to(torch.float32) / 255
    return x, targets
