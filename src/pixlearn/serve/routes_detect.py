"""``POST /v1/detect``: the objects in one image, from the built-in COCO detector or a trained detection model.

The image comes the way ``/v1/analyze`` takes it: a multipart upload (field ``file`` or ``image``), JSON
(``{"image": {"b64": ...}}``, or ``{"image": {"path": ...}}`` under an allowed root) or the raw body.

Models:

- ``coco-yolox-nano`` (:data:`BUILTIN`, the default): the 80 COCO classes from the YOLOX-Nano ONNX file
  (:func:`pixlearn.tasks.detect.yolox.load_yolox`) through onnxruntime, no training needed. The file is
  ``settings.yolox_weights`` when set, else ``yolox_nano_coco80.onnx`` in a local weights folder
  (``PIXLEARN_WEIGHTS``, ``<cache>/weights``). It runs in the worker processes (killed at the request's
  deadline), each loading it once. Without the file the answer is 503 with the loader's message (the
  file and how to add it).
- a registered detection model (a ``pixlearn train detect`` run, or a detection training of
  ``/v1/trainings``): a torch network, loaded once by the registry and run in a thread, like the classifiers.

Options: ``threshold`` (0..1, default 0.25: the lowest score kept), ``max_detections`` (1..1000, default 100)
and ``tile`` (64..4096 pixels: SAHI-style tiled inference for large images with small objects, with
``overlap`` 0..0.9, default 0.2). Instance-segmentation models add each object's mask as COCO RLE
(``mask``: ``{"size": [h, w], "counts": "..."}``) and as polygons in image pixels (``polygons``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from pixlearn._core.errors import ConfigError, WeightsNotFoundError
from pixlearn.serve.deps import run_blocking, run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "BUILTIN", "YOLOX_FILE", "yolox_path", "coco_detector", "check_detect_params", "detect_image",
           "detection_rows", "builtin_unavailable", "DEFAULT_THRESHOLD", "DEFAULT_MAX_DETECTIONS"]

router = APIRouter(tags=["detect"])

#: The name of the built-in COCO detector (in /v1/detect's ``model``, and as an OIP v2 model).
BUILTIN = "coco-yolox-nano"
#: The file name of its weights in the local weights folders.
YOLOX_FILE = "yolox_nano_coco80.onnx"
DEFAULT_THRESHOLD = 0.25
DEFAULT_MAX_DETECTIONS = 100
MAX_DETECTIONS = 1000

_OPENAPI = {
    "parameters": [
        {"name": "model", "in": "query", "required": False, "schema": {"type": "string", "default": BUILTIN},
         "description": f"{BUILTIN} (the 80 COCO classes, no training) or a registered detection model."},
        {"name": "threshold", "in": "query", "required": False,
         "schema": {"type": "number", "default": DEFAULT_THRESHOLD, "minimum": 0, "maximum": 1},
         "description": "Lowest score of an object kept."},
        {"name": "max_detections", "in": "query", "required": False,
         "schema": {"type": "integer", "default": DEFAULT_MAX_DETECTIONS, "minimum": 1, "maximum": MAX_DETECTIONS}},
        {"name": "tile", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 64, "maximum": 4096},
         "description": "Tiled inference on windows of this side (pixels) and the whole image, merged: for small "
                        "objects in large images."},
        {"name": "overlap", "in": "query", "required": False,
         "schema": {"type": "number", "default": 0.2, "minimum": 0, "maximum": 0.9}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, "model": {"type": "string"},
                               "threshold": {"type": "number"}, "max_detections": {"type": "integer"},
                               "tile": {"type": "integer"}, "overlap": {"type": "number"}}}},
            "application/json": {"schema": {
                "type": "object", "required": ["image"],
                "properties": {
                    "image": {"type": "object", "properties": {"b64": {"type": "string"}, "path": {"type": "string"}}},
                    "model": {"type": "string"}, "threshold": {"type": "number"},
                    "max_detections": {"type": "integer"}, "tile": {"type": "integer"}, "overlap": {"type": "number"}}},
                "example": {"image": {"b64": "<base64 of the file>"}, "threshold": 0.3}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}


# ---------------------------------------------------------------- the built-in COCO detector
def yolox_path(settings: ServeSettings | None = None) -> Path | None:
    """The YOLOX-Nano file the service uses: ``settings.yolox_weights``, else the first ``yolox_nano_coco80.onnx`` in
    the local weights folders; None when there is none (only files are looked at: cheap)."""
    from pixlearn.tasks.registry import task

    find_yolox = task("detect").load("find_coco_detector")
    configured = getattr(settings, "yolox_weights", None) if settings is not None else None
    if configured is not None:
        path = Path(configured).expanduser()
        return path if path.is_file() else None
    return find_yolox()


_cache_lock = threading.Lock()
_detectors: dict[tuple[str, float, int | None], Any] = {}


def coco_detector(settings: ServeSettings | None = None, *, threads: int | None = None) -> Any:
    """The built-in COCO :class:`~pixlearn.tasks.detect.detections.Detector`, loaded once per process (per file).

    ``threads``: onnxruntime's intra-op threads (1 in the worker processes, which are the parallelism; None: the
    cores this process may use).

    Raises
    ------
    WeightsNotFoundError
        No YOLOX-Nano file: the message names the file and how to add it.
    """
    from pixlearn.tasks.registry import task

    load_yolox = task("detect").load("coco_detector")
    path = yolox_path(settings)
    configured = getattr(settings, "yolox_weights", None) if settings is not None else None
    if path is None:
        if configured is not None:  # the configured file is missing: the loader names it
            return load_yolox(Path(configured).expanduser(), threads=threads)
        return load_yolox(None, threads=threads)  # the loader's own search: its error names the file and the folders
    key = (str(path), path.stat().st_mtime, threads)
    with _cache_lock:
        detector = _detectors.get(key)
        if detector is None:
            detector = load_yolox(path, threads=threads)
            _detectors.clear()  # one COCO detector per process: a replaced file drops the old one
            _detectors[key] = detector
    return detector


def _hide(text: str, settings: ServeSettings | None) -> str:
    """``text`` without the server's paths: the weights folders by name, the configured detector file's folder as
    ``<yolox_weights folder>``, the storage folder as ``<storage>``."""
    from pixlearn._core.paths import cache_dir, weights_dirs
    from pixlearn.serve.security import hide_paths

    cache = cache_dir() / "weights"
    names: list[tuple[str | Path, str]] = [(d, "<cache>/weights" if d == cache else "<PIXLEARN_WEIGHTS>")
                                           for d in weights_dirs()]
    configured = getattr(settings, "yolox_weights", None)
    if configured is not None:
        names.append((Path(configured).expanduser().parent, "<yolox_weights folder>"))
    names += [(os.path.realpath(d), name) for d, name in names]
    return hide_paths(text, getattr(settings, "storage", None) or ".", extra=names)


def builtin_unavailable(exc: BaseException, settings: ServeSettings | None) -> ApiError:
    """The 503 of a missing (or unreadable) COCO detector file: the loader's message, server paths hidden."""
    fix = ("" if getattr(settings, "yolox_weights", None) is None else
           "; the server's yolox_weights setting names this file: put it there or change the setting")
    return ApiError(f"the built-in COCO detector {BUILTIN!r} is not available: {_hide(str(exc), settings)}{fix}",
                    status=503)


