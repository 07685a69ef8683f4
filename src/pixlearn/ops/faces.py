"""Face detection with dlib (HOG or the MMOD CNN) and the ``blur_faces`` op that anonymises them.

The models are the CC0 files of the ``face_recognition_models`` package (found on disk, never imported: its
``__init__`` needs ``pkg_resources``). Each model is loaded once per process (:func:`face_model`, thread-safe),
and calls into one model are serialised by its own lock (dlib's networks keep per-call state), so one loaded
model serves every thread of a service. Importing this module loads neither dlib nor a model.

:func:`detect_faces` gives :class:`FaceBox` es (``box`` = ``(x0, y0, x1, y1)`` pixel edges, ``x1``/``y1``
exclusive, clipped to the image), which :mod:`pixlearn.tasks.faces` turns into landmarks, aligned crops and
embeddings.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from pixlearn._core.checks import check_image
from pixlearn._core.errors import ConfigError, WeightsNotFoundError
from pixlearn._core.names import check_name
from pixlearn.ops._registry import Range, register_op

__all__ = ["FaceBox", "DETECTORS", "MODEL_FILES", "MAX_SCAN_PIXELS", "models_dir", "face_model", "model_lock",
           "detect_faces", "blur_faces", "check_detect_options"]

#: The detectors :func:`detect_faces` offers.
DETECTORS = ("hog", "cnn")

#: The model files used (all CC0, from ``face_recognition_models``); the 68-point landmark model is never used.
MODEL_FILES = {
    "cnn": "mmod_human_face_detector.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}

#: The most pixels a detector scans: the image's pixels times 4 per upsampling step. Past it the detection is
#: refused before any work (a 90 MP photo upsampled 3 times is 5.8 billion pixels of memory and minutes of CPU).
MAX_SCAN_PIXELS = {"hog": 40_000_000, "cnn": 16_000_000}

_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}
_CALL_LOCKS: dict[str, threading.Lock] = {name: threading.Lock() for name in ("hog", *MODEL_FILES)}


@dataclass(frozen=True)
class FaceBox:
    """One detected face.

    Attributes
    ----------
    box : tuple of 4 int
        ``(x0, y0, x1, y1)`` in the image's pixels, ``x1`` and ``y1`` exclusive, clipped to the image.
    score : float
        The detector's confidence: the HOG SVM margin (about -0.5..3; 0 is its default threshold) or the CNN's
        MMOD confidence.
    detector : str
        ``"hog"`` or ``"cnn"``.
    """

    box: tuple[int, int, int, int]
    score: float
    detector: str

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict[str, Any]:
        """``{"box": [x0, y0, x1, y1], "score": s, "detector": d}`` (JSON-able)."""
        return {"box": list(self.box), "score": round(float(self.score), 4), "detector": self.detector}


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise ConfigError("faces need dlib, which is not installed; install it with pip install dlib-bin") from None
    return dlib


def models_dir() -> Path:
    """The folder of the ``face_recognition_models`` files (located without importing the package).

    Raises
    ------
    WeightsNotFoundError
        The package is not installed, or its ``models`` folder is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or not (Path(locations[0]) / "models").is_dir():
        raise WeightsNotFoundError(
            "the face models (face_recognition_models, CC0) are not installed; install them with "
            "pip install face_recognition_models")
    return Path(locations[0]) / "models"


def face_model(kind: str) -> Any:
    """The dlib model ``kind`` (``"hog"``, ``"cnn"``, ``"landmarks5"``, ``"embedding"``), loaded once per process.

    Thread-safe: concurrent first calls load the file once. Use :func:`model_lock` around calls into it.

    Raises
    ------
    UnknownNameError
        ``kind`` is not one of those names.
    WeightsNotFoundError
        The model file is missing (the message names it and the fix).
    """
    check_name(kind, ("hog", *MODEL_FILES), what="face model")
    model = _MODELS.get(kind)
    if model is not None:
        return model
    with _LOCK:
        model = _MODELS.get(kind)
        if model is None:
            dlib = _dlib()
            if kind == "hog":
                model = dlib.get_frontal_face_detector()
            else:
                path = models_dir() / MODEL_FILES[kind]
                if not path.is_file():
                    raise WeightsNotFoundError(f"face model file {path} is missing; reinstall it with "
                                               "pip install --force-reinstall face_recognition_models")
                loader = {"cnn": dlib.cnn_face_detection_model_v1, "landmarks5": dlib.shape_predictor,
                          "embedding": dlib.face_recognition_model_v1}[kind]
                model = loader(str(path))
            _MODELS[kind] = model
    return model


