"""How a predicted mask is shown and written: the class colours, the tinted overlay and the file coding.

numpy only (no torch), so that the torch segmenter (:mod:`pixlearn.tasks.segment.predict`) and the onnxruntime one
(:mod:`pixlearn.export.runtime`) draw and write the same files from one piece of code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError

__all__ = ["PALETTE", "class_fractions", "overlay_mask", "mask_palette", "mask_file_array", "mask_targets", "write_mask_files"]

#: Overlay colours of classes 1, 2, ... (class 0, the background, is left untinted).
PALETTE = np.array(
    [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48), (145, 30, 180), (70, 240, 240),
     (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)],
    np.uint8,
)


def overlay_mask(image: np.ndarray, mask: np.ndarray, *, alpha: float = 0.45, outline: bool = True, ignore_index: int | None = 255) -> np.ndarray:
    """Tint each class of a mask in a fixed colour (class ``k`` always gets ``PALETTE[k - 1]``) over an image.

    Class 0 (background) and ``ignore_index`` stay untinted; outlines mark the class borders in
    the class colour. Colours do not depend on which classes an image contains, so overlays of a
    prediction and of its truth compare side by side.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    mask : ndarray of shape (H, W), integer class ids
    alpha : float, default 0.45
        Opacity of the tint in [0, 1].

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Examples
    --------
    >>> img = np.full((2, 3, 3), 100, np.uint8)
    >>> out = overlay_mask(img, np.array([[0, 1, 2], [0, 1, 2]]), alpha=1.0, outline=False)
    >>> out[0].tolist()
    [[100, 100, 100], [230, 25, 75], [60, 180, 75]]
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ShapeError(f"image must be uint8 (H, W) or (H, W, 3), got {img.dtype} {img.shape}")
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    m = np.asarray(mask)
    if m.shape != rgb.shape[:2]:
        raise ShapeError(f"mask must have the image's shape {rgb.shape[:2]}, got {m.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    m = m.astype(np.int64)
    tinted = (m > 0) & ((m != ignore_index) if ignore_index is not None else True)
    colours = PALETTE[(np.clip(m, 1, None) - 1) % len(PALETTE)]
    out = rgb.astype(np.float32)
    out[tinted] = (1 - alpha) * out[tinted] + alpha * colours[tinted]
    if outline:
        edge = np.zeros(m.shape, bool)
        edge[:-1] |= m[:-1] != m[1:]
        edge[1:] |= m[1:] != m[:-1]
        edge[:, :-1] |= m[:, :-1] != m[:, 1:]
        edge[:, 1:] |= m[:, 1:] != m[:, :-1]
        edge &= tinted
        out[edge] = colours[edge]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mask_palette() -> np.ndarray:
    """The (256, 3) colours of a predicted palette mask: 0 black, class ``k`` the overlay colour ``PALETTE[k - 1]``, 255 (ignore) white."""
    pal = np.zeros((256, 3), np.uint8)
    pal[1:255] = PALETTE[np.arange(254) % len(PALETTE)]
    pal[255] = 255
    return pal


def mask_file_array(mask: np.ndarray, coding: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A class-id mask as written to a file: ``(values, palette)`` for :func:`~pixlearn.io.write_image`.

    ``"binary255"`` (the training masks were 0/255): values 0/255 in a grey PNG; ``"index"``: the
    class ids themselves in a palette PNG, so a viewer shows colours rather than a black image.

    Examples
    --------
    >>> m = np.array([[0, 1]], np.uint8)
    >>> v, pal = mask_file_array(m, "binary255"); v.tolist(), pal is None
    ([[0, 255]], True)
    >>> v, pal = mask_file_array(m, "index"); v.tolist(), pal[1].tolist()
    ([[0, 1]], [230, 25, 75])
    """
    from pixlearn.data.masks import MaskCoding

    if coding not in ("binary255", "index"):
        raise ConfigError(f"unknown mask coding {coding!r} in the run's model.json; expected 'binary255' or 'index'")
    if coding == "binary255":
        return MaskCoding("binary255").to_stored(mask), None
    return np.asarray(mask, np.uint8), mask_palette()


def write_mask_files(mask_path: Path, image: np.ndarray, mask: np.ndarray, coding: str, *, overlay: bool) -> tuple[str, str | None]:
    """Write ``mask`` to ``mask_path`` in the run's ``coding`` (:func:`mask_file_array`) and, with ``overlay``, the
    tinted picture beside it as ``<stem>_overlay.png``; returns the two paths written (the second None without ``overlay``)."""
    from pixlearn.io import write_image

    stored, palette = mask_file_array(mask, coding)
    written = str(write_image(mask_path, stored, palette=palette))
    if not overlay:
        return written, None
    return written, str(write_image(mask_path.with_name(mask_path.stem + "_overlay.png"), overlay_mask(image, mask)))


def mask_targets(paths: list[Path], out: Path | None) -> list[Path | None]:
    """The mask file of each input under ``out``: ``out`` itself when it names a ``.png`` (one image), else
    ``out/<stem>.png``, with ``<stem>-2.png``... for inputs that share a name, named in input order (an unreadable
    input keeps its name, so the others' names do not depend on which files decode); None everywhere without ``out``.

    Raises
    ------
    ConfigError
        ``out`` names one ``.png`` file but there are several inputs.

    Examples
    --------
    >>> [str(t) for t in mask_targets([Path("a/x.jpg"), Path("b/x.jpg"), Path("y.png")], Path("masks"))]
    ['masks/x.png', 'masks/x-2.png', 'masks/y.png']
    """
    from pixlearn.io import unique_stem

    if out is None:
        return [None] * len(paths)
    if out.suffix.lower() == ".png":
        if len(paths) > 1:
            raise ConfigError(f"--out {out} names one file but there are {len(paths)} images; give a folder")
        return [out] * len(paths)
    used: set[str] = set()
    return [out / f"{unique_stem(Path(p).stem, used)}.png" for p in paths]


def class_fractions(mask: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict[str, float]:
    """The share of the mask's pixels in each class present, rounded to 6 places (a prediction row's ``classes``).

    Examples
    --------
    >>> class_fractions(np.array([[0, 1, 1, 1]]), ["bg", "cell", "nucleus"])
    {'bg': 0.25, 'cell': 0.75}
    """
    counts = np.bincount(np.asarray(mask).ravel(), minlength=len(classes))
    return {str(classes[k]): round(float(counts[k]) / mask.size, 6) for k in range(len(classes)) if counts[k]}