# ---------------------------------------------------------------- options
def _number(value: Any, *, name: str, low: float, high: float, integer: bool, default: Any) -> Any:
    if value is None or value == "":
        return default
    what = "an integer" if integer else "a number"
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        n = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(f"{name}={value!r} is not {what}; use {low:g}..{high:g}", status=400) from None
    if not np.isfinite(n) or (integer and n != int(n)):
        raise ApiError(f"{name}={value!r} is not {what}; use {low:g}..{high:g}", status=400)
    if not low <= n <= high:
        raise ApiError(f"{name}={value} is out of range; use {low:g}..{high:g}", status=400)
    return int(n) if integer else n


def check_detect_params(params: dict[str, Any]) -> dict[str, Any]:
    """``threshold``, ``max_detections``, ``tile`` and ``overlap`` checked against their ranges (400 naming the field).

    Examples
    --------
    >>> check_detect_params({"threshold": "0.5"})
    {'threshold': 0.5, 'max_detections': 100, 'tile': None, 'overlap': 0.2}
    >>> check_detect_params({"max_detections": 0})
    Traceback (most recent call last):
    ...
    pixlearn.serve.errors.ApiError: max_detections=0 is out of range; use 1..1000
    """
    return {
        "threshold": _number(params.get("threshold"), name="threshold", low=0.0, high=1.0, integer=False,
                             default=DEFAULT_THRESHOLD),
        "max_detections": _number(params.get("max_detections"), name="max_detections", low=1, high=MAX_DETECTIONS,
                                  integer=True, default=DEFAULT_MAX_DETECTIONS),
        "tile": _number(params.get("tile"), name="tile", low=64, high=4096, integer=True, default=None),
        "overlap": _number(params.get("overlap"), name="overlap", low=0.0, high=0.9, integer=False, default=0.2),
    }


