"""Test-time augmentation over the symmetries of the square, for any array type (torch tensors, numpy arrays).

:func:`tta_average` is written once and used by the torch segmenter (:func:`pixlearn.engine.tiling.with_tta`)
and by the onnxruntime one (:mod:`pixlearn.export.runtime`): each passes its own mirror and transpose, for
the layout of its arrays (the runtime's tiles go in as (N, H, W, 3) and come out as (N, K, H, W)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = ["TTA_MODES", "tta_views", "tta_transposes", "tta_average"]

#: The identity; it and its transpose (the image mirrored about its main diagonal); the 4 mirror images; the 8
#: symmetries of the square. The cheapest first: each view is one more pass of the network.
TTA_MODES = ("none", "transpose", "flip", "d4")


def tta_views(mode: str) -> list[tuple[tuple[int, ...], bool]]:
    """The ``(mirrored axes, transposed)`` views of ``mode``: 1, 2, 4 or 8; axis 0 is the rows, 1 the columns.

    A network trained on crops mirrored left-right and up-down (pixlearn's default segmentation augmentation)
    has learnt to answer nearly the same for the mirrored views, so ``flip`` adds little; it never saw a
    transposed crop, so ``transpose`` (2 passes) averages two genuinely different answers.

    >>> [v for v in tta_views("flip")]
    [((), False), ((1,), False), ((0,), False), ((0, 1), False)]
    >>> len(tta_views("d4")), tta_views("none"), tta_views("transpose")
    (8, [((), False)], [((), False), ((), True)])
    """
    if mode not in TTA_MODES:
        raise ConfigError(f"tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    if mode == "transpose":
        return [((), False), ((), True)]
    flips: list[tuple[int, ...]] = [()] if mode == "none" else [(), (1,), (0,), (0, 1)]
    return [(f, False) for f in flips] + ([(f, True) for f in flips] if mode == "d4" else [])


def tta_transposes(mode: str) -> bool:
    """Whether ``mode`` has a transposed view (a network of fixed input size then needs square tiles).

    >>> tta_transposes("transpose"), tta_transposes("d4"), tta_transposes("flip")
    (True, True, False)
    """
    return any(t for _, t in tta_views(mode))


def tta_average(
    fn: Callable[[Any], Any], x: Any, mode: str, *, flip: Callable[[Any, tuple[int, ...]], Any], swap: Callable[[Any], Any],
    flip_out: Callable[[Any, tuple[int, ...]], Any] | None = None, swap_out: Callable[[Any], Any] | None = None,
) -> Any:
    """The mean of ``fn`` over the views of ``x`` (mirrored, perhaps transposed), each output mapped back.

    ``flip(a, axes)`` mirrors ``a`` along its rows (0) and/or columns (1) and ``swap(a)`` exchanges rows and
    columns; ``flip_out``/``swap_out`` do the same for ``fn``'s outputs when their layout differs (default: the
    same functions). ``fn`` must keep the spatial layout (a dense output: logits, log-probabilities, an image).

    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(1, 1, 2, 3)
    >>> flip = lambda a, axes: np.flip(a, [2 + i for i in axes])
    >>> out = tta_average(lambda a: a * 2, x, "d4", flip=flip, swap=lambda a: np.swapaxes(a, 2, 3))
    >>> bool(np.array_equal(out, x * 2))
    True
    """
    flip_out, swap_out = flip_out or flip, swap_out or swap
    total: Any = None
    views = tta_views(mode)
    for axes, transpose in views:
        v = swap(x) if transpose else x
        y = fn(flip(v, axes) if axes else v)
        y = flip_out(y, axes) if axes else y
        y = swap_out(y) if transpose else y
        total = y if total is None else total + y
    return total / len(views)
