"""Sliding-window (overlap-tile) inference: apply a network to an image of any size, tile by tile.

:func:`tiled_apply` cuts an N x C x H x W tensor into overlapping tiles, runs a function on batches
of tiles and blends the overlapping outputs with a smooth weight window, so that seams from the
network's own border effects fade out. The function may change the number of channels (logits,
a restored image) but must keep each tile's height and width.

Edges: an image smaller than a tile, or whose size the network cannot take (``multiple``), is
padded by reflection on its bottom and right and the output cropped back; tiles never leave the
(padded) image. The window ramps over the overlap only and stays flat where a tile touches the
image border, so every output pixel has a positive total weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.tta import tta_average, tta_views

__all__ = ["tiled_apply", "tile_starts", "pad_reflect", "blend_window", "with_tta"]


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an int or an (height, width) pair, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or an (height, width) pair, got {value!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return h, w


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared pixels.

    The last tile ends exactly at ``length`` (it may overlap its neighbour by more).

    Examples
    --------
    >>> tile_starts(100, 40, 10)
    [0, 30, 60]
    >>> tile_starts(40, 40, 10), tile_starts(41, 40, 10)
    ([0], [0, 1])
    """
    if tile >= length:
        return [0]
    stride = max(tile - overlap, 1)
    n = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(n)]
    return sorted(set(starts))