def model_lock(kind: str) -> threading.Lock:
    """The lock that serialises calls into model ``kind`` (dlib's networks are not re-entrant)."""
    return _CALL_LOCKS[check_name(kind, _CALL_LOCKS, what="face model")]


def check_detect_options(detector: str, upsample: Any, shape: tuple[int, ...] | None = None) -> tuple[str, int]:
    """Check ``detector`` (``"hog"`` | ``"cnn"``) and ``upsample`` (int in 0..3) and, given the image ``shape``,
    that the upsampled image stays within :data:`MAX_SCAN_PIXELS`; returns them clean.

    >>> check_detect_options("hog", 2, (100, 100))
    ('hog', 2)
    >>> check_detect_options("cnn", 3, (2000, 1000))
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: upsample=3 with the cnn detector scans 2000x1000 x 64 = 128,000,000 pixels, over the limit of 16,000,000; use upsample=1, the hog detector or a smaller image
    """
    detector = check_name(str(detector), DETECTORS, what="face detector")
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or not 0 <= int(upsample) <= 3:
        raise ConfigError(f"upsample must be an integer in [0, 3], got {upsample!r}; use e.g. upsample=1 (the default)")
    upsample = int(upsample)
    if shape is not None and len(shape) >= 2:
        h, w = int(shape[0]), int(shape[1])
        scanned = h * w * 4 ** upsample
        limit = MAX_SCAN_PIXELS[detector]
        if scanned > limit:
            fits = [u for u in range(upsample) if h * w * 4 ** u <= limit]
            fixes = ([f"upsample={fits[-1]}"] if fits else []) + (["the hog detector"] if detector == "cnn" else [])
            fixes.append("a smaller image")
            fix = ", ".join(fixes[:-1]) + " or " + fixes[-1] if len(fixes) > 1 else fixes[0]
            raise ConfigError(f"upsample={upsample} with the {detector} detector scans {h}x{w} x {4 ** upsample} = "
                              f"{scanned:,} pixels, over the limit of {limit:,}; use {fix}")
    return detector, upsample


def _as_dlib_image(image: np.ndarray) -> np.ndarray:
    img = check_image(image, name="image", channels=(1, 3))
    return np.ascontiguousarray(img)


def detect_faces(image: np.ndarray, *, detector: str = "hog", upsample: int = 1) -> list[FaceBox]:
    """Find the faces in an image with dlib's HOG + linear SVM detector or its MMOD CNN.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        A grey or RGB image.
    detector : {"hog", "cnn"}, default "hog"
        ``"hog"``: fast, frontal faces of about 80 px and more (40 px with ``upsample=1``). ``"cnn"``: the MMOD
        CNN, finds turned and smaller faces too, about 20 times slower on a CPU.
    upsample : int, default 1
        Times the image is doubled before scanning, 0..3: each step finds faces half as large and costs about
        4 times as much. The upsampled image must stay within :data:`MAX_SCAN_PIXELS`.

    Returns
    -------
    list of FaceBox
        Highest score first; boxes clipped to the image (a box wholly outside it is dropped).

    Raises
    ------
    ShapeError
        ``image`` is not a uint8 grey or RGB array.
    ConfigError
        An unknown detector, ``upsample`` outside 0..3, or too many pixels to scan.
    WeightsNotFoundError
        dlib or the model files are missing (the message names the ``pip install``).

    Examples
    --------
    >>> from skimage import data
    >>> faces = detect_faces(data.astronaut(), upsample=0)
    >>> len(faces), faces[0].detector
    (1, 'hog')
    >>> detect_faces(np.zeros((32, 32), np.uint8))
    []
    """
    img = _as_dlib_image(image)
    detector, upsample = check_detect_options(detector, upsample, img.shape)
    h, w = img.shape[:2]
    model = face_model(detector)
    found: list[tuple[Any, float]] = []
    with model_lock(detector):
        if detector == "hog":
            rects, scores, _ = model.run(img, upsample, 0.0)
            found = [(r, float(s)) for r, s in zip(rects, scores)]
        else:
            found = [(d.rect, float(d.confidence)) for d in model(img, upsample)]
    faces = []
    for rect, score in found:
        x0, y0 = max(int(rect.left()), 0), max(int(rect.top()), 0)
        x1, y1 = min(int(rect.right()) + 1, w), min(int(rect.bottom()) + 1, h)
        if x1 > x0 and y1 > y0:
            faces.append(FaceBox((x0, y0, x1, y1), score, detector))
    faces.sort(key=lambda f: -f.score)
    return faces


