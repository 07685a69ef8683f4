"""Text rendered with the DejaVu fonts, for the OCR tests (no files from outside the test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def font(size: int = 32, name: str = "DejaVuSans.ttf"):
    """A DejaVu font, or skip the test (the strings are checked exactly only for a known, clear font)."""
    from PIL import ImageFont

    path = FONT_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} is not installed (apt-get install fonts-dejavu-core)")
    return ImageFont.truetype(str(path), size)


def render(words: list[tuple[int, int, str]], size: tuple[int, int] = (360, 80), font_size: int = 32) -> np.ndarray:
    """Black ``(x, y, text)`` words on a white ``size`` (width, height) RGB canvas."""
    from PIL import Image, ImageDraw

    f = font(font_size)
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    for x, y, text in words:
        draw.text((x, y), text, font=f, fill="black")
    return np.asarray(im)
