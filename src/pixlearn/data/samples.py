"""Built-in sample datasets that need no network.

* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes) as an ImageFolder.
* ``skimage``: scikit-image's bundled sample photos (a plain folder of images).
* ``faces``: scikit-image's LFW subset (100 faces, 100 non-faces, 25x25 grey) as an ImageFolder.
* ``shapes``: a seeded synthetic generator of circles, squares and triangles on textured
  backgrounds, written as an ImageFolder (``task="classify"``), a COCO detection set with
  instance polygons (``task="detect"``) or images + semantic masks (``task="segment"``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name

__all__ = [
    "SAMPLES",
    "SHAPE_CLASSES",
    "SKIMAGE_PHOTOS",
    "Shape",
    "make_shapes_image",
    "write_sample",
    "write_skimage_samples",
]

#: scikit-image sample photos bundled in its wheel (no download), with the format each is written as.
SKIMAGE_PHOTOS = {
    "astronaut": "jpg",
    "coffee": "jpg",
    "chelsea": "jpg",
    "rocket": "jpg",
    "camera": "png",
    "coins": "png",
    "page": "png",
    "moon": "png",
}

SAMPLES = ("digits", "skimage", "faces", "shapes")
SHAPE_CLASSES = ("circle", "square", "triangle")


def _limit(n: int | None, total: int) -> int:
    if n is None:
        return total
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    return min(n, total)


def write_skimage_samples(out: str | os.PathLike[str], *, n: int | None = None) -> list[Path]:
    """Write scikit-image's bundled sample photos into ``out`` and return their paths.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_skimage_samples(tempfile.mkdtemp())
    >>> sorted(p.name for p in paths)[:2]
    ['astronaut.jpg', 'camera.png']
    """
    from skimage import data

    from pixlearn.io import write_image

    out = Path(out)
    names = list(SKIMAGE_PHOTOS)[: _limit(n, len(SKIMAGE_PHOTOS))]
    return [write_image(out / f"{name}.{SKIMAGE_PHOTOS[name]}", getattr(data, name)(), quality=92) for name in names]


def _write_digits(out: Path, n: int | None, seed: int) -> list[Path]:
    from sklearn.datasets import load_digits

    from pixlearn.io import write_image

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.images))[: _limit(n, len(digits.images))]
    paths = []
    for i in sorted(order):
        # sklearn stores 0..16 ink levels; scaled explicitly to 0..255 (x * 255 / 16, rounded)
        img = np.rint(digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
        paths.append(write_image(out / str(digits.target[i]) / f"digit_{i:04d}.png", img))
    return paths


def _write_faces(out: Path, n: int | None, seed: int) -> list[Path]:
    from skimage.data import lfw_subset

    from pixlearn.io import write_image

    images = lfw_subset()  # (200, 25, 25) float in [0, 1]; the first 100 are faces
    order = np.random.default_rng(seed).permutation(len(images))[: _limit(n, len(images))]
    paths = []
    for i in sorted(order):
        cls = "face" if i < 100 else "not_face"
        img = np.rint(np.clip(images[i], 0, 1) * 255).astype(np.uint8)
        paths.append(write_image(out / cls / f"{cls}_{i:03d}.png", img))
    return paths


# ---------------------------------------------------------------- synthetic shapes
@dataclass(frozen=True)
class Shape:
    """One drawn shape: its class, polygon (x, y) vertices, xyxy box and filled mask."""

    cls: str
    polygon: np.ndarray  # (K, 2) int32 x, y
    box: tuple[float, float, float, float]
    mask: np.ndarray  # (H, W) bool


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    import cv2

    coarse = rng.uniform(40, 215, size=(4, 4, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 12, size=(size, size, 3)).astype(np.float32)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def _polygon(cls: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    import cv2

    if cls == "circle":
        pts = cv2.ellipse2Poly((int(round(cx)), int(round(cy))), (int(round(r)), int(round(r))), 0, 0, 360, 6)
        return pts.astype(np.int32)
    k = 4 if cls == "square" else 3
    t = angle + np.arange(k) * 2 * np.pi / k
    pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    return np.rint(pts).astype(np.int32)


def make_shapes_image(
    rng: np.random.Generator,
    *,
    size: int = 128,
    min_shapes: int = 1,
    max_shapes: int = 3,
    classes: tuple[str, ...] = SHAPE_CLASSES,
) -> tuple[np.ndarray, list[Shape]]:
    """Draw 1..max_shapes non-overlapping shapes on a textured background.

    Returns the (size, size, 3) uint8 RGB image and the shapes with exact masks
    (each mask is the filled polygon, so polygon, box and mask agree).

    Examples
    --------
    >>> img, shapes = make_shapes_image(np.random.default_rng(0), size=64)
    >>> img.shape, all(s.mask.any() for s in shapes)
    ((64, 64, 3), True)
    """
    import cv2

    image = _background(rng, size)
    taken = np.zeros((size, size), bool)
    shapes: list[Shape] = []
    want = int(rng.integers(min_shapes, max_shapes + 1))
    for _ in range(want * 20):
        if len(shapes) == want:
            break
        cls = str(classes[int(rng.integers(len(classes)))])
        r = float(rng.uniform(size * 0.08, size * 0.2))
        cx, cy = rng.uniform(r + 2, size - r - 2, size=2)
        poly = _polygon(cls, float(cx), float(cy), r, float(rng.uniform(0, np.pi)))
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        mask = mask.astype(bool)
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if (grown & taken).any() or mask.sum() < 12:
            continue
        taken |= grown
        colour = rng.integers(0, 256, size=3)
        colour[int(rng.integers(3))] = int(rng.choice([10, 245]))  # keep shapes distinct from muted backgrounds
        image[mask] = colour.astype(np.uint8)
        ys, xs = np.nonzero(mask)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        shapes.append(Shape(cls, poly, box, mask))
    return image, shapes


def _write_shapes(out: Path, n: int, seed: int, task: str, size: int) -> list[Path]:
    from pixlearn.io import write_image

    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    if task == "classify":
        for i in range(n):
            cls = SHAPE_CLASSES[i % len(SHAPE_CLASSES)]
            image, _ = make_shapes_image(rng, size=size, min_shapes=1, max_shapes=1, classes=(cls,))
            paths.append(write_image(out / cls / f"{cls}_{i:05d}.png", image))
        return paths
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(n):
        image, shapes = make_shapes_image(rng, size=size)
        name = f"shapes_{i:05d}.png"
        paths.append(write_image(out / "images" / name, image))
        if task == "segment":
            sem = np.zeros((size, size), np.uint8)
            for s in shapes:
                sem[s.mask] = SHAPE_CLASSES.index(s.cls) + 1
            write_image(out / "masks" / name, sem)
            continue
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for s in shapes:
            x0, y0, x1, y1 = s.box
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": i + 1,
                "category_id": SHAPE_CLASSES.index(s.cls) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": float(s.mask.sum()),
                "segmentation": [s.polygon.reshape(-1).astype(float).tolist()],
                "iscrowd": 0,
            })
    if task == "segment":
        (out / "classes.txt").write_text("\n".join(("background",) + SHAPE_CLASSES) + "\n")
    else:
        coco = {
            "info": {"description": f"pixlearn synthetic shapes (seed {seed})"},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": k + 1, "name": c, "supercategory": "shape"} for k, c in enumerate(SHAPE_CLASSES)],
        }
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        (out / "annotations" / "instances.json").write_text(json.dumps(coco))
    return paths


def write_sample(
    name: str,
    out: str | os.PathLike[str],
    *,
    n: int | None = None,
    seed: int = 0,
    task: Literal["classify", "detect", "segment"] = "detect",
    size: int = 128,
) -> list[Path]:
    """Write the built-in sample ``name`` into ``out`` and return the image paths written.

    ``n`` limits (or, for ``shapes``, sets; default 200) the number of images; ``seed``
    picks which and, for ``shapes``, draws them. ``task`` and ``size`` apply to ``shapes``.

    Examples
    --------
    >>> import tempfile
    >>> len(write_sample("digits", tempfile.mkdtemp(), n=20))
    20
    """
    name = check_name(name, SAMPLES, what="sample")
    task = check_name(task, ("classify", "detect", "segment"), what="shapes task")
    out = Path(out)
    if name == "digits":
        return _write_digits(out, n, seed)
    if name == "faces":
        return _write_faces(out, n, seed)
    if name == "skimage":
        return write_skimage_samples(out, n=n)
    if size < 32:
        raise ConfigError(f"shapes size must be at least 32 pixels, got {size}")
    return _write_shapes(out, 200 if n is None else _limit(n, 10**7), seed, task, size)
