"""Feature sets for the classic classifiers: one fixed-length vector per image, read in parallel."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError
from pixlearn._core.names import check_name

__all__ = ["FEATURE_SETS", "FEATURE_PARAMS", "check_feature_set", "check_img_size", "image_features", "extract_features", "featurize_files"]

#: Feature-set names accepted by ``features=``.
FEATURE_SETS: tuple[str, ...] = ("hog", "lbp", "color_hist", "hog+color")

#: The fixed parameters each feature set uses (recorded in every run's config.yaml).
FEATURE_PARAMS: dict[str, dict[str, Any]] = {
    "hog": {"orientations": 9, "pixels_per_cell": [8, 8], "cells_per_block": [2, 2], "channels": "rgb, strongest gradient"},
    "lbp": {"points": 8, "radius": 1.0, "method": "uniform", "grid": [4, 4]},
    "color_hist": {"bins": 8, "space": "hsv"},
}

_CHUNK = 64


def check_feature_set(name: str) -> str:
    """``name`` if it is a known feature set, else :class:`~pixlearn.UnknownNameError` with a suggestion."""
    return check_name(str(name), FEATURE_SETS, what="feature set")


def check_img_size(img_size: int) -> int:
    value = int(img_size)
    if not 16 <= value <= 1024:
        raise ConfigError(f"img_size must be in [16, 1024] pixels, got {img_size}")
    return value


def _lbp_grid(gray: np.ndarray, grid: int) -> np.ndarray:
    from pixlearn.ops.features import lbp_histogram

    p = FEATURE_PARAMS["lbp"]
    h, w = gray.shape
    rows = np.linspace(0, h, grid + 1).astype(int)
    cols = np.linspace(0, w, grid + 1).astype(int)
    cells = [
        lbp_histogram(gray[rows[i] : rows[i + 1], cols[j] : cols[j + 1]], points=p["points"], radius=p["radius"], method=p["method"])
        for i in range(grid)
        for j in range(grid)
    ]
    return np.concatenate(cells)


def image_features(image: np.ndarray, *, features: str = "hog", img_size: int = 64) -> np.ndarray:
    """One image's feature vector: resize to ``img_size`` x ``img_size``, then compute ``features``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image (grey is taken as RGB with equal channels).
    features : {"hog", "lbp", "color_hist", "hog+color"}
        ``hog``: HOG over the RGB image (9 orientations, 8x8 cells, 2x2 blocks);
        ``lbp``: uniform LBP histograms (P=8, R=1) over a 4x4 grid of cells;
        ``color_hist``: joint 8x8x8 HSV histogram; ``hog+color``: both concatenated.
    img_size : int, default 64
        Side of the square every image is resized to (INTER_AREA), so vectors
        have one length whatever the input size.

    Returns
    -------
    ndarray of shape (D,), float32

    Examples
    --------
    >>> img = np.zeros((40, 30, 3), np.uint8)
    >>> [image_features(img, features=f).shape[0] for f in FEATURE_SETS]
    [1764, 160, 512, 2276]
    """
    import cv2

    from pixlearn.ops.features import color_histogram, hog

    features = check_feature_set(features)
    img_size = check_img_size(img_size)
    image = check_image(image, channels=(1, 3))
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if (h >= img_size and w >= img_size) else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(image), (img_size, img_size), interpolation=interp)
    parts: list[np.ndarray] = []
    if features in ("hog", "hog+color"):
        p = FEATURE_PARAMS["hog"]
        parts.append(
            hog(small, orientations=p["orientations"], pixels_per_cell=tuple(p["pixels_per_cell"]),
                cells_per_block=tuple(p["cells_per_block"]))
        )
    if features == "lbp":
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        parts.append(_lbp_grid(gray, FEATURE_PARAMS["lbp"]["grid"][0]))
    if features in ("color_hist", "hog+color"):
        p = FEATURE_PARAMS["color_hist"]
        parts.append(color_histogram(small, bins=p["bins"], space=p["space"]))
    return np.concatenate(parts).astype(np.float32, copy=False)


def extract_features(images: Iterable[np.ndarray], *, features: str = "hog", img_size: int = 64) -> np.ndarray:
    """Stack :func:`image_features` of in-memory images into an (N, D) float32 matrix.

    >>> extract_features([np.zeros((32, 32, 3), np.uint8)] * 2, features="color_hist").shape
    (2, 512)
    """
    rows = [image_features(img, features=features, img_size=img_size) for img in images]
    if not rows:
        raise ConfigError("no images to extract features from")
    return np.stack(rows)


def _featurize_chunk(paths: Sequence[str], features: str, img_size: int) -> list[np.ndarray | str]:
    """Read and featurize a chunk of files; a file that fails gives its error text instead."""
    from pixlearn.io import read_image

    out: list[np.ndarray | str] = []
    for path in paths:
        try:
            out.append(image_features(read_image(path, mode="RGB"), features=features, img_size=img_size))
        except Exception as exc:  # one bad file never stops a batch; the reason is reported
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def _progress(enabled: bool | None, total: int, description: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    show = console.is_terminal if enabled is None else bool(enabled)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not show, transient=True,
    )
    return progress, progress.add_task(description, total=total)


def featurize_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    features: str = "hog",
    img_size: int = 64,
    workers: int = 1,
    progress: bool | None = None,
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Read and featurize image files, in ``workers`` processes, with a progress bar on stderr.

    Parameters
    ----------
    paths : sequence of paths
        Image files.
    features, img_size
        As in :func:`image_features`.
    workers : int, default 1
        Processes to use (joblib); 1 runs in this process.
    progress : bool or None, default None
        Show a progress bar on stderr; ``None`` shows it only when stderr is a terminal.

    Returns
    -------
    X : ndarray of shape (n_ok, D), float32
        Feature rows of the files that could be read, in input order.
    ok : list of int
        Index into ``paths`` of each row of ``X``.
    errors : list of (path, message)
        Files that could not be read or featurized.
    """
    features = check_feature_set(features)
    img_size = check_img_size(img_size)
    workers = max(1, int(workers))
    names = [os.fspath(p) for p in paths]
    chunks = [names[i : i + _CHUNK] for i in range(0, len(names), _CHUNK)]
    bar, task = _progress(progress, len(names), f"{features} features")
    results: list[np.ndarray | str] = []
    with bar:
        if workers == 1 or len(chunks) <= 1:
            parts: Iterable[list[np.ndarray | str]] = (_featurize_chunk(c, features, img_size) for c in chunks)
        else:
            from joblib import Parallel, delayed

            parts = Parallel(n_jobs=workers, return_as="generator")(
                delayed(_featurize_chunk)(c, features, img_size) for c in chunks
            )
        for part in parts:
            results.extend(part)
            bar.advance(task, len(part))
    ok = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    errors = [(names[i], r) for i, r in enumerate(results) if isinstance(r, str)]
    if ok:
        X = np.stack([results[i] for i in ok])  # type: ignore[misc]
    else:
        dim = image_features(np.zeros((img_size, img_size, 3), np.uint8), features=features, img_size=img_size).shape[0]
        X = np.zeros((0, dim), np.float32)
    return X, ok, errors


def _relative(path: str | os.PathLike[str], root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return os.fspath(path)
