"""Reading the text of one image: :func:`read_text` (and :func:`check_read_options`, the bounds of its options)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name
from pixlearn.tasks.ocr.lines import TextLine, order_quad, reading_order

__all__ = ["read_text", "read_text_oriented", "check_read_options", "ROTATIONS", "MAX_SIDE_RANGE", "DEFAULT_MAX_SIDE"]

Rotation = Literal["auto", "none", "any"]

#: ``rotation`` choices: ``auto`` turns lines that read upside down (the 180° direction classifier), ``none`` reads
#: the image as it is, ``any`` reads the whole image at 0°, 90°, 180° and 270° and keeps the most confident reading.
ROTATIONS = ("auto", "none", "any")
#: The bounds of ``max_side``: a longer image side is scaled down to it before detection.
MAX_SIDE_RANGE = (64, 4096)
#: rapidocr's own default for the longest side.
DEFAULT_MAX_SIDE = 2000
# below this many pixels on its short side (once scaled to max_side) an image holds no readable text
_MIN_SHORT_SIDE = 16
# PP-OCR detection scales the short side up to 736 px, and rapidocr pads only wide images (to 4:1 at most): a tall
# sliver (20 x 2000 px) would become a 736 x 70,000 px input. Taller images than this get black columns on the right.
_MAX_TALL = 4


def check_read_options(min_confidence: float = 0.5, rotation: str = "auto", max_side: int = DEFAULT_MAX_SIDE) -> tuple[float, str, int]:
    """``(min_confidence, rotation, max_side)`` checked: a finite confidence in [0, 1], a known rotation (with a
    did-you-mean), an integer max_side in [64, 4096].

    >>> check_read_options(0.3, "any", 1000)
    (0.3, 'any', 1000)
    >>> check_read_options(1.5)
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: min_confidence must be a number in [0, 1], got 1.5
    """
    try:
        conf = float(min_confidence)
    except (TypeError, ValueError):
        raise ConfigError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}") from None
    if isinstance(min_confidence, bool) or not math.isfinite(conf) or not 0.0 <= conf <= 1.0:
        raise ConfigError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}")
    if not isinstance(rotation, str):
        raise ConfigError(f"rotation must be one of {', '.join(ROTATIONS)}, got {rotation!r}")
    rotation = check_name(rotation, ROTATIONS, what="rotation")
    lo, hi = MAX_SIDE_RANGE
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or not lo <= int(max_side) <= hi:
        raise ConfigError(f"max_side must be an integer in [{lo}, {hi}], got {max_side!r}")
    return conf, rotation, int(max_side)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    img = check_image(image, name="image", channels=(1, 3))
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    return np.ascontiguousarray(img[..., ::-1])  # rapidocr takes 3-channel arrays as BGR (OpenCV's order)


def _unrotate(points: np.ndarray, k: int, width: int, height: int) -> np.ndarray:
    """Points of ``np.rot90(image, k)`` back in ``image``'s coordinates (``width`` x ``height`` pixels)."""
    x, y = points[:, 0], points[:, 1]
    if k == 1:
        return np.stack([width - y, x], axis=1)
    if k == 2:
        return np.stack([width - x, height - y], axis=1)
    if k == 3:
        return np.stack([y, height - x], axis=1)
    return points


