"""Detections drawn over their image: a box per object in its class colour, a "class score" tag, masks tinted.

Line width and text size follow the image's size, so tags stay readable on a 64-px thumbnail and on a 4000-px
photo; a tag sits above its box, or inside it when the box touches the top edge. Class ``k`` always gets the same
colour (:data:`COLORS`), so a prediction and its truth drawn side by side compare at a glance.
"""

from __future__ import annotations

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.detect.detections import Detections

__all__ = ["COLORS", "class_color", "draw_detections"]

#: Box colours (RGB), class ``k`` gets ``COLORS[k % len(COLORS)]``.
COLORS = np.array(
    [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48), (145, 30, 180), (70, 240, 240),
     (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40), (128, 0, 0), (128, 128, 0),
     (0, 0, 128), (255, 215, 180), (170, 255, 195), (128, 128, 128)],
    np.uint8,
)


def class_color(label: int) -> tuple[int, int, int]:
    """The RGB colour of class ``label``.

    >>> class_color(0), class_color(len(COLORS))
    ((230, 25, 75), (230, 25, 75))
    """
    r, g, b = COLORS[int(label) % len(COLORS)]
    return int(r), int(g), int(b)


def draw_detections(image: np.ndarray, detections: Detections, *, min_score: float = 0.0, labels: bool = True,
                    alpha: float = 0.4) -> np.ndarray:
    """Draw boxes, ``"class 0.93"`` tags and tinted masks over a copy of ``image``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        The image the detections were made on (grey is drawn in colour).
    detections : Detections
        Boxes in that image's pixels; masks, when present, must be (N, H, W).
    min_score : float, default 0
        Draw only detections scoring at least this, in [0, 1].
    labels : bool, default True
        Write the class name and score beside each box.
    alpha : float, default 0.4
        Opacity of the mask tint, in [0, 1].

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        A new image; the input is untouched.

    Examples
    --------
    >>> d = Detections(np.array([[2, 2, 12, 12]]), np.array([0.9]), np.array([0]), ("cat",))
    >>> out = draw_detections(np.zeros((16, 16, 3), np.uint8), d, labels=False)
    >>> out[2, 5].tolist(), out[7, 7].tolist()
    ([230, 25, 75], [0, 0, 0])
    """
    import cv2

    img = check_image(image, name="image", channels=(1, 3))
    out = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img.copy(order="C")
    out = np.ascontiguousarray(out)
    if not isinstance(detections, Detections):
        raise ShapeError(f"detections must be a Detections, got {type(detections).__name__}")
    if not 0.0 <= float(min_score) <= 1.0:
        raise ConfigError(f"min_score must be in [0, 1], got {min_score}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    h, w = out.shape[:2]
    det = detections.filter(min_score=float(min_score))
    if det.masks is not None and len(det) and det.masks.shape[1:] != (h, w):
        raise ShapeError(f"masks must have the image's size {(h, w)}, got {det.masks.shape[1:]}; "
                         "draw detections on the image they were made on")
    side = min(h, w)
    thick = max(1, round(side / 320))
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = float(np.clip(side / 900, 0.3, 1.6))
    text_thick = max(1, round(scale * 1.5))
    order = np.arange(len(det))[::-1]  # weakest first, so the strongest is drawn on top
    if det.masks is not None and alpha > 0:
        tinted = out.astype(np.float32)
        for i in order:
            m = det.masks[i]
            tinted[m] = (1 - alpha) * tinted[m] + alpha * np.array(class_color(det.labels[i]), np.float32)
        out = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    for i in order:
        color = class_color(det.labels[i])
        x0, y0, x1, y1 = (int(round(float(v))) for v in det.boxes[i])
        x0, x1 = int(np.clip(x0, 0, w - 1)), int(np.clip(x1, 0, w - 1))
        y0, y1 = int(np.clip(y0, 0, h - 1)), int(np.clip(y1, 0, h - 1))
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thick, cv2.LINE_AA if thick > 1 else cv2.LINE_8)
        if not labels:
            continue
        text = f"{det.class_names[int(det.labels[i])]} {float(det.scores[i]):.2f}"
        (tw, th), base = cv2.getTextSize(text, font, scale, text_thick)
        pad = max(1, thick)
        top = y0 - th - base - 2 * pad
        if top < 0:  # no room above: the tag goes inside the box, under its top edge
            top = y0
        left = int(np.clip(x0, 0, max(0, w - tw - 2 * pad)))
        bottom = min(h - 1, top + th + base + 2 * pad)
        cv2.rectangle(out, (left, top), (left + tw + 2 * pad, bottom), color, -1)
        ink = (0, 0, 0) if (0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]) > 150 else (255, 255, 255)
        cv2.putText(out, text, (left + pad, top + pad + th), font, scale, ink, text_thick, cv2.LINE_AA)
    return out
