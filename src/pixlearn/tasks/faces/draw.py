"""Faces drawn over their image: a box per face with its name (or score) above it, sized to the image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ShapeError

__all__ = ["draw_faces", "KNOWN_COLOR", "UNKNOWN_COLOR"]

#: Box colour of a named face and of an unknown (or unnamed) one, RGB.
KNOWN_COLOR = (60, 180, 75)
UNKNOWN_COLOR = (230, 25, 75)


def draw_faces(image: np.ndarray, faces: Sequence[Mapping[str, Any] | Any]) -> np.ndarray:
    """Draw each face's box and tag (``name distance`` when named, else ``score``) over a copy of ``image``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    faces : sequence of dict or FaceBox
        Each with ``box`` (x0, y0, x1, y1) and optionally ``name``, ``distance``, ``score``.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new image; named faces in green, unknown ones in red.

    Examples
    --------
    >>> out = draw_faces(np.zeros((40, 40, 3), np.uint8), [{"box": [5, 5, 30, 30], "name": "unknown"}])
    >>> out[5, 15].tolist(), out[20, 20].tolist()
    ([230, 25, 75], [0, 0, 0])
    """
    import cv2

    img = check_image(image, name="image", channels=(1, 3))
    out = np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    scale = max(0.35, max(h, w) / 1200)
    for face in faces:
        f = face if isinstance(face, Mapping) else {"box": getattr(face, "box", None), "score": getattr(face, "score", None)}
        try:
            x0, y0, x1, y1 = (int(v) for v in f["box"])
        except (TypeError, ValueError, KeyError):
            raise ShapeError(f"each face needs a box (x0, y0, x1, y1), got {face!r}") from None
        name = f.get("name")
        color = UNKNOWN_COLOR if name in (None, "unknown") else KNOWN_COLOR
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), color, thick)
        if name is not None:
            tag = name if f.get("distance") is None else f"{name} {float(f['distance']):.2f}"
        elif f.get("score") is not None:
            tag = f"face {float(f['score']):.2f}"
        else:
            continue
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else min(y0 + th + base + 2, h - 1)
        cv2.rectangle(out, (x0, ty - th - base), (min(x0 + tw, w - 1), ty), color, -1)
        cv2.putText(out, tag, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out