# ---------------------------------------------------------------- detection and its JSON
def _polygons(mask: np.ndarray) -> list[list[float]]:
    """The outer contours of a boolean mask as flat ``[x1, y1, x2, y2, ...]`` lists in image pixels."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[float(v) for v in c.reshape(-1)] for c in contours if len(c) >= 3]


def detection_rows(det: Any) -> list[dict[str, Any]]:
    """One JSON object per detection: ``box`` (xyxy pixels), ``score``, ``label`` (0-based), ``class_name``; with
    instance masks also ``mask`` (COCO RLE, ``counts`` as text) and ``polygons``."""
    rows = det.to_rows()
    if det.masks is not None and len(rows):
        from pycocotools import mask as mask_utils

        for row, m in zip(rows, det.masks, strict=True):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            row["mask"] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
            row["polygons"] = _polygons(m)
    return rows


_locks_guard = threading.Lock()
_predict_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def predict_lock(detector: Any) -> threading.Lock:
    """The lock that serialises ``detector.predict`` calls in this process: a torchvision detector keeps its score
    threshold on the network, so two requests with different thresholds must not interleave."""
    with _locks_guard:
        lock = _predict_locks.get(detector)
        if lock is None:
            lock = _predict_locks[detector] = threading.Lock()
        return lock


def _exported_limits(detector: Any, opts: dict[str, Any]) -> dict[str, Any]:
    """The predict options for ``detector``: an exported (onnxruntime) detector's graph drops scores under its baked-in
    floor (a lower threshold is a 400 naming it) and gives at most its baked-in number of detections (a larger
    max_detections asks for no more than it can give: capped). A torch detector takes ``opts`` as they are."""
    kwargs: dict[str, Any] = {"score": opts["threshold"], "max_detections": opts["max_detections"]}
    if getattr(detector, "backend", None) != "onnxruntime":
        return kwargs
    floor = float(detector.score_floor)
    if kwargs["score"] < floor:
        raise ApiError(f"threshold={kwargs['score']:g} is below {floor:g}, the lowest score this exported detector "
                       f"gives (its ONNX graph drops lower scores); use threshold >= {floor:g}, or register its run "
                       "folder to detect below it", status=400)
    kwargs["max_detections"] = min(int(kwargs["max_detections"]), int(detector.max_detections))
    kwargs["iou"] = float(detector.nms_iou)  # the NMS overlap baked into the graph (a tiled merge uses it too)
    return kwargs


def predict_detections(detector: Any, images: list[np.ndarray], opts: dict[str, Any], *, wrapped: Any = None) -> list[Any]:
    """``detector.predict(images)`` (through ``wrapped``, a :class:`TiledDetector` of it, when given) with the
    request's ``threshold`` and ``max_detections``, under the detector's lock; the same for a run's torch detector
    and an exported (onnxruntime) one (see :func:`_exported_limits`)."""
    kwargs = _exported_limits(detector, opts)
    with predict_lock(detector):
        return (wrapped or detector).predict(images, **kwargs)


def detect_image(detector: Any, image: np.ndarray, opts: dict[str, Any]) -> Any:
    """One image through ``detector`` (tiled when ``opts["tile"]``); the :class:`Detections`."""
    wrapped = None
    if opts.get("tile"):
        from pixlearn.tasks.registry import task

        TiledDetector = task("detect").load("tiled")  # noqa: N806 (a class from the registry)
        try:
            wrapped = TiledDetector(detector, tile=opts["tile"], overlap=opts.get("overlap", 0.2))
        except ConfigError as exc:
            raise ApiError(str(exc), status=400) from None
    return predict_detections(detector, [image], opts, wrapped=wrapped)[0]


def _decode(kind: str, payload: Any, name: str, settings: ServeSettings) -> np.ndarray:
    from pixlearn.serve.inputs import decode_b64, decode_bytes, read_allowed_path

    if kind == "bytes":
        return decode_bytes(payload, name=name, max_pixels=settings.max_pixels)
    if kind == "b64":
        return decode_b64(payload, name=name, max_pixels=settings.max_pixels)
    return read_allowed_path(payload, settings.allowed_roots, max_pixels=settings.max_pixels,
                             max_bytes=settings.max_body_bytes)


def _image_json(image: np.ndarray) -> dict[str, int]:
    return {"width": int(image.shape[1]), "height": int(image.shape[0])}


def _builtin_work(kind: str, payload: Any, name: str, settings: ServeSettings, opts: dict[str, Any]) -> dict[str, Any]:
    """Decoding and the COCO detector, in a worker process."""
    t = time.perf_counter()
    image = _decode(kind, payload, name, settings)
    decode_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    det = detect_image(coco_detector(settings, threads=1), image, opts)
    return {"objects": detection_rows(det), "image": _image_json(image),
            "timings_ms": {"decode": round(decode_ms, 2), "detect": round((time.perf_counter() - t) * 1e3, 2)}}


def _registered_work(detector: Any, image: np.ndarray, opts: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    det = detect_image(detector, image, opts)
    return {"objects": detection_rows(det), "timings_ms": {"detect": round((time.perf_counter() - t) * 1e3, 2)}}


def check_detection_model(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """The record of registered model ``name`` (404 naming the closest), 400 when it is not a detection model."""
    record = registry.get(name)
    if record.get("task") != "detect":
        raise ApiError(f"model {name!r} is a {record.get('task')} model, not a detection model; classify with it through "
                       f"POST /v1/classify, or detect with {BUILTIN!r} or a detection model", status=400)
    return record


@router.post("/v1/detect", summary="Objects in one image: boxes, scores and class names (and masks)",
             openapi_extra=_OPENAPI)
async def detect(request: Request) -> dict[str, Any]:
    """Detect objects with the built-in COCO detector (``model`` omitted or ``coco-yolox-nano``) or a registered
    detection model.

    Response: ``{"model", "objects": [{"box": [x1, y1, x2, y2], "score", "label", "class_name"}], "image":
    {"width", "height"}, "timings_ms"}``, objects best first; instance-segmentation models add ``mask`` (COCO RLE)
    and ``polygons`` per object. A missing COCO detector file is a 503 naming the file and how to add it.
    """
    from pixlearn.serve.routes_analyze import read_image_request

    t0 = time.perf_counter()
    settings: ServeSettings = request.app.state.settings
    registry: ModelRegistry = request.app.state.registry
    params, (kind, payload, name) = await read_image_request(
        request, keys=("model", "threshold", "max_detections", "tile", "overlap"))
    opts = check_detect_params(params)
    model = params.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(f"model must be a model name (text), got {type(model).__name__}", status=400)
    model = (model or "").strip() or BUILTIN
    if model == BUILTIN:
        try:
            result = await run_cpu(_builtin_work, kind, payload, name, settings, opts)
        except WeightsNotFoundError as exc:
            raise builtin_unavailable(exc, settings) from None
    else:
        await run_blocking(check_detection_model, registry, model)  # 404 / 400 before any decoding
        t = time.perf_counter()
        image = await run_cpu(_decode, kind, payload, name, settings)
        decode_ms = (time.perf_counter() - t) * 1e3
        detector = await run_blocking(registry.load, model)
        result = await run_blocking(_registered_work, detector, image, opts)
        result["image"] = _image_json(image)
        result["timings_ms"] = {"decode": round(decode_ms, 2), **result["timings_ms"]}
    timings = result.pop("timings_ms")
    timings["total"] = round((time.perf_counter() - t0) * 1e3, 2)
    return {"model": model, "objects": result["objects"], "image": result["image"], "timings_ms": timings}
