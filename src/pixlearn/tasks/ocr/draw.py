"""Text lines drawn over their image: each quadrilateral outlined and its string written above it.

Strings are written with a DejaVu Sans font when one is installed (it covers Latin, Greek and Cyrillic; CJK
characters show as boxes), else with Pillow's built-in font; the text size follows each piece's height.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ShapeError
from pixlearn.tasks.ocr.lines import TextLine

__all__ = ["draw_text_lines", "find_font"]

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu",
              "/Library/Fonts", "C:/Windows/Fonts")
_BOX = (230, 25, 75)
_INK = (255, 255, 255)


def find_font() -> Path | None:
    """The DejaVu Sans font file when one is installed in a usual place, else None.

    >>> p = find_font(); p is None or p.name == "DejaVuSans.ttf"
    True
    """
    for folder in _FONT_DIRS:
        p = Path(folder) / "DejaVuSans.ttf"
        if p.is_file():
            return p
    return None


@lru_cache(maxsize=32)
def _font(size: int) -> Any:
    from PIL import ImageFont

    path = find_font()
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1: one size only
        return ImageFont.load_default()


def draw_text_lines(image: np.ndarray, lines: Sequence[TextLine], *, labels: bool = True) -> np.ndarray:
    """Outline every :class:`TextLine` quadrilateral over a copy of ``image`` and write its string above it.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        The image the text was read from (grey is drawn in colour).
    lines : sequence of TextLine
        Pieces in that image's pixels (from :func:`~pixlearn.tasks.ocr.read.read_text`).
    labels : bool, default True
        Write each piece's string on a filled tag above its quadrilateral (inside it at the top edge).

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new image; the input is untouched.

    Examples
    --------
    >>> line = TextLine(((2, 2), (20, 2), (20, 10), (2, 10)), "hi", 0.9, 0)
    >>> out = draw_text_lines(np.zeros((16, 24, 3), np.uint8), [line], labels=False)
    >>> out[2, 10].tolist(), out[6, 10].tolist()
    ([230, 25, 75], [0, 0, 0])
    """
    from PIL import Image, ImageDraw

    img = check_image(image, name="image", channels=(1, 3))
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    canvas = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 400))
    for t in lines:
        if not isinstance(t, TextLine):
            raise ShapeError(f"lines must hold TextLine items, got {type(t).__name__}")
        draw.polygon([tuple(p) for p in t.quad], outline=_BOX, width=width)
    if labels:
        for t in lines:
            x0, y0, x1, y1 = t.box
            size = int(min(max(10, (y1 - y0) * 0.6), 64))
            font = _font(size)
            left, top, right, bottom = draw.textbbox((0, 0), t.text, font=font)
            tw, th = right - left, bottom - top
            ty = y0 - th - 4 if y0 - th - 4 >= 0 else y0
            draw.rectangle((x0, ty, x0 + tw + 4, ty + th + 4), fill=_BOX)
            draw.text((x0 + 2 - left, ty + 2 - top), t.text, font=font, fill=_INK)
    return np.asarray(canvas)
