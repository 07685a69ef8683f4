"""Image restoration networks and their registry: DnCNN, a U-Net restorer, ESPCN and a small EDSR.

Every restorer maps an (N, C, H, W) float image in [0, 1] to the restored image: the same size
for denoising and enhancement (``dncnn``, ``unet``), ``scale`` times larger for super-resolution
(``espcn``, ``edsr``). ``C`` is 1 (grey) or 3 (colour). :func:`create_restorer` builds one by
name and attaches a :class:`RestorerSpec` (``model.pixlearn_spec``) that rebuilds the same
architecture without code (:func:`build_restorer`); weights are saved as safetensors like every
pixlearn model.

Examples
--------
>>> import torch
>>> m = create_restorer("dncnn", in_chans=1, depth=5, width=8)
>>> m(torch.rand(2, 1, 12, 10)).shape
torch.Size([2, 1, 12, 10])
>>> sr = create_restorer("espcn", in_chans=3, scale=2, width=8)
>>> sr(torch.rand(1, 3, 7, 9)).shape
torch.Size([1, 3, 14, 18])
>>> build_restorer(m.pixlearn_spec.to_dict()).pixlearn_spec == m.pixlearn_spec
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.names import check_name

__all__ = [
    "DnCNN",
    "UNetRestorer",
    "ESPCN",
    "EDSR",
    "RestorerSpec",
    "RESTORER_FORMAT",
    "build_restorer",
    "create_restorer",
    "list_restorers",
    "check_restorer_name",
    "register_restorer",
]

#: The ``format`` tag of a restorer's spec.
RESTORER_FORMAT = "pixlearn.restorer/1"


def _check_chans(in_chans: int) -> int:
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans not in (1, 3):
        raise ConfigError(f"in_chans must be 1 (grey) or 3 (colour), got {in_chans!r}")
    return in_chans


def _check_positive(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_input(x: torch.Tensor, chans: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != chans:
        raise ShapeError(f"{name} expects (N, {chans}, H, W) images, got shape {tuple(x.shape)}")


# ---------------------------------------------------------------- denoisers
class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017): a plain conv-BN-ReLU stack that predicts the noise, subtracted from the input.

    Parameters
    ----------
    in_chans : {1, 3}
    depth : int, default 17
        Convolution layers (the first without BN, the last without BN and ReLU); >= 2.
    width : int, default 64
        Feature channels.
    bn : bool, default True
        Batch normalisation in the middle layers.
    down : {1, 2, 3, 4}, default 1
        Pixel-unshuffle factor (FFDNet's trick, Zhang et al. 2018): the stack runs on
        ``down**2 * in_chans`` channels at ``1/down`` of the resolution and the predicted noise is
        shuffled back, so a layer costs ``1/down**2`` as much per pixel and the receptive field is
        ``down`` times wider. Inputs of any size are reflect-padded to a multiple of ``down``.

    The output is ``x - noise(x)``: the residual learning of the paper. Its receptive field
    reaches ``depth * down`` pixels each side (``self.halo``).

    Examples
    --------
    >>> m = DnCNN(1, depth=4, width=8).eval()
    >>> m(torch.zeros(1, 1, 9, 9)).shape, m.halo
    (torch.Size([1, 1, 9, 9]), 4)
    """

    def __init__(self, in_chans: int = 1, *, depth: int = 17, width: int = 64, bn: bool = True, down: int = 1) -> None:
        super().__init__()
        self.in_chans = _check_chans(in_chans)
        depth = _check_positive(depth, "depth", 2)
        width = _check_positive(width, "width")
        if isinstance(down, bool) or not isinstance(down, int) or not 1 <= down <= 4:
            raise ConfigError(f"down (the pixel-unshuffle factor) must be 1, 2, 3 or 4, got {down!r}")
        self.down = down
        chans = in_chans * down * down
        layers: list[nn.Module] = [nn.Conv2d(chans, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=not bn)]
            if bn:
                layers.append(nn.BatchNorm2d(width, eps=1e-4, momentum=0.05))
            layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.tail = nn.Conv2d(width, chans, 3, padding=1)
        self.halo = depth * down
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():  # start near the identity: predict almost no noise
            self.tail.weight.mul_(0.1)

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted noise (what :meth:`forward` subtracts)."""
        r = self.down
        if r == 1:
            return self.tail(self.body(x))
        h, w = x.shape[-2:]
        ph, pw = (-h) % r, (-w) % r
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        n = F.pixel_shuffle(self.tail(self.body(F.pixel_unshuffle(x, r))), r)
        return n[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_chans, "DnCNN")
        return x - self.noise(x)


def _double_conv(cin: int, cout: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(a, b, 3, padding=1, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetRestorer(nn.Module):
    """A small U-Net that predicts a residual added to its input (denoising, deblurring, enhancement).

    Parameters
    ----------
    in_chans : {1, 3}
    width : int, default 32
        Channels of the first level, doubled at every level down.
    levels : int, default 3
        Down-sampling steps (2x2 max-pooling); inputs of any size are reflect-padded to a
        multiple of ``2**levels`` and cropped back.
    bn : bool, default True

    Examples
    --------
    >>> m = UNetRestorer(3, width=4, levels=2).eval()
    >>> m(torch.zeros(1, 3, 13, 10)).shape
    torch.Size([1, 3, 13, 10])
    """

    def __init__(self, in_chans: int = 3, *, width: int = 32, levels: int = 3, bn: bool = True) -> None:
        super().__init__()
        self.in_chans = _check_chans(in_chans)
        base = _check_positive(width, "width")
        self.levels = _check_positive(levels, "levels")
        widths = [base * 2**i for i in range(self.levels + 1)]
        self.down = nn.ModuleList([_double_conv(in_chans, widths[0], bn)])
        self.down.extend(_double_conv(widths[i], widths[i + 1], bn) for i in range(self.levels))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(self.levels)))
        self.merge = nn.ModuleList(_double_conv(2 * widths[i], widths[i], bn) for i in reversed(range(self.levels)))
        self.tail = nn.Conv2d(widths[0], in_chans, 1)
        # two 3x3 convs per level on each side, at that level's scale, plus the bottom level
        self.halo = sum(2 * 2**i for i in range(self.levels)) * 2 + 2 * 2**self.levels
        with torch.no_grad():
            self.tail.weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_chans, "UNetRestorer")
        h, w = x.shape[-2:]
        m = 2**self.levels
        ph, pw = (-h) % m, (-w) % m
        y = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate") if ph or pw else x
        skips = []
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            y = merge(torch.cat([up(y), skips.pop()], dim=1))
        return x + self.tail(y)[..., :h, :w]


# ---------------------------------------------------------------- upsamplers
class ESPCN(nn.Module):
    """ESPCN (Shi et al. 2016): convolutions at low resolution, then a sub-pixel (pixel shuffle) upsampling.

    Parameters
    ----------
    in_chans : {1, 3}
    scale : int, default 2
    width : int, default 64
        Channels of the first layer (the second has half).
    residual : bool, default True
        Add the bicubic upsampling of the input, so the network learns only the missing detail
        (trains much faster; the original ESPCN has no such skip).

    Examples
    --------
    >>> ESPCN(1, scale=3, width=8)(torch.zeros(1, 1, 5, 4)).shape
    torch.Size([1, 1, 15, 12])
    """

    def __init__(self, in_chans: int = 1, *, scale: int = 2, width: int = 64, residual: bool = True) -> None:
        super().__init__()
        self.in_chans = _check_chans(in_chans)
        self.scale = _check_positive(scale, "scale", 2)
        width = _check_positive(width, "width", 2)
        self.residual = bool(residual)
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, width, 5, padding=2), nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1), nn.Tanh(),
        )
        self.tail = nn.Conv2d(width // 2, in_chans * scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.halo = 4
        if self.residual:  # start as plain bicubic upsampling
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_chans, "ESPCN")
        out = self.shuffle(self.tail(self.body(x)))
        if self.residual:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


class _ResBlock(nn.Module):
    def __init__(self, width: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1))
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class EDSR(nn.Module):
    """A small EDSR (Lim et al. 2017): residual blocks without batch norm, then pixel-shuffle upsampling.

    Parameters
    ----------
    in_chans : {1, 3}
    scale : {2, 3, 4}
    width : int, default 64
    blocks : int, default 8
        Residual blocks (EDSR-baseline has 16).
    res_scale : float, default 1.0
        Scale of each block's residual (0.1 for very wide models).
    residual : bool, default True
        Add the bicubic upsampling of the input (the network learns the missing detail).

    Examples
    --------
    >>> EDSR(3, scale=4, width=8, blocks=2)(torch.zeros(1, 3, 6, 5)).shape
    torch.Size([1, 3, 24, 20])
    """

    def __init__(
        self, in_chans: int = 3, *, scale: int = 2, width: int = 64, blocks: int = 8, res_scale: float = 1.0, residual: bool = True,
    ) -> None:
        super().__init__()
        self.in_chans = _check_chans(in_chans)
        if scale not in (2, 3, 4) or isinstance(scale, bool):
            raise ConfigError(f"EDSR upsamples by 2, 3 or 4, got scale={scale!r}")
        self.scale = int(scale)
        width = _check_positive(width, "width")
        blocks = _check_positive(blocks, "blocks", 0)
        self.residual = bool(residual)
        self.head = nn.Conv2d(in_chans, width, 3, padding=1)
        self.body = nn.Sequential(*[_ResBlock(width, res_scale) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))
        ups: list[nn.Module] = []
        for s in ([2, 2] if scale == 4 else [scale]):
            ups += [nn.Conv2d(width, width * s * s, 3, padding=1), nn.PixelShuffle(s)]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, in_chans, 3, padding=1)
        self.halo = 2 * blocks + 3
        if self.residual:  # start as plain bicubic upsampling
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_chans, "EDSR")
        f = self.head(x)
        out = self.tail(self.upsample(f + self.body(f)))
        if self.residual:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class RestorerSpec:
    """Everything that rebuilds a restorer's architecture (weights live in a ``.safetensors`` file).

    Attributes
    ----------
    name : str
        Registered name (:func:`list_restorers`).
    in_chans : {1, 3}
    scale : int
        Output size / input size (1 for denoisers and enhancers).
    kwargs : dict
        Constructor options (``depth``, ``width``, ...), as resolved.
    head : tuple of str
        Module names of the output layer (the training engine's "head" parameter group).
    """

    name: str
    in_chans: int
    scale: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    head: tuple[str, ...] = ("tail",)
    first_conv: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RESTORER_FORMAT, "name": self.name, "source": "pixlearn", "in_chans": self.in_chans,
            "scale": self.scale, "kwargs": dict(self.kwargs), "head": list(self.head),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RestorerSpec:
        if data.get("format", RESTORER_FORMAT) != RESTORER_FORMAT:
            raise ConfigError(f"not a restorer spec: format {data.get('format')!r}, expected {RESTORER_FORMAT!r}")
        try:
            return cls(
                name=str(data["name"]), in_chans=int(data["in_chans"]), scale=int(data.get("scale", 1)),
                kwargs=dict(data.get("kwargs") or {}), head=tuple(data.get("head") or ("tail",)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"restorer spec is incomplete or invalid ({exc}); it needs name, in_chans and scale") from None


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    upsampler: bool
    defaults: dict[str, Any]
    doc: str


_RESTORERS: dict[str, _Entry] = {}


def register_restorer(name: str, *, upsampler: bool, defaults: Mapping[str, Any]) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(in_chans, *, scale, **options) -> nn.Module`` under ``name`` (lazily called).

    ``defaults`` lists every option the builder takes with its default; unknown options are
    rejected with the valid ones.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _RESTORERS:
            raise ConfigError(f"restorer name {name!r} is already registered")
        _RESTORERS[name] = _Entry(fn, upsampler, dict(defaults), (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return deco


@register_restorer("dncnn", upsampler=False, defaults={"depth": 17, "width": 64, "bn": True, "down": 1})
def _dncnn(in_chans: int, *, scale: int, **kw: Any) -> nn.Module:
    """DnCNN residual denoiser (predicts the noise); depth x width configurable."""
    return DnCNN(in_chans, **kw)


@register_restorer("unet", upsampler=False, defaults={"width": 32, "levels": 3, "bn": True})
def _unet(in_chans: int, *, scale: int, **kw: Any) -> nn.Module:
    """Small U-Net restorer predicting a residual (denoise, deblur, enhance)."""
    return UNetRestorer(in_chans, **kw)


@register_restorer("espcn", upsampler=True, defaults={"width": 64, "residual": True})
def _espcn(in_chans: int, *, scale: int, **kw: Any) -> nn.Module:
    """ESPCN sub-pixel upsampler (x2, x3, x4)."""
    return ESPCN(in_chans, scale=scale, **kw)


@register_restorer("edsr", upsampler=True, defaults={"width": 64, "blocks": 8, "res_scale": 1.0, "residual": True})
def _edsr(in_chans: int, *, scale: int, **kw: Any) -> nn.Module:
    """Small EDSR upsampler: residual blocks + pixel shuffle (x2, x3, x4)."""
    return EDSR(in_chans, scale=scale, **kw)


def list_restorers() -> dict[str, str]:
    """Registered restorer names with a one-line description (and whether they upsample).

    Examples
    --------
    >>> sorted(list_restorers())
    ['dncnn', 'edsr', 'espcn', 'unet']
    """
    return {n: e.doc for n, e in _RESTORERS.items()}


def check_restorer_name(name: str) -> str:
    """``name`` if it is a registered restorer, else :class:`~pixlearn.UnknownNameError` with the closest name.

    Examples
    --------
    >>> check_restorer_name("dncn")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown restoration model 'dncn'; did you mean 'dncnn'? Valid: 'dncnn', 'edsr', 'espcn', 'unet'
    """
    return check_name(name, _RESTORERS, what="restoration model")


def is_upsampler(name: str) -> bool:
    """Whether the restorer ``name`` makes its output ``scale`` times larger (super-resolution)."""
    return _RESTORERS[check_restorer_name(name)].upsampler


def create_restorer(name: str, *, in_chans: int = 1, scale: int = 1, **options: Any) -> nn.Module:
    """Build a restoration model by name.

    Parameters
    ----------
    name : {"dncnn", "unet", "espcn", "edsr"}
    in_chans : {1, 3}, default 1
        1 for grey images, 3 for colour.
    scale : int, default 1
        Upsampling factor: 2, 3 or 4 for ``espcn`` / ``edsr``; 1 for ``dncnn`` / ``unet``.
    **options
        The model's own options (``depth``, ``width``, ``bn``, ``levels``, ``blocks``,
        ``res_scale``, ``residual``); None keeps the default.

    Returns
    -------
    torch.nn.Module
        Maps (N, in_chans, H, W) floats in [0, 1] to (N, in_chans, scale*H, scale*W); carries
        ``pixlearn_spec`` (:class:`RestorerSpec`) and ``halo`` (context in input pixels each side).

    Raises
    ------
    UnknownNameError
        Unknown ``name`` or option (with the closest valid one).
    ConfigError
        A scale the model cannot produce, or an invalid option value.

    Examples
    --------
    >>> m = create_restorer("edsr", in_chans=1, scale=2, width=8, blocks=1)
    >>> m.pixlearn_spec.scale, m.pixlearn_spec.kwargs["blocks"]
    (2, 1)
    """
    name = check_restorer_name(name)
    entry = _RESTORERS[name]
    _check_chans(in_chans)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    if entry.upsampler and scale < 2:
        raise ConfigError(f"{name} is a super-resolution model: give scale=2, 3 or 4 (got {scale})")
    if not entry.upsampler and scale != 1:
        raise ConfigError(
            f"{name} keeps the image size (scale=1), got scale={scale}; use espcn or edsr for super-resolution, or "
            "feed it a bicubic-upscaled image"
        )
    kw = dict(entry.defaults)
    for key, value in options.items():
        check_name(key, entry.defaults, what=f"option of {name}")
        if value is not None:
            kw[key] = value
    model = entry.builder(in_chans, scale=scale, **kw)
    model.pixlearn_spec = RestorerSpec(name, in_chans, scale, kw)
    return model


def build_restorer(spec: RestorerSpec | Mapping[str, Any]) -> nn.Module:
    """Rebuild a restorer's architecture (fresh weights) from its :class:`RestorerSpec` or its dict."""
    if not isinstance(spec, RestorerSpec):
        spec = RestorerSpec.from_dict(spec)
    model = create_restorer(spec.name, in_chans=spec.in_chans, scale=spec.scale, **spec.kwargs)
    model.pixlearn_spec = spec
    return model
