"""``POST /v1/analyze``: dominant colours, quality scores and labels, in one call.

The image comes as a multipart upload (field ``file``, or ``image``), as JSON (``{"image": {"b64": ...}}``
or ``{"image": {"path": ...}}`` under an allowed root), or as the raw body (``Content-Type: image/...``).

Labels: ``labels`` holds the general ImageNet labeller's classes
(:mod:`pixlearn.tasks.imagenet_labels`, ``tf_efficientnet_lite0`` from the local weights folders);
without its weights the answer has no ``labels`` and says why under ``unavailable.labels``. A
registered (custom) classifier answers under ``models.<name>``, only when the request names it
(``models=``) or its record is marked general. The labeller is loaded once, in a thread: at
start-up (:func:`start_labeller_warmup`) or by the first request that needs it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from pixlearn._core.errors import ConfigError, UnknownNameError, WeightsNotFoundError
from pixlearn._core.names import check_name
from pixlearn._core.safe_yaml import load_json
from pixlearn.serve.deps import run_blocking, run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.inputs import decode_b64, decode_bytes, read_allowed_path
from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.routes_detect import builtin_unavailable, check_detect_params, coco_detector, detect_image, \
    detection_rows, yolox_path
from pixlearn.serve.routes_faces import check_face_params, face_rows, name_faces
from pixlearn.serve.routes_text import check_text_params, read_lines
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "FEATURES", "parse_features", "parse_names", "start_labeller_warmup"]

log = logging.getLogger("pixlearn.serve")

router = APIRouter(tags=["analyze"])

#: Every feature /v1/analyze knows.
FEATURES = ("colors", "quality", "labels", "objects", "faces", "text")
#: The features of a request that names none: all but ``objects``, which joins them when the COCO detector's file
#: is on the server (so a server without it answers the default request without a note about a missing file), and
#: ``faces`` and ``text``, which are asked for by name: each costs far more than colours and quality (dlib's face
#: detector and a 128-d embedding per face, or PP-OCR's detection and recognition: hundreds of milliseconds to
#: seconds on a CPU, against a few milliseconds) and loads its models on first use.
DEFAULT_FEATURES = ("colors", "quality", "labels")

_OPENAPI = {
    "parameters": [
        {"name": "features", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Comma list of colors, quality, labels, objects (default: colors, quality, labels, and "
                        "objects when the COCO detector's file is on the server). labels: the general ImageNet "
                        "labeller's classes (tf_efficientnet_lite0; without its weights, unavailable.labels says how "
                        "to add them), and models.<name> for the models asked for or marked general. objects: the "
                        "80 COCO classes from the built-in YOLOX-Nano (without its file, unavailable.objects says "
                        "how to add it). faces (asked for by name): face boxes, scores and 5 landmarks, each named "
                        "after the nearest enrolled person of the face gallery or 'unknown'. text (asked for by "
                        "name): the text lines in reading order, as POST /v1/text gives them."},
        {"name": "detector", "in": "query", "required": False, "schema": {"type": "string", "enum": ["hog", "cnn"]},
         "description": "faces: the face detector (default hog)."},
        {"name": "upsample", "in": "query", "required": False, "schema": {"type": "integer"},
         "description": "faces: 0..3, each step finds faces half as large at about 4x the cost (default 1, or 0 for "
                        "an image too large to scan doubled)."},
        {"name": "min_confidence", "in": "query", "required": False, "schema": {"type": "number", "default": 0.5},
         "description": "text: drop pieces read with a lower confidence (0..1)."},
        {"name": "threshold", "in": "query", "required": False, "schema": {"type": "number", "default": 0.25},
         "description": "objects: the lowest score kept (0..1)."},
        {"name": "max_detections", "in": "query", "required": False, "schema": {"type": "integer", "default": 100},
         "description": "objects: the most objects returned (1..1000)."},
        {"name": "n_colors", "in": "query", "required": False, "schema": {"type": "integer", "default": 5}},
        {"name": "models", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Registered models whose labels to add under models.<name> (comma list or repeated; "
                        "default: the models marked general)."},
        {"name": "top_k", "in": "query", "required": False, "schema": {"type": "integer", "default": 5}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"},
                               "features": {"type": "string"}, "n_colors": {"type": "integer"},
                               "models": {"type": "string"}, "top_k": {"type": "integer"}}}},
            "application/json": {"schema": {
                "type": "object", "required": ["image"],
                "properties": {
                    "image": {"type": "object", "properties": {"b64": {"type": "string"}, "path": {"type": "string"}}},
                    "features": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "models": {"type": "array", "items": {"type": "string"}},
                    "n_colors": {"type": "integer"}, "top_k": {"type": "integer"}}},
                "example": {"image": {"b64": "<base64 of the file>"}, "features": "colors,quality"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}


def parse_names(value: Any, *, what: str = "names") -> list[str]:
    """A comma list, a list of comma lists, or None -> a flat list of stripped names.

    Examples
    --------
    >>> parse_names(["colors, quality", "labels"]), parse_names(None)
    (['colors', 'quality', 'labels'], [])
    >>> parse_names(False, what="features")
    Traceback (most recent call last):
    ...
    pixlearn.serve.errors.ApiError: features must be a comma list of names like "colors,quality" or a list of names, got false (bool)
    """
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:  # JSON false, 0, 1.5, {...}: not names
        shown = json.dumps(value) if isinstance(value, (bool, int, float)) else type(value).__name__
        raise ApiError(f"{what} must be a comma list of names like \"colors,quality\" or a list of names, got "
                       f"{shown} ({type(value).__name__})", status=400)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            shown = json.dumps(item) if isinstance(item, (bool, int, float)) or item is None else type(item).__name__
            raise ApiError(f"{what} must hold names as text, got {shown} ({type(item).__name__})", status=400)
        out.extend(p.strip() for p in item.split(",") if p.strip())
    return out


def parse_features(value: Any) -> list[str]:
    """Validated features in the order of :data:`FEATURES` (none given: :data:`DEFAULT_FEATURES`); unknown -> 400
    listing the valid ones.

    Examples
    --------
    >>> parse_features(None), parse_features("labels, colors")
    (['colors', 'quality', 'labels'], ['colors', 'labels'])
    """
    names = parse_names(value, what="features")
    if not names:
        return list(DEFAULT_FEATURES)
    for n in names:
        try:
            check_name(n, FEATURES, what="feature")
        except UnknownNameError as exc:
            raise ApiError(str(exc), status=400) from None
    return [f for f in FEATURES if f in names]


def _int(value: Any, *, name: str, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):  # JSON true, [..], {..}
            raise TypeError
        n = int(value)
        if isinstance(value, float) and value != n:
            raise ValueError
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(1e400) is int(inf)
        raise ApiError(f"{name}={value!r} is not an integer; use {low}..{high}", status=400) from None
    if not low <= n <= high:
        raise ApiError(f"{name}={n} is out of range; use {low}..{high}", status=400)
    return n


#: The parameters /v1/analyze reads; ``features`` and ``models`` may repeat (lists), the others are single values.
_ANALYZE_KEYS = ("features", "n_colors", "models", "top_k", "threshold", "max_detections", "detector", "upsample",
                 "min_confidence")
_LIST_KEYS = ("features", "models")


async def _read_request(request: Request) -> tuple[dict[str, Any], Any]:
    return await read_image_request(request, keys=_ANALYZE_KEYS)


async def read_image_request(request: Request, *, keys: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    """(parameters, image source) from a multipart, JSON or raw-image request; query parameters are the fallback.

    ``keys`` are the parameters to read (``features`` and ``models`` as lists; ``models`` also from ``model``
    fields); the image source is ``(kind, payload, name)`` with kind ``bytes``, ``b64`` or ``path``.
    """
    query = request.query_params

    def from_query(key: str) -> Any:
        if key == "models":
            return query.getlist("models") or query.getlist("model") or None
        return (query.getlist(key) or None) if key in _LIST_KEYS else query.get(key)

    params: dict[str, Any] = {key: from_query(key) for key in keys}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        upload = form.get("file") or form.get("image")
        for key in keys:
            if key == "models":
                if form.getlist("models") or form.getlist("model"):
                    params["models"] = form.getlist("models") or form.getlist("model")
            elif form.get(key) is not None:
                params[key] = form.getlist(key) if key in _LIST_KEYS else form.get(key)
        if not isinstance(upload, UploadFile):
            raise ApiError("no image: send the file in the multipart field 'file' (curl -F file=@photo.jpg)", status=400)
        return params, ("bytes", await upload.read(), upload.filename or "file")
    if ctype == "application/json" or ctype.endswith("+json"):
        raw = await request.body()
        try:  # in a thread: a body of megabytes of base64 is parsed off the event loop; depth-limited
            body = await run_blocking(load_json, raw or b"null", what="the JSON body", max_bytes=len(raw) + 4,
                                      max_depth=16)
        except ConfigError as exc:
            raise ApiError(f"{exc}; send {{\"image\": {{\"b64\": \"...\"}}}}", status=400) from None
        if not isinstance(body, dict):
            raise ApiError("the JSON body must be an object like {\"image\": {\"b64\": \"...\"}, \"features\": "
                           "\"colors,quality\"}", status=400)
        for key in keys:
            if body.get(key) is not None:
                params[key] = body[key]
        image = body.get("image", body.get("image_base64"))
        if isinstance(image, str):
            return params, ("b64", image, "image.b64")
        if isinstance(image, dict) and isinstance(image.get("b64"), str):
            return params, ("b64", image["b64"], "image.b64")
        if isinstance(image, dict) and isinstance(image.get("path"), str):
            return params, ("path", image["path"], image["path"])
        raise ApiError("the JSON body has no image: send {\"image\": {\"b64\": \"<base64>\"}} or "
                       "{\"image\": {\"path\": \"<file under an allowed root>\"}}", status=400)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return params, ("bytes", await request.body(), "body")
    raise ApiError(f"unsupported Content-Type {ctype or '(none)'!r}; send multipart/form-data with a 'file' field, "
                   "JSON with image.b64, or the image bytes with Content-Type: image/jpeg", status=415)


def general_labels(image, *, top_k: int, storage: str | Path) -> tuple[list[dict[str, Any]] | None, str | None]:
    """``(labels, None)`` from the ImageNet labeller, or ``(None, why)`` when it is not available.

    ``why`` names the weights folders as ``<PIXLEARN_WEIGHTS>`` and ``<cache>/weights``, never by their server paths.
    """
    from pixlearn._core.paths import cache_dir, weights_dirs
    from pixlearn.serve.security import hide_paths
    from pixlearn.tasks.imagenet_labels import get_labeller

    try:
        labeller = get_labeller()
    except ConfigError as exc:  # LabellerUnavailable (no weights), or a file that is not the ImageNet model
        cache = cache_dir() / "weights"
        names = [(d, "<cache>/weights" if d == cache else "<PIXLEARN_WEIGHTS>") for d in weights_dirs()]
        names += [(os.path.realpath(d), name) for d, name in names]
        return None, hide_paths(str(exc), storage, extra=names)
    if image is None:  # the weights were added after this request looked for them (it did not keep the image)
        return None, "the general labeller's weights were added while this request ran; send it again"
    return labeller.label(image, top_k=top_k), None


def _warm() -> None:
    from pixlearn.tasks.imagenet_labels import get_labeller

    t = time.perf_counter()
    try:
        labeller = get_labeller()
    except Exception as exc:  # noqa: BLE001 - requests report it under unavailable.labels
        log.warning("the general labeller is not available: %s", exc)
        return
    log.info("general labeller %s loaded from %s in %.1f s", labeller.name, labeller.path, time.perf_counter() - t)


def start_labeller_warmup() -> threading.Thread | None:
    """Load the general labeller in a background thread when its weights are there (None when they are not).

    Start-up does not wait for it; a request that needs it meanwhile waits for the same load.
    """
    from pixlearn.tasks.imagenet_labels import find_labeller_weights

    if find_labeller_weights() is None:
        log.info("no general labeller: /v1/analyze answers labels once tf_efficientnet_lite0 ImageNet weights are "
                 "added (pixlearn weights add)")
        return None
    thread = threading.Thread(target=_warm, name="pixlearn-labeller-warmup", daemon=True)
    thread.start()
    return thread


def _labels(image, *, models: list[str], top_k: int, registry: ModelRegistry) -> dict[str, Any]:
    """The ``labels`` feature alone (``image`` None: the labeller's weights were absent when the request looked)."""
    if image is None:
        out: dict[str, Any] = {"timings_ms": {}}
        out["unavailable"] = {"labels": general_labels(None, top_k=top_k, storage=registry.storage)[1]}
        return out
    return analyze_image(image, features=["labels"], n_colors=1, models=models, top_k=top_k, registry=registry)


def analyze_image(image, *, features: list[str], n_colors: int, models: list[str], top_k: int,
                  registry: ModelRegistry | None) -> dict[str, Any]:
    """The analysis of one decoded RGB image (colours and quality run in a worker process, labels in a thread).

    ``labels``: the general labeller's classes (``unavailable.labels`` says why when it is absent),
    and each of ``models`` under ``models.<name>``.
    """
    from pixlearn.ops.color import dominant_colors, quality

    out: dict[str, Any] = {"image": {"width": int(image.shape[1]), "height": int(image.shape[0])}}
    timings: dict[str, float] = {}
    if "colors" in features:
        t = time.perf_counter()
        out["colors"] = dominant_colors(image, k=n_colors)
        timings["colors"] = (time.perf_counter() - t) * 1e3
    if "quality" in features:
        t = time.perf_counter()
        out["quality"] = quality(image)
        timings["quality"] = (time.perf_counter() - t) * 1e3
    if "labels" in features:
        t = time.perf_counter()
        labels, why = general_labels(image, top_k=top_k, storage=registry.storage if registry else ".")
        if labels is not None:
            out["labels"] = labels
            timings["labels"] = (time.perf_counter() - t) * 1e3
        else:
            out["unavailable"] = {"labels": why}
        if models:
            assert registry is not None
            out["models"] = {}
        for name in models:
            t = time.perf_counter()
            clf = registry.load(name)
            out["models"][name] = clf.predict([image], top_k=top_k)[0]["top_k"]
            timings[f"models.{name}"] = (time.perf_counter() - t) * 1e3
    out["timings_ms"] = {k: round(v, 2) for k, v in timings.items()}
    return out


@router.post("/v1/analyze", summary="Dominant colours, quality scores and labels of one image", openapi_extra=_OPENAPI)
async def analyze(request: Request) -> dict[str, Any]:
    """Analyse an image; ``features`` picks what to compute (unknown feature: 400 listing the valid ones).

    Response: ``{"image": {"width", "height"}, "colors": [{"rgb", "hex", "name", "fraction"}], "quality":
    {"brightness", "contrast", "sharpness", "noise_sigma", "width", "height"}, "labels": [{"label", "score"}],
    "models": {"<model>": [{"label", "score"}]}, "unavailable": {"labels": "<why, and how to fix it>"},
    "timings_ms": {...}}`` (only the features asked for; ``labels`` are the ImageNet labeller's, and
    ``unavailable.labels`` replaces them when its weights are absent; ``models`` only for the models
    named in ``models=`` or marked general; ``objects``: ``[{"box": [x1, y1, x2, y2], "score", "label",
    "class_name"}]`` from the built-in COCO detector, or ``unavailable.objects`` when its file is absent;
    ``faces``: ``[{"box": [x0, y0, x1, y1], "score", "landmarks", "name", "distance", "candidates"}]``, ``name`` the
    nearest enrolled person's or ``"unknown"`` (options ``detector``, ``upsample``); ``text``: ``[{"text",
    "confidence", "line", "quad", "box"}]`` in reading order (option ``min_confidence``)). ``faces`` and ``text`` are
    only computed when asked for by name.
    """
    t0 = time.perf_counter()
    settings: ServeSettings = request.app.state.settings
    registry: ModelRegistry = request.app.state.registry
    params, (kind, payload, name) = await _read_request(request)
    features = parse_features(params["features"])
    if not parse_names(params["features"], what="features") and await run_blocking(yolox_path, settings) is not None:
        features.append("objects")  # the default request gets objects when the COCO detector's file is here
    detect_opts = check_detect_params({"threshold": params["threshold"], "max_detections": params["max_detections"]})
    face_opts = check_face_params(params) if "faces" in features else None
    text_opts = check_text_params({"min_confidence": params["min_confidence"]}) if "text" in features else None
    n_colors = _int(params["n_colors"], name="n_colors", low=1, high=64, default=5)
    top_k = _int(params["top_k"], name="top_k", low=1, high=1000, default=5)
    asked_models = parse_names(params["models"], what="models")  # checked even when labels are not asked for
    models: list[str] = []
    if "labels" in features:
        models = list(dict.fromkeys(asked_models)) or await run_blocking(registry.general_names)
        for m in models:
            record = await run_blocking(registry.get, m)  # 404 naming the closest model, before any decoding
            if record.get("task", "classify") != "classify":
                raise ApiError(f"models: {m!r} is a {record['task']} model; labels come from classifiers (ask "
                               "features=objects for COCO objects, or POST /v1/detect with model=" + m + ")",
                               status=400)

    def work() -> tuple[dict[str, Any], Any]:  # decoding, colours, quality: in a worker process
        t = time.perf_counter()
        if kind == "bytes":
            image = decode_bytes(payload, name=name, max_pixels=settings.max_pixels)
        elif kind == "b64":
            image = decode_b64(payload, name=name, max_pixels=settings.max_pixels)
        else:
            image = read_allowed_path(payload, settings.allowed_roots, max_pixels=settings.max_pixels,
                                      max_bytes=settings.max_body_bytes)
        decode_ms = (time.perf_counter() - t) * 1e3
        result = analyze_image(image, features=[f for f in features if f in ("colors", "quality")],
                               n_colors=n_colors, models=[], top_k=top_k, registry=None)
        result["timings_ms"] = {"decode": round(decode_ms, 2), **result["timings_ms"]}
        if "objects" in features:
            t = time.perf_counter()
            try:
                result["objects"] = detection_rows(detect_image(coco_detector(settings, threads=1), image, detect_opts))
                result["timings_ms"]["objects"] = round((time.perf_counter() - t) * 1e3, 2)
            except WeightsNotFoundError as exc:
                result.setdefault("unavailable", {})["objects"] = builtin_unavailable(exc, settings).args[0]
        if face_opts is not None:
            t = time.perf_counter()
            try:
                result["faces"] = face_rows(image, detector=face_opts["detector"], upsample=face_opts["upsample"],
                                            vectors=True)
                result["timings_ms"]["faces"] = round((time.perf_counter() - t) * 1e3, 2)
            except WeightsNotFoundError as exc:
                result.setdefault("unavailable", {})["faces"] = str(exc)
        if text_opts is not None:
            t = time.perf_counter()
            try:
                result["text"] = read_lines(image, text_opts)["lines"]
                result["timings_ms"]["text"] = round((time.perf_counter() - t) * 1e3, 2)
            except (WeightsNotFoundError, ModuleNotFoundError) as exc:
                result.setdefault("unavailable", {})["text"] = str(exc)
        return result, (image if need_image else None)

    from pixlearn.tasks.imagenet_labels import find_labeller_weights

    # The decoded image comes back from the worker only when a model will look at it.
    need_image = "labels" in features and (bool(models) or await run_blocking(find_labeller_weights) is not None)
    result, image = await run_cpu(work)
    if "faces" in result:  # named after the gallery (the database: a thread)
        t = time.perf_counter()
        named = await run_blocking(name_faces, result["faces"], request.app.state.engine, threshold=None)
        result["faces"] = named["faces"]
        result["timings_ms"]["faces"] = round(result["timings_ms"].get("faces", 0) + (time.perf_counter() - t) * 1e3, 2)
    if "labels" in features:  # the loaded models live in this process (a thread)
        labels = await run_blocking(_labels, image, models=models, top_k=top_k, registry=registry)
        timings = result.pop("timings_ms")
        for key in ("labels", "models"):
            if key in labels:
                result[key] = labels[key]
        if "unavailable" in labels:
            result["unavailable"] = {**result.get("unavailable", {}), **labels["unavailable"]}
        result["timings_ms"] = {**timings, **labels["timings_ms"]}
    result["timings_ms"]["total"] = round((time.perf_counter() - t0) * 1e3, 2)
    return result