def _read_once(engine, bgr: np.ndarray, *, min_confidence: float, use_cls: bool, max_side: int) -> list[TextLine]:
    h, w = bgr.shape[:2]
    if max(h, w) > max_side and min(h, w) * max_side / max(h, w) < _MIN_SHORT_SIDE:
        return []  # a sliver: scaled to max_side it is too thin to hold text (and rapidocr cannot resize it)
    if h > _MAX_TALL * w:  # as rapidocr's own letterbox does for wide images; boxes keep their coordinates
        bgr = np.pad(bgr, ((0, 0), (0, -(-h // _MAX_TALL) - w), (0, 0)))
    pieces = []
    for points, text, conf in engine.detect_and_read(bgr, use_cls=use_cls, max_side=max_side):
        text = text.strip()
        if text and conf >= min_confidence:
            points = np.clip(points, 0, [w, h])
            pieces.append((order_quad(points), text, conf))
    return reading_order(pieces)


def _score(lines: list[TextLine]) -> float:
    """How much confident, upright text a reading holds: confidence x characters over the pieces that lie flat (wider
    than tall, or one character); rapidocr reads a standing crop turned by 90°, so standing text counts for nothing."""
    total = 0.0
    for t in lines:
        x0, y0, x1, y1 = t.box
        if x1 - x0 >= y1 - y0 or len(t.text) == 1:
            total += t.confidence * len(t.text)
    return float(total)


def read_text_oriented(
    image: np.ndarray,
    *,
    min_confidence: float = 0.5,
    rotation: Rotation = "auto",
    max_side: int = DEFAULT_MAX_SIDE,
    engine=None,
) -> tuple[list[TextLine], int]:
    """:func:`read_text`, and the angle (0, 90, 180 or 270) by which the text stands turned clockwise in the image:
    the image was turned that far counter-clockwise to read it (always 0 unless ``rotation="any"``)."""
    min_confidence, rotation, max_side = check_read_options(min_confidence, rotation, max_side)
    bgr = _to_bgr(image)
    if engine is None:
        from pixlearn.tasks.ocr.engine import get_engine

        engine = get_engine()
    use_cls = rotation != "none"
    if rotation != "any":
        return _read_once(engine, bgr, min_confidence=min_confidence, use_cls=use_cls, max_side=max_side), 0
    h, w = bgr.shape[:2]
    best: tuple[float, int, list[TextLine]] | None = None
    # np.rot90 turns counter-clockwise: k quarter turns read text that was turned k * 90° clockwise. The tries run
    # without the direction classifier, so that upside-down text reads badly and loses to the upright reading.
    for k in range(4):
        turned = np.ascontiguousarray(np.rot90(bgr, k)) if k else bgr
        lines = _read_once(engine, turned, min_confidence=min_confidence, use_cls=False, max_side=max_side)
        score = _score(lines)
        if best is None or score > best[0]:
            best = (score, k, lines)
    assert best is not None
    _, k, lines = best
    if k:
        lines = [replace(t, quad=order_quad(_unrotate(np.asarray(t.quad, np.float64), k, w, h))) for t in lines]
    return lines, 90 * k


def read_text(
    image: np.ndarray,
    *,
    min_confidence: float = 0.5,
    rotation: Rotation = "auto",
    max_side: int = DEFAULT_MAX_SIDE,
    engine=None,
) -> list[TextLine]:
    """Read the text in an image: each piece's quadrilateral, string and confidence, in reading order.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        An RGB (or grey) image, e.g. from :func:`pixlearn.read_image` (which applies EXIF orientation).
    min_confidence : float, default 0.5
        Pieces the recogniser is less sure of are dropped, in [0, 1].
    rotation : {"auto", "none", "any"}, default "auto"
        ``"auto"``: lines that read upside down are turned by the 180° direction classifier; ``"none"``: the image is
        read as it is (faster); ``"any"``: the whole image is read turned by 0°, 90°, 180° and 270° (four times the
        work, without the per-line classifier) and the turn whose reading holds the most confident upright text is
        kept (ties go to the smaller turn); quadrilaterals stay in the input's pixels.
    max_side : int, default 2000
        A longer image side is scaled down to this before detection, in [64, 4096]; boxes are in the input's pixels.
    engine : OcrEngine, optional
        The models (:func:`~pixlearn.tasks.ocr.engine.get_engine` for your own PP-OCR ONNX files); default: the
        bundled PP-OCRv4 models (Chinese and English), loaded once per process.

    Returns
    -------
    list of TextLine
        Lines top to bottom, pieces left to right within a line (pieces whose vertical centres overlap share a
        ``line``); each ``quad`` is 4 int (x, y) corners clockwise from the top-left.

    Raises
    ------
    ShapeError
        ``image`` is not an (H, W) or (H, W, 3) uint8 array.
    ConfigError
        An option is out of its range, or an unknown ``rotation`` (with the closest valid name).
    OcrError
        The models failed on this image (:class:`~pixlearn.tasks.ocr.engine.OcrError`).

    Examples
    --------
    >>> import numpy as np
    >>> read_text(np.full((64, 64, 3), 255, np.uint8))
    []
    >>> read_text(np.zeros((8, 8), np.float32))
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ShapeError: image must have dtype uint8, got float32; convert explicitly, e.g. to_uint8(image, clip=True)
    """
    return read_text_oriented(image, min_confidence=min_confidence, rotation=rotation, max_side=max_side,
                              engine=engine)[0]