def pad_reflect(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Pad an (N, C, H, W) tensor on its bottom and right by reflection, any amount.

    ``F.pad(mode="reflect")`` cannot pad more than the size minus one; this repeats it as often as
    needed (and falls back to replicating a single row or column).

    Examples
    --------
    >>> x = torch.arange(3.0).reshape(1, 1, 1, 3)
    >>> pad_reflect(x, 0, 5)[0, 0, 0].tolist()
    [0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0]
    """
    if bottom < 0 or right < 0:
        raise ConfigError(f"padding must be >= 0, got bottom={bottom}, right={right}")
    while bottom > 0 or right > 0:
        h, w = x.shape[-2:]
        b, r = min(bottom, h - 1), min(right, w - 1)
        if (bottom and b <= 0) or (right and r <= 0):  # a single row or column: nothing to reflect
            x = F.pad(x, (0, right if r <= 0 else 0, 0, bottom if b <= 0 else 0), mode="replicate")
            bottom, right = (0 if b <= 0 else bottom), (0 if r <= 0 else right)
            continue
        x = F.pad(x, (0, r, 0, b), mode="reflect")
        bottom, right = bottom - b, right - r
    return x


def _ramp(n: int, kind: str) -> torch.Tensor:
    """``n`` strictly positive weights rising towards 1 (excluded)."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    if kind == "hann":
        return torch.sin(0.5 * math.pi * t) ** 2
    return t


def blend_window(
    size: tuple[int, int],
    overlap: tuple[int, int],
    *,
    edges: tuple[bool, bool, bool, bool] = (False, False, False, False),
    kind: Literal["hann", "linear", "none"] = "hann",
) -> torch.Tensor:
    """The (H, W) weight window of one tile: ramps over ``overlap`` pixels, flat 1 inside.

    ``edges`` = (top, bottom, left, right) marks sides on the image border: no ramp there.
    The Hann ramp (``sin^2``) and its mirror sum to one, so two tiles overlapping by exactly
    ``overlap`` blend into a partition of unity.

    Examples
    --------
    >>> w = blend_window((6, 6), (2, 2), kind="linear")
    >>> [round(v, 2) for v in w[2].tolist()]
    [0.25, 0.75, 1.0, 1.0, 0.75, 0.25]
    >>> float(blend_window((6, 6), (2, 2), edges=(True, True, True, True)).min())
    1.0
    """
    th, tw = size
    oh, ow = overlap

    def axis(n: int, o: int, first: bool, last: bool) -> torch.Tensor:
        w = torch.ones(n, dtype=torch.float64)
        o = min(o, n // 2)
        if kind == "none" or o <= 0:
            return w
        r = _ramp(o, kind)
        if not first:
            w[:o] = r
        if not last:
            w[n - o:] = r.flip(0)
        return w

    top, bottom, left, right = edges
    return (axis(th, oh, top, bottom)[:, None] * axis(tw, ow, left, right)[None, :]).to(torch.float32)


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    tile: int | tuple[int, int],
    overlap: int | float = 0.25,
    batch: int = 4,
    multiple: int = 1,
    window: Literal["hann", "linear", "none"] = "hann",
    scale: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` to ``x`` tile by tile and blend the overlapping outputs.

    Parameters
    ----------
    fn : callable
        Maps a float (B, C, th, tw) batch of tiles to (B, K, th, tw) outputs (e.g. a segmentation
        network's logits, a restorer's image). It runs under the caller's grad mode.
    x : Tensor of shape (N, C, H, W)
        Any H and W; the output has the same.
    tile : int or (height, width)
        Tile size (the network's training size, say). An image smaller than a tile is processed in
        one piece, padded up to a multiple of ``multiple``.
    overlap : int or float, default 0.25
        Pixels shared by neighbouring tiles (an int), or a fraction of the tile in [0, 1) (a float).
        Larger overlaps hide seams better and cost more tiles.
    batch : int, default 4
        Tiles per call of ``fn``.
    multiple : int, default 1
        The network needs heights and widths divisible by this (32 for a U-Net of depth 5); tiles
        are shrunk to it and small images padded up to it.
    window : {"hann", "linear", "none"}, default "hann"
        Blend weights over the overlaps; "none" averages them.
    scale : int, default 1
        ``fn`` makes each tile this many times larger (super-resolution): a (th, tw) tile gives a
        (scale*th, scale*tw) output, blended at the output resolution.

    Returns
    -------
    Tensor of shape (N, K, scale*H, scale*W), float32 on ``x``'s device

    Raises
    ------
    ShapeError
        ``x`` is not 4-D, or ``fn`` changed a tile's size.
    ConfigError
        Bad tile, overlap, batch or multiple.

    Examples
    --------
    >>> net = torch.nn.Conv2d(3, 2, 1)  # any fully convolutional function
    >>> x = torch.rand(1, 3, 70, 90)
    >>> with torch.no_grad():
    ...     y = tiled_apply(net, x, tile=32, overlap=8)
    ...     bool(torch.allclose(y, net(x), atol=1e-5))
    True
    >>> tuple(y.shape)
    (1, 2, 70, 90)
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ShapeError(f"tiled_apply needs an (N, C, H, W) tensor, got {type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    th, tw = _pair(tile, "tile")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"multiple must be a positive integer, got {multiple!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    if window not in ("hann", "linear", "none"):
        raise ConfigError(f"window must be hann, linear or none, got {window!r}")
    if th % multiple or tw % multiple:
        raise ConfigError(f"tile {th}x{tw} must be a multiple of {multiple} (what the network needs); use {_round_up(th, multiple)}")
    n, _, h, w = x.shape
    if h == 0 or w == 0 or n == 0:
        raise ShapeError(f"tiled_apply got an empty tensor of shape {tuple(x.shape)}")
    # a tile never exceeds the (padded) image
    th, tw = min(th, _round_up(h, multiple)), min(tw, _round_up(w, multiple))
    ph, pw = max(th, _round_up(h, multiple)), max(tw, _round_up(w, multiple))
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)):
        raise ConfigError(f"overlap must be pixels (int) or a fraction of the tile (float in [0, 1)), got {overlap!r}")
    if isinstance(overlap, float):
        if not 0.0 <= overlap < 1.0:
            raise ConfigError(f"overlap as a fraction must be in [0, 1), got {overlap}")
        oh, ow = int(round(overlap * th)), int(round(overlap * tw))
    else:
        if overlap < 0:
            raise ConfigError(f"overlap must be >= 0 pixels, got {overlap}")
        oh, ow = min(overlap, th - 1), min(overlap, tw - 1)
    xp = pad_reflect(x, ph - h, pw - w)
    ys, xs = tile_starts(ph, th, oh), tile_starts(pw, tw, ow)
    positions = [(b, y, x0) for b in range(n) for y in ys for x0 in xs]
    windows: dict[tuple[bool, bool, bool, bool], torch.Tensor] = {}
    out: torch.Tensor | None = None
    s = scale
    weight = torch.zeros((1, 1, ph * s, pw * s), dtype=torch.float32, device=x.device)
    for i in range(0, len(positions), batch):
        chunk = positions[i:i + batch]
        tiles = torch.stack([xp[b, :, y:y + th, x0:x0 + tw] for b, y, x0 in chunk])
        pred = fn(tiles)
        if not isinstance(pred, torch.Tensor) or pred.ndim != 4 or pred.shape[0] != len(chunk) or tuple(pred.shape[-2:]) != (th * s, tw * s):
            raise ShapeError(
                f"the tiled function must return (B, K, {th * s}, {tw * s}) for a (B, C, {th}, {tw}) batch (scale {s}), got "
                f"{tuple(getattr(pred, 'shape', ()))}; it has to keep each tile's height and width (times scale)"
            )
        pred = pred.float()
        if out is None:
            out = torch.zeros((n, pred.shape[1], ph * s, pw * s), dtype=torch.float32, device=x.device)
        for k, (b, y, x0) in enumerate(chunk):
            edges = (y == 0, y + th == ph, x0 == 0, x0 + tw == pw)
            win = windows.get(edges)
            if win is None:
                win = windows[edges] = blend_window((th * s, tw * s), (oh * s, ow * s), edges=edges, kind=window).to(x.device)
            out[b, :, y * s:(y + th) * s, x0 * s:(x0 + tw) * s] += pred[k] * win
            if b == 0:  # the weight sum is the same for every image of the batch
                weight[0, 0, y * s:(y + th) * s, x0 * s:(x0 + tw) * s] += win
    assert out is not None
    return (out / weight)[:, :, :h * s, :w * s]


def with_tta(fn: Callable[[torch.Tensor], torch.Tensor], mode: str = "flip") -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` averaged over mirrored (and transposed) copies of its input, each mapped back.

    Test-time augmentation for dense outputs (segmentation logits, a restored image), the way
    nnU-Net mirrors its inputs at inference: ``"transpose"`` averages 2 passes (as is, and rows and
    columns exchanged), ``"flip"`` 4 (as is, left-right, up-down, both), ``"d4"`` 8 (the same on the
    transposed input too), ``"none"`` returns ``fn``. ``fn`` must be fully convolutional in the sense
    of :func:`tiled_apply` and, for ``"transpose"`` and ``"d4"``, accept a (B, C, W, H) input as well
    as (B, C, H, W). The views are :func:`pixlearn._core.tta.tta_views`.

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x = torch.rand(1, 1, 8, 12)
    >>> with torch.no_grad():
    ...     same = with_tta(net, "flip")(x).shape == net(x).shape
    ...     sym = torch.allclose(with_tta(net, "d4")(x.flip(3)), with_tta(net, "d4")(x).flip(3), atol=1e-6)
    >>> same, sym
    (True, True)
    """
    if len(tta_views(mode)) == 1:
        return fn

    def averaged(x: torch.Tensor) -> torch.Tensor:
        return tta_average(fn, x, mode, flip=lambda a, axes: a.flip([2 + i for i in axes]), swap=lambda a: a.transpose(2, 3))

    return averaged
