"""5-point landmarks, aligned face crops and 128-d embeddings (dlib's ResNet, CC0 weights).

Faces come from :func:`pixlearn.ops.faces.detect_faces`. The landmarks are dlib's 5-point model (the outer and inner
corner of each eye and the bottom of the nose); the aligned crop is ``dlib.get_face_chip`` (eyes level, the face
scaled to the crop); the embedding is ``dlib_face_recognition_resnet_model_v1`` on that crop, a vector whose
Euclidean distance to another face's is below about 0.6 for the same person (dlib's documented threshold: 99.38 %
on LFW).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops.faces import FaceBox, detect_faces, face_model, model_lock

__all__ = ["FaceEmbedding", "EMBEDDING_DIM", "EMBEDDING_MODEL", "landmarks", "align", "embed", "distances", "as_rgb"]

#: Length of an embedding.
EMBEDDING_DIM = 128
#: The embedding model's name, recorded in galleries (vectors of another model are not comparable).
EMBEDDING_MODEL = "dlib_face_recognition_resnet_model_v1"
#: Most faces embedded per image (a crowd photo stops here; the rest are left out).
MAX_FACES = 256


@dataclass(frozen=True)
class FaceEmbedding:
    """One face: where it is, its 5 landmarks and its 128-d embedding.

    Attributes
    ----------
    box : tuple of 4 int
        ``(x0, y0, x1, y1)`` pixels, ``x1``/``y1`` exclusive.
    score : float
        The detector's score (see :class:`~pixlearn.ops.faces.FaceBox`).
    landmarks : ndarray of shape (5, 2), float32
        ``(x, y)`` of the 5 points, in the image's pixels.
    vector : ndarray of shape (128,), float32
        The embedding (not normalised: its length is about 1.5).
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray
    vector: np.ndarray

    def to_dict(self, *, vector: bool = False) -> dict[str, Any]:
        """JSON-able: box, score, landmarks (and the vector when asked)."""
        out: dict[str, Any] = {"box": list(self.box), "score": round(float(self.score), 4),
                               "landmarks": np.round(self.landmarks, 2).tolist()}
        if vector:
            out["vector"] = [float(v) for v in self.vector]
        return out


def as_rgb(image: Any, *, name: str = "image") -> np.ndarray:
    """A contiguous uint8 RGB copy-or-view of a grey or RGB uint8 array (dlib's embedding network needs 3 channels)."""
    img = check_image(image, name=name, channels=(1, 3))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img)


def _rects(faces: Sequence[Any], shape: tuple[int, ...]) -> list[Any]:
    import dlib

    if isinstance(faces, FaceBox) or (isinstance(faces, tuple) and len(faces) == 4 and not isinstance(faces[0], (tuple, FaceBox))):
        faces = [faces]
    if len(faces) > MAX_FACES:
        raise ConfigError(f"faces: {len(faces)} faces, at most {MAX_FACES} per image")
    h, w = shape[:2]
    rects = []
    for i, face in enumerate(faces):
        box = face.box if isinstance(face, FaceBox) else face
        try:
            x0, y0, x1, y1 = (int(v) for v in box)
        except (TypeError, ValueError):
            raise ShapeError(f"faces[{i}] must be a FaceBox or an (x0, y0, x1, y1) box, got {face!r}") from None
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            raise ShapeError(f"faces[{i}]: box {tuple(box)} holds no pixel of this {h}x{w} image")
        rects.append(dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return rects


def _shapes(img: np.ndarray, faces: Sequence[Any]) -> list[Any]:
    rects = _rects(faces, img.shape)
    predictor = face_model("landmarks5")
    with model_lock("landmarks5"):
        return [predictor(img, r) for r in rects]


def _points(shape: Any) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32).reshape(-1, 2)


def landmarks(image: np.ndarray, faces: Sequence[FaceBox]) -> list[np.ndarray]:
    """The 5 landmarks of each face: outer and inner corner of the right eye, then of the left eye, then the bottom of the nose.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    faces : list of FaceBox (or of ``(x0, y0, x1, y1)`` boxes)
        From :func:`~pixlearn.ops.faces.detect_faces`.

    Returns
    -------
    list of ndarray of shape (5, 2), float32
        ``(x, y)`` pixels, one array per face, in the order of ``faces``.

    Examples
    --------
    >>> from skimage import data
    >>> from pixlearn.ops.faces import detect_faces
    >>> img = data.astronaut()
    >>> pts = landmarks(img, detect_faces(img, upsample=0))
    >>> len(pts), pts[0].shape, pts[0].dtype
    (1, (5, 2), dtype('float32'))
    """
    img = np.ascontiguousarray(check_image(image, name="image", channels=(1, 3)))
    return [_points(s) for s in _shapes(img, faces)]