def _blur_constraint(options: Mapping[str, Any], shape: tuple[int, ...] | None) -> None:
    check_detect_options(options["detector"], options["upsample"], shape)


def _gaussian_region(region: np.ndarray, sigma: float) -> np.ndarray:
    """``region`` blurred with ``sigma``; large sigmas work on a shrunk copy (the same look, bounded cost)."""
    import cv2

    h, w = region.shape[:2]
    if sigma <= 12:
        return cv2.GaussianBlur(region, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    factor = sigma / 8.0
    small = cv2.resize(region, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=8.0, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@register_op("blur_faces", category="faces", constraint=_blur_constraint)
def blur_faces(
    image: np.ndarray,
    *,
    detector: Literal["hog", "cnn"] = "hog",
    upsample: Annotated[int, Range(0, 3)] = 1,
    method: Literal["gaussian", "pixelate"] = "gaussian",
    strength: Annotated[float, Range(0, 1, low_open=True)] = 0.5,
    margin: Annotated[float, Range(0, 1)] = 0.2,
) -> np.ndarray:
    """Blur or pixelate every face found (dlib HOG or CNN), for anonymising; an image without faces comes back unchanged.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, 3), uint8
        Grey or RGB image.
    detector : {"hog", "cnn"}, default "hog"
        The face detector (see :func:`detect_faces`).
    upsample : int, default 1
        Times the image is doubled before detection, in [0, 3] (finds smaller faces, costs 4x per step).
    method : {"gaussian", "pixelate"}, default "gaussian"
        Gaussian blur, or large flat blocks.
    strength : float, default 0.5
        In (0, 1]. ``gaussian``: sigma is ``strength / 4`` of the face's longer side; ``pixelate``: the face is
        ``4 / strength`` blocks across (8 at 0.5, 4 at 1).
    margin : float, default 0.2
        Added on every side of each face box, as a fraction of its size, in [0, 1] (covers hair and chin).

    Returns
    -------
    ndarray of the same shape, uint8
        A new image; pixels outside the (widened) face boxes are untouched.

    Examples
    --------
    >>> flat = np.full((32, 32, 3), 7, np.uint8)
    >>> bool((blur_faces(flat) == flat).all())
    True
    """
    img = check_image(image, name="image", channels=(1, 3))
    if not 0 < float(strength) <= 1 or not 0 <= float(margin) <= 1:
        raise ConfigError(f"strength must be in (0, 1] and margin in [0, 1], got strength={strength}, margin={margin}")
    if method not in ("gaussian", "pixelate"):
        raise ConfigError(f"method must be 'gaussian' or 'pixelate', got {method!r}")
    out = img.copy(order="C")
    faces = detect_faces(img, detector=detector, upsample=upsample)
    if not faces:
        return out
    import cv2

    h, w = img.shape[:2]
    for face in faces:
        x0, y0, x1, y1 = face.box
        mx, my = round(margin * (x1 - x0)), round(margin * (y1 - y0))
        x0, y0, x1, y1 = max(x0 - mx, 0), max(y0 - my, 0), min(x1 + mx, w), min(y1 + my, h)
        side = max(x1 - x0, y1 - y0)
        if method == "gaussian":
            sigma = max(1.0, float(strength) * side / 4.0)
            pad = int(min(3 * sigma, 64))  # context around the box, so its edge blurs like its middle
            px0, py0, px1, py1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
            blurred = _gaussian_region(out[py0:py1, px0:px1], sigma)
            out[y0:y1, x0:x1] = blurred[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        else:
            blocks = max(1, round(4.0 / float(strength)))
            region = out[y0:y1, x0:x1]
            rh, rw = region.shape[:2]
            cell = max(1, side // blocks)
            small = cv2.resize(region, (max(1, rw // cell), max(1, rh // cell)), interpolation=cv2.INTER_AREA)
            out[y0:y1, x0:x1] = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
    return out
