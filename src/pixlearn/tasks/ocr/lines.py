"""Text lines found in an image and their reading order.

:class:`TextLine` is one recognised piece of text: its quadrilateral in the image's pixels, the string, the
recognition confidence and the index of the visual line it sits on. :func:`reading_order` sorts pieces the way a
person reads a page of a left-to-right script: lines top to bottom, pieces left to right within a line, where a line
is a group of pieces whose vertical centres overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TextLine", "order_quad", "reading_order"]

Quad = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class TextLine:
    """One piece of recognised text.

    Attributes
    ----------
    quad : tuple of 4 (x, y) int pairs
        The corners in the image's pixels (x to the right, y down), clockwise from the top-left corner.
    text : str
        The recognised string.
    confidence : float
        The recogniser's confidence, in [0, 1] (the mean probability of its characters).
    line : int
        The visual line it belongs to, 0 for the top line; pieces on one line share it.
    """

    quad: Quad
    text: str
    confidence: float
    line: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The axis-aligned box ``(x0, y0, x1, y1)`` around :attr:`quad`.

        >>> TextLine(((1, 2), (9, 2), (9, 6), (1, 6)), "hi", 0.9, 0).box
        (1, 2, 9, 6)
        """
        xs = [p[0] for p in self.quad]
        ys = [p[1] for p in self.quad]
        return min(xs), min(ys), max(xs), max(ys)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``text``, ``confidence``, ``line``, ``quad`` (a list of [x, y]) and ``box``.

        >>> TextLine(((1, 2), (9, 2), (9, 6), (1, 6)), "hi", 0.91234, 0).to_dict()["quad"]
        [[1, 2], [9, 2], [9, 6], [1, 6]]
        """
        return {"text": self.text, "confidence": round(float(self.confidence), 4), "line": int(self.line),
                "quad": [list(p) for p in self.quad], "box": list(self.box)}


def order_quad(points: object) -> Quad:
    """Four corners as int (x, y) pairs, clockwise (in image coordinates, y down) from the top-left one.

    The top-left corner is the one with the smallest ``x + y`` (the leftmost on a tie of a 45° box).

    >>> order_quad([[10, 0], [10, 5], [0, 5], [0, 0]])
    ((0, 0), (10, 0), (10, 5), (0, 5))
    """
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])  # y down: increasing angle is clockwise
    pts = pts[np.argsort(angles, kind="stable")]
    start = int(np.lexsort((pts[:, 0], pts[:, 0] + pts[:, 1]))[0])
    pts = np.roll(pts, -start, axis=0)
    return tuple((int(round(x)), int(round(y))) for x, y in pts)  # type: ignore[return-value]


def reading_order(pieces: Sequence[tuple[Quad, str, float]]) -> list[TextLine]:
    """Sort ``(quad, text, confidence)`` pieces into reading order and number their lines.

    Pieces are taken by the vertical centre of their box, top first; a piece joins the current line when its centre
    lies within the line's vertical band (the mean top and bottom of its pieces) or the band's centre lies within the
    piece. Within a line pieces go left to right.

    Examples
    --------
    >>> q = lambda x, y: ((x, y), (x + 30, y), (x + 30, y + 10), (x, y + 10))
    >>> [(t.text, t.line) for t in reading_order([(q(50, 21), "d", 1.0), (q(0, 0), "a", 1.0), (q(52, 2), "b", 1.0),
    ...                                           (q(0, 20), "c", 1.0)])]
    [('a', 0), ('b', 0), ('c', 1), ('d', 1)]
    """
    items = []
    for quad, text, conf in pieces:
        ys = [p[1] for p in quad]
        xs = [p[0] for p in quad]
        top, bottom = float(min(ys)), float(max(ys))
        items.append(((top + bottom) / 2.0, top, bottom, float(min(xs)), quad, text, conf))
    items.sort(key=lambda it: (it[0], it[3]))
    lines: list[list[tuple]] = []
    band = (0.0, 0.0)
    for it in items:
        cy, top, bottom = it[0], it[1], it[2]
        if lines:
            band_centre = (band[0] + band[1]) / 2.0
            if band[0] <= cy <= band[1] or top <= band_centre <= bottom:
                lines[-1].append(it)
                n = len(lines[-1])
                band = (band[0] + (top - band[0]) / n, band[1] + (bottom - band[1]) / n)
                continue
        lines.append([it])
        band = (top, bottom)
    out = []
    for index, members in enumerate(lines):
        for it in sorted(members, key=lambda m: m[3]):
            out.append(TextLine(quad=it[4], text=it[5], confidence=float(it[6]), line=index))
    return out