def _check_align(size: Any, padding: Any) -> tuple[int, float]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= int(size) <= 1024:
        raise ConfigError(f"size must be an integer in [16, 1024] pixels, got {size!r}; e.g. size=150 (the default)")
    try:
        padding = float(padding)
    except (TypeError, ValueError):
        padding = float("nan")
    if not 0.0 <= padding <= 2.0:
        raise ConfigError(f"padding must be a number in [0, 2], got {padding!r}; e.g. padding=0.25 (the default)")
    return int(size), padding


def align(image: np.ndarray, faces: Sequence[FaceBox], *, size: int = 150, padding: float = 0.25) -> list[np.ndarray]:
    """Aligned crops of each face (``dlib.get_face_chip``): eyes level, the face scaled to ``size`` x ``size``.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    faces : list of FaceBox (or of ``(x0, y0, x1, y1)`` boxes)
    size : int, default 150
        Crop side in pixels, 16..1024 (150 is what the embedding network takes).
    padding : float, default 0.25
        Room around the face, as a fraction of its size, 0..2.

    Returns
    -------
    list of ndarray of shape (size, size, 3), uint8
        One RGB crop per face (grey images are expanded to RGB).

    Examples
    --------
    >>> from skimage import data
    >>> from pixlearn.ops.faces import detect_faces
    >>> img = data.astronaut()
    >>> crops = align(img, detect_faces(img, upsample=0), size=100)
    >>> crops[0].shape, crops[0].dtype
    ((100, 100, 3), dtype('uint8'))
    """
    import dlib

    size, padding = _check_align(size, padding)
    img = as_rgb(image)
    return [np.asarray(dlib.get_face_chip(img, s, size=size, padding=padding), np.uint8) for s in _shapes(img, faces)]


def _check_jitter(jitter: Any) -> int:
    if isinstance(jitter, bool) or not isinstance(jitter, (int, np.integer)) or not 0 <= int(jitter) <= 100:
        raise ConfigError(f"jitter must be an integer in [0, 100] (re-sampled crops averaged; each costs one more "
                          f"network pass), got {jitter!r}; e.g. jitter=0 (the default)")
    return int(jitter)


def embed(image: np.ndarray, faces: Sequence[FaceBox] | None = None, *, detector: str = "hog", upsample: int = 1,
          jitter: int = 0) -> list[FaceEmbedding]:
    """The 128-d embedding of every face in ``image`` (or of the given ``faces``).

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
    faces : list of FaceBox, optional
        The faces to embed; default: every face :func:`~pixlearn.ops.faces.detect_faces` finds with ``detector`` and
        ``upsample``.
    detector : {"hog", "cnn"}, default "hog"
    upsample : int, default 1
        0..3 (see :func:`~pixlearn.ops.faces.detect_faces`).
    jitter : int, default 0
        0..100: average the embeddings of this many randomly shifted, zoomed and mirrored crops (dlib's
        ``num_jitters``; a little steadier, ``jitter`` times slower). 0 and 1 are one plain pass.

    Returns
    -------
    list of FaceEmbedding
        In the order of ``faces`` (highest detection score first when detected here).

    Examples
    --------
    >>> from skimage import data
    >>> faces = embed(data.astronaut(), upsample=0)
    >>> len(faces), faces[0].vector.shape, faces[0].vector.dtype
    (1, (128,), dtype('float32'))
    """
    jitter = _check_jitter(jitter)
    img = as_rgb(image)
    if faces is None:
        faces = detect_faces(img, detector=detector, upsample=upsample)
    faces = [faces] if isinstance(faces, FaceBox) else list(faces)
    if not faces:
        return []
    shapes = _shapes(img, faces)
    import dlib

    full = dlib.full_object_detections()
    for s in shapes:
        full.append(s)
    model = face_model("embedding")
    with model_lock("embedding"):
        vectors = model.compute_face_descriptor(img, full, jitter)
    out = []
    for face, shape, vec in zip(faces, shapes, vectors):
        box = face.box if isinstance(face, FaceBox) else tuple(int(v) for v in face)
        score = face.score if isinstance(face, FaceBox) else float("nan")
        out.append(FaceEmbedding(box=box, score=float(score), landmarks=_points(shape),  # type: ignore[arg-type]
                                 vector=np.asarray(vec, np.float32).reshape(EMBEDDING_DIM)))
    return out


def distances(query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Euclidean distances from one vector (128,) or several (k, 128) to every row of ``matrix`` (n, 128).

    >>> distances(np.zeros(2), np.array([[3.0, 4.0], [0.0, 1.0]])).tolist()
    [5.0, 1.0]
    """
    q = np.asarray(query, np.float64)
    m = np.asarray(matrix, np.float64)
    if q.ndim == 1:
        return np.sqrt(((m - q) ** 2).sum(axis=1))
    return np.sqrt(np.maximum((q ** 2).sum(1)[:, None] + (m ** 2).sum(1)[None, :] - 2 * q @ m.T, 0.0))
