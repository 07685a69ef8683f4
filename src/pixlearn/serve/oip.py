"""Open Inference Protocol v2 (KServe / Triton REST) routes over the model registry.

Every classifier in the registry (``app.state.registry``) is an OIP model with version ``"1"``:

- inputs (send exactly one):

  - ``input``, FP32 ``[N, C, H, W]`` in the model's ``input_shape``, **already preprocessed** the way
    the model expects: resized to H x W, scaled to [0, 1], then ``(x - mean) / std`` per channel
    (``GET /v2/models/{name}`` lists ``mean``/``std`` under ``parameters.preprocess``);
  - ``image``, BYTES ``[N]``: encoded image files (JPEG, PNG, WebP, TIFF, BMP, GIF), decoded with
    :func:`pixlearn.io.read_image` and preprocessed by the model's own preprocessing. In the binary
    tensor data extension an element is its raw bytes; in JSON an element is a string holding the
    file base64-encoded (optionally as a ``data:image/...;base64,`` URL) or, as ``tritonclient`` sends
    BYTES with ``binary_data=False``, the raw bytes as a UTF-8 string (only possible for files that
    happen to be valid UTF-8, so prefer base64 or binary data).

- outputs: ``probabilities`` FP32 ``[N, n_classes]`` (softmax, in the order of ``parameters.classes``)
  and ``labels`` BYTES ``[N]`` (the top-1 class name). Both come back when the request names no
  ``outputs``.

An exported classifier (``pixlearn export RUN --format onnx``, registered with ``--model EXPORT_DIR``; its
``parameters.backend`` is ``"onnxruntime"``) takes its ONNX graph's own input instead of ``input``: ``images``, UINT8
``[N, H, W, 3]`` RGB pixels resized to the model's size (normalisation is inside the graph) -- what Triton's ONNX
Runtime backend takes for the same file, so one client works against both -- or the ``image`` BYTES input above.

Detection models -- the built-in COCO detector ``coco-yolox-nano``, every registered detection run and every
registered exported detector (``parameters.backend`` ``"onnxruntime"``) -- take the ``image`` BYTES ``[B]`` input and
answer one row per detected object, over the whole batch: ``boxes`` FP32 ``[N, 4]`` (xyxy pixels of its image),
``scores`` FP32 ``[N]``, ``labels`` INT64 ``[N]`` (0-based indices into ``parameters.classes``), ``class_names``
BYTES ``[N]`` and ``image_index`` INT64 ``[N]`` (which image of the batch). The request's ``parameters`` may set
``threshold`` (0..1, default 0.25) and ``max_detections`` (1..1000 per image, default 100); an exported detector
refuses a threshold under the score floor baked into its graph and gives at most its graph's number of detections.

Extensions: ``binary_tensor_data`` (inputs and outputs after the JSON header, sized by the
``Inference-Header-Content-Length`` header and ``binary_data_size`` parameters; ``binary_data`` per
output, ``binary_data_output`` per request) and ``classification`` (``{"classification": k}`` on the
``probabilities`` output returns BYTES ``[N, k]`` strings ``"<score>:<index>:<label>"``). A
gzip/deflate ``Content-Encoding`` request body is accepted. Errors are the protocol's
``{"error": "<message>"}`` with a 4xx status (404 unknown model or version, 400 bad tensors, 413
too large, 503 while the server is still starting).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pixlearn._core.errors import PixlearnError
from pixlearn._core.names import closest
from pixlearn.serve.deps import run_blocking
from pixlearn.serve.errors import ApiError, status_for

__all__ = [
    "EXTENSIONS",
    "IMAGE_INPUT",
    "LABELS_OUTPUT",
    "MODEL_VERSION",
    "PIXELS_INPUT",
    "PROBABILITIES_OUTPUT",
    "TENSOR_INPUT",
    "router",
]

router = APIRouter(tags=["Open Inference Protocol v2"])

SERVER_NAME = "pixlearn"
PLATFORM = "pixlearn"
#: Every registered model is served as this one version.
MODEL_VERSION = "1"
#: The protocol extensions this server implements (reported by ``GET /v2``).
EXTENSIONS = ("binary_tensor_data", "classification")
TENSOR_INPUT = "input"
IMAGE_INPUT = "image"
#: The uint8 NHWC input of an exported (onnxruntime) model: the ONNX graph's own input name.
PIXELS_INPUT = "images"
PROBABILITIES_OUTPUT = "probabilities"
LABELS_OUTPUT = "labels"
#: The outputs of a detection model: (datatype, shape) of each, N the objects found in the whole batch.
DETECTION_OUTPUTS = {"boxes": ("FP32", [-1, 4]), "scores": ("FP32", [-1]), "labels": ("INT64", [-1]),
                     "class_names": ("BYTES", [-1]), "image_index": ("INT64", [-1])}
HEADER_LENGTH = "Inference-Header-Content-Length"
#: Most images (or tensor rows) in one request when the settings give no other cap.
DEFAULT_MAX_BATCH = 256
_DEFAULT_MAX_BODY = 50 * 1024 * 1024
_INFER_DOC = "https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md"


class OIPError(Exception):
    """A request the protocol answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ---------------------------------------------------------------- registry access
def _registry(request: Request) -> Any:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:
        raise OIPError(503, "the server is still starting (no model registry yet); retry in a moment")
    return registry


@dataclass(frozen=True)
class _Limits:
    max_body: int = _DEFAULT_MAX_BODY
    max_batch: int = DEFAULT_MAX_BATCH
    max_pixels: int | None = None


def _limits(request: Request) -> _Limits:
    """The request limits of the app's settings (``app.state.settings``), defaults without them."""
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return _Limits()
    return _Limits(
        max_body=int(float(getattr(settings, "max_body_mb", _DEFAULT_MAX_BODY / 2**20)) * 2**20),
        max_batch=int(getattr(settings, "max_archive_images", DEFAULT_MAX_BATCH)),
        max_pixels=getattr(settings, "max_pixels", None),
    )


def _record(registry: Any, name: str, version: str | None) -> dict[str, Any]:
    """The registry record of ``name`` (``ModelNotFound``, a 404 naming the closest models, or an
    unknown version: 404); the built-in COCO detector when ``name`` is its name and no model took it."""
    from pixlearn.serve.routes_detect import BUILTIN

    record = registry.get_or_none(name) if name == BUILTIN else None
    if name == BUILTIN and record is None:
        record = {"name": BUILTIN, "task": "detect", "architecture": "yolox_nano (onnxruntime)", "builtin": True}
    elif record is None:
        record = registry.get(name)
    if version not in (None, "", MODEL_VERSION):
        raise OIPError(404, f"model {name!r} has no version {version!r}; its only version is {MODEL_VERSION!r}")
    return record


def _detector(registry: Any, name: str, record: dict[str, Any], settings: Any) -> Any:
    """The Detector of a detection record: the built-in COCO detector (503 without its file) or a registered run."""
    from pixlearn._core.errors import WeightsNotFoundError
    from pixlearn.serve.routes_detect import builtin_unavailable, coco_detector

    if record.get("builtin"):
        try:
            return coco_detector(settings)
        except WeightsNotFoundError as exc:
            err = builtin_unavailable(exc, settings)
            raise OIPError(err.status, str(err)) from None
    return registry.load(name)


def _detector_metadata(name: str, record: dict[str, Any], detector: Any) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": n, "datatype": d, "shape": s} for n, (d, s) in DETECTION_OUTPUTS.items()],
        "parameters": {
            "task": "detect",
            "classes": [str(c) for c in detector.class_names],
            "architecture": record.get("architecture"),
            "backend": record.get("backend") or ("onnxruntime" if record.get("builtin") else "torch"),
            "request_parameters": {"threshold": "lowest score kept, 0..1 (default 0.25)",
                                   "max_detections": "most objects per image, 1..1000 (default 100)"},
        },
    }


def _classifier(registry: Any, name: str, record: dict[str, Any]) -> tuple[Any, tuple[int, int, int]]:
    """(Classifier, (C, H, W)) of a registered tensor classifier."""
    task = record.get("task", "classify")
    if task != "classify":
        raise OIPError(400, f"model {name!r} is a {task} model; the Open Inference Protocol routes serve classifiers")
    clf = registry.load(name)
    if getattr(clf, "backend", None) == "onnxruntime":  # an exported model: uint8 pixels in (see _onnx_batch)
        return clf, (3, int(clf.height), int(clf.width))
    if not hasattr(clf, "predict_proba") or not hasattr(clf, "to_tensor"):
        arch = record.get("architecture", "")
        raise OIPError(
            400,
            f"model {name!r} ({arch or 'a classic model'}) takes no tensor input; "
            "classify images with it through POST /v1/classify instead",
        )
    shape = tuple(int(v) for v in (record.get("input_shape") or registry.input_shape(name)))
    if len(shape) != 3:
        raise OIPError(400, f"model {name!r} has no (C, H, W) input shape; classify images with it through POST /v1/classify")
    return clf, shape  # type: ignore[return-value]


def _metadata(name: str, record: dict[str, Any], clf: Any, shape: tuple[int, int, int]) -> dict[str, Any]:
    """A classifier's OIP metadata: the torch model's preprocessed FP32 ``input``, or an exported (onnxruntime) one's
    own uint8 ``images``, as Triton's config of the same file declares it; both take encoded files as ``image``."""
    classes = [str(c) for c in clf.classes]
    parameters: dict[str, Any] = {"classes": classes, "architecture": record.get("architecture")}
    if getattr(clf, "backend", None) == "onnxruntime":
        _, h, w = shape
        first = {"name": PIXELS_INPUT, "datatype": "UINT8", "shape": [-1, h, w, 3]}
        parameters["backend"] = "onnxruntime"
        parameters["preprocess"] = {
            "note": (
                f"input {PIXELS_INPUT!r} takes RGB uint8 pixels already resized to H x W (bilinear, antialiased: "
                "pixlearn.export.runtime.resize_image); normalisation is inside the model. Input 'image' takes "
                "encoded image files and is resized by the server"
            ),
            "input_size": [3, h, w],
            "layout": "NHWC",
        }
    else:
        first = {"name": TENSOR_INPUT, "datatype": "FP32", "shape": [-1, *shape]}
        preprocess: dict[str, Any] = {
            "note": (
                "input 'input' must already be preprocessed: resized to H x W, scaled to [0, 1], "
                "then (x - mean) / std per channel; input 'image' takes encoded image files and is "
                "preprocessed by the server"
            )
        }
        pre = getattr(clf, "preprocess", None)
        if pre is not None:
            preprocess.update({"input_size": list(pre.input_size), "mean": list(pre.mean), "std": list(pre.std),
                               "interpolation": pre.interpolation})
        parameters["preprocess"] = preprocess
    return {
        "name": name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [first, {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": PROBABILITIES_OUTPUT, "datatype": "FP32", "shape": [-1, len(classes)]},
            {"name": LABELS_OUTPUT, "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": parameters,
    }


# ---------------------------------------------------------------- request parsing
def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise OIPError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed, gzip or deflate")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OIPError(400, f"the request body is not valid {enc} data ({exc}); send it uncompressed or fix the encoding") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise OIPError(413, f"the decompressed request body is over {limit // (1024 * 1024)} MB; send fewer images per request")
    return out


def _split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """(inference request JSON object, the binary tensor data after it)."""
    if header_length is None:
        head, binary = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            n = -1
        if not 0 <= n <= len(body):
            raise OIPError(
                400,
                f"{HEADER_LENGTH} must be the byte length of the JSON header, between 0 and the body length "
                f"{len(body)}, got {header_length!r}",
            )
        head, binary = body[:n], body[n:]
    try:
        request = json.loads(head)
    except RecursionError:
        raise OIPError(400, f"the inference request JSON nests too deeply; send 'data' flat, in row-major order. "
                            f"See {_INFER_DOC}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        hint = "" if header_length is not None else f"; binary tensor data needs the {HEADER_LENGTH} header"
        raise OIPError(400, f"the request body is not a valid JSON inference request ({exc}){hint}. See {_INFER_DOC}") from None
    if not isinstance(request, dict):
        raise OIPError(400, f"the inference request must be a JSON object with 'inputs', got {type(request).__name__}")
    return request, binary


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise OIPError(400, f"input {name!r} needs 'shape', a list of non-negative integers, got {shape!r}")
    return shape


def _binary_slices(inputs: list[dict[str, Any]], binary: bytes) -> list[bytes | None]:
    """The binary data of each input (None for JSON data), in request order."""
    out: list[bytes | None] = []
    offset = 0
    for tensor in inputs:
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            raise OIPError(400, f"input {tensor.get('name')!r}: 'parameters' must be a JSON object")
        for key in ("shared_memory_region", "shared_memory_byte_size"):
            if key in params:
                raise OIPError(400, "the shared-memory extension is not supported; send the tensor data in the request")
        size = params.get("binary_data_size")
        if size is None:
            out.append(None)
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise OIPError(400, f"input {tensor.get('name')!r}: binary_data_size must be a non-negative integer, got {size!r}")
        if "data" in tensor:
            raise OIPError(400, f"input {tensor.get('name')!r} has both 'data' and binary_data_size; send one of them")
        if offset + size > len(binary):
            raise OIPError(
                400,
                f"input {tensor.get('name')!r}: binary_data_size {size} runs past the {len(binary)} bytes of binary "
                f"data after the JSON header ({HEADER_LENGTH} must give the JSON length)",
            )
        out.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise OIPError(
            400,
            f"the request carries {len(binary)} bytes of binary tensor data but the inputs' binary_data_size "
            f"add up to {offset}; check {HEADER_LENGTH} and binary_data_size",
        )
    return out


def _check_batch(n: int, max_batch: int, name: str) -> None:
    if n < 1:
        raise OIPError(400, f"input {name!r} holds no images (batch size 0); send at least one")
    if n > max_batch:
        raise OIPError(413, f"input {name!r} holds {n} images, more than the {max_batch} allowed per request; split the batch")


def _fp32_tensor(tensor: dict[str, Any], raw: bytes | None, shape: tuple[int, int, int], max_batch: int) -> np.ndarray:
    dims = _shape(tensor, TENSOR_INPUT)
    expected = f"[N, {shape[0]}, {shape[1]}, {shape[2]}]"
    datatype = tensor.get("datatype")
    if datatype != "FP32":
        raise OIPError(
            400,
            f"input {TENSOR_INPUT!r} must have datatype FP32 and shape {expected}, got datatype {datatype!r}; "
            f"send encoded image files as the BYTES input {IMAGE_INPUT!r} instead",
        )
    if len(dims) != 4 or tuple(dims[1:]) != shape:
        raise OIPError(
            400,
            f"input {TENSOR_INPUT!r} must have shape {expected} (N preprocessed images), got {dims}; "
            f"resize to {shape[1]}x{shape[2]} and normalise as GET /v2/models/<name> describes, "
            f"or send encoded image files as the BYTES input {IMAGE_INPUT!r}",
        )
    _check_batch(dims[0], max_batch, TENSOR_INPUT)
    count = math.prod(dims)
    if raw is not None:
        if len(raw) != count * 4:
            raise OIPError(
                400,
                f"input {TENSOR_INPUT!r} of shape {dims} needs {count * 4} bytes of FP32 binary data, got {len(raw)}",
            )
        values = np.frombuffer(raw, dtype="<f4")
    else:
        if "data" not in tensor:
            raise OIPError(400, f"input {TENSOR_INPUT!r} has no 'data' (and no binary_data_size parameter)")
        try:
            arr = np.asarray(tensor["data"])
        except ValueError:
            raise OIPError(400, f"input {TENSOR_INPUT!r}: 'data' is a ragged nested list; send it flat, in row-major order") from None
        if arr.dtype.kind not in "iuf":
            raise OIPError(400, f"input {TENSOR_INPUT!r}: 'data' must hold only numbers (FP32), got {arr.dtype.kind!r} values")
        values = arr.astype(np.float32).ravel()
        if values.size != count:
            raise OIPError(400, f"input {TENSOR_INPUT!r} of shape {dims} needs {count} values, got {values.size}")
    if not np.isfinite(values).all():
        raise OIPError(400, f"input {TENSOR_INPUT!r} holds NaN or infinite values; send finite FP32 values")
    return values.reshape(dims).copy()


def _looks_like_image(data: bytes) -> bool:
    from pixlearn.io._sniff import sniff_format

    allowed, refused = sniff_format(data[:32])
    return allowed is not None or refused is not None


def _json_bytes_element(value: Any, index: int) -> bytes:
    if not isinstance(value, str):
        raise OIPError(
            400,
            f"input {IMAGE_INPUT!r} element {index}: BYTES data in JSON must be strings (base64-encoded image "
            f"files), got {type(value).__name__}",
        )
    raw = value.encode("utf-8", "surrogateescape")
    if _looks_like_image(raw):
        return raw
    text = value.strip()
    if text.startswith("data:") and "," in text[:200]:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return raw  # not base64 either: read_image says what it is


def _bytes_elements(tensor: dict[str, Any], raw: bytes | None, max_batch: int) -> list[bytes]:
    dims = _shape(tensor, IMAGE_INPUT)
    datatype = tensor.get("datatype")
    if datatype != "BYTES":
        raise OIPError(400, f"input {IMAGE_INPUT!r} must have datatype BYTES (encoded image files), got {datatype!r}")
    if not dims or any(d != 1 for d in dims[1:]):
        raise OIPError(400, f"input {IMAGE_INPUT!r} must have shape [N] (N encoded images), got {dims}")
    count = math.prod(dims)
    _check_batch(count, max_batch, IMAGE_INPUT)
    if raw is not None:
        items: list[bytes] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise OIPError(400, f"input {IMAGE_INPUT!r}: binary BYTES data ends inside an element's 4-byte length")
            (size,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise OIPError(
                    400,
                    f"input {IMAGE_INPUT!r} element {len(items)}: its length prefix says {size} bytes but only "
                    f"{len(raw) - offset} follow",
                )
            items.append(raw[offset : offset + size])
            offset += size
    else:
        if "data" not in tensor:
            raise OIPError(400, f"input {IMAGE_INPUT!r} has no 'data' (and no binary_data_size parameter)")
        data = tensor["data"]
        flat: list[Any] = []
        stack = [data] if not isinstance(data, list) else list(reversed(data))
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item)
        items = [_json_bytes_element(v, i) for i, v in enumerate(flat)]
    if len(items) != count:
        raise OIPError(400, f"input {IMAGE_INPUT!r} of shape {dims} needs {count} elements, got {len(items)}")
    return items


def _image_batch(items: Sequence[bytes], clf: Any, max_pixels: int | None) -> Any:
    """Decode and preprocess the encoded images one at a time (one full-size image in memory at once)."""
    import torch

    from pixlearn.io import read_image

    rows = []
    for i, data in enumerate(items):
        try:
            rows.append(clf.to_tensor([read_image(data, max_pixels=max_pixels)]))
        except PixlearnError as exc:
            raise OIPError(status_for(exc), f"input {IMAGE_INPUT!r} element {i}: {exc}") from None
    return torch.cat(rows)


def _input_batch(request: dict[str, Any], binary: bytes, clf: Any, shape: tuple[int, int, int], limits: _Limits) -> Any:
    """The model's (N, C, H, W) float batch from the request's one input."""
    import torch

    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise OIPError(
            400,
            f"the inference request needs 'inputs', a non-empty list of tensors: {TENSOR_INPUT!r} (FP32 [N, "
            f"{shape[0]}, {shape[1]}, {shape[2]}]) or {IMAGE_INPUT!r} (BYTES [N], encoded images)",
        )
    slices = _binary_slices(inputs, binary)
    if len(inputs) != 1:
        names = [t.get("name") for t in inputs]
        raise OIPError(400, f"send exactly one input, {TENSOR_INPUT!r} or {IMAGE_INPUT!r}; got {len(inputs)}: {names}")
    tensor, raw = inputs[0], slices[0]
    name = tensor.get("name")
    if name == TENSOR_INPUT:
        return torch.from_numpy(_fp32_tensor(tensor, raw, shape, limits.max_batch))
    if name == IMAGE_INPUT:
        return _image_batch(_bytes_elements(tensor, raw, limits.max_batch), clf, limits.max_pixels)
    hint = closest(str(name), [TENSOR_INPUT, IMAGE_INPUT])
    near = f"; did you mean {hint[0]!r}?" if hint else ""
    raise OIPError(400, f"unknown input {name!r}{near} The model takes {TENSOR_INPUT!r} (FP32) or {IMAGE_INPUT!r} (BYTES)")


def _uint8_tensor(tensor: dict[str, Any], raw: bytes | None, shape: tuple[int, int, int], max_batch: int) -> np.ndarray:
    """The ``images`` UINT8 [N, H, W, 3] input of an exported model, checked."""
    _, h, w = shape
    dims = _shape(tensor, PIXELS_INPUT)
    expected = f"[N, {h}, {w}, 3]"
    if tensor.get("datatype") != "UINT8":
        raise OIPError(400, f"input {PIXELS_INPUT!r} must have datatype UINT8 and shape {expected} (RGB pixels), got datatype "
                            f"{tensor.get('datatype')!r}; send encoded image files as the BYTES input {IMAGE_INPUT!r} instead")
    if len(dims) != 4 or tuple(dims[1:]) != (h, w, 3):
        raise OIPError(400, f"input {PIXELS_INPUT!r} must have shape {expected} (N RGB images resized to {h}x{w}), got {dims}; "
                            f"or send encoded image files as the BYTES input {IMAGE_INPUT!r}")
    _check_batch(dims[0], max_batch, PIXELS_INPUT)
    count = math.prod(dims)
    if raw is not None:
        if len(raw) != count:
            raise OIPError(400, f"input {PIXELS_INPUT!r} of shape {dims} needs {count} bytes of UINT8 binary data, got {len(raw)}")
        return np.frombuffer(raw, dtype=np.uint8).reshape(dims).copy()
    if "data" not in tensor:
        raise OIPError(400, f"input {PIXELS_INPUT!r} has no 'data' (and no binary_data_size parameter)")
    try:
        arr = np.asarray(tensor["data"])
    except ValueError:
        raise OIPError(400, f"input {PIXELS_INPUT!r}: 'data' is a ragged nested list; send it flat, in row-major order") from None
    if arr.dtype.kind not in "iu" or arr.size != count or (arr.size and (arr.min() < 0 or arr.max() > 255)):
        raise OIPError(400, f"input {PIXELS_INPUT!r} of shape {dims} needs {count} whole numbers in 0..255, got {arr.size} "
                            f"values of kind {arr.dtype.kind!r}")
    return arr.astype(np.uint8).reshape(dims)


def _onnx_batch(request: dict[str, Any], binary: bytes, clf: Any, shape: tuple[int, int, int], limits: _Limits) -> np.ndarray:
    """An exported model's uint8 (N, H, W, 3) batch from the request's one input: ``images`` (UINT8 pixels at the
    model's size, the graph's own input) or ``image`` (BYTES, encoded files, resized here)."""
    from pixlearn.io import read_image

    _, h, w = shape
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise OIPError(400, f"the inference request needs 'inputs', a non-empty list of tensors: {PIXELS_INPUT!r} (UINT8 "
                            f"[N, {h}, {w}, 3]) or {IMAGE_INPUT!r} (BYTES [N], encoded images)")
    slices = _binary_slices(inputs, binary)
    if len(inputs) != 1:
        names = [t.get("name") for t in inputs]
        raise OIPError(400, f"send exactly one input, {PIXELS_INPUT!r} or {IMAGE_INPUT!r}; got {len(inputs)}: {names}")
    tensor, raw = inputs[0], slices[0]
    name = tensor.get("name")
    if name == PIXELS_INPUT:
        return _uint8_tensor(tensor, raw, shape, limits.max_batch)
    if name == IMAGE_INPUT:
        rows = []
        for i, data in enumerate(_bytes_elements(tensor, raw, limits.max_batch)):
            try:
                rows.append(clf.to_batch([read_image(data, max_pixels=limits.max_pixels)]))
            except PixlearnError as exc:
                raise OIPError(status_for(exc), f"input {IMAGE_INPUT!r} element {i}: {exc}") from None
        return np.concatenate(rows)
    if name == TENSOR_INPUT:
        raise OIPError(400, f"this model is an exported ONNX model: it takes {PIXELS_INPUT!r} (UINT8 "
                            f"[N, {h}, {w}, 3] RGB pixels; normalisation is inside the model), not the preprocessed FP32 "
                            f"{TENSOR_INPUT!r}; or send encoded image files as the BYTES input {IMAGE_INPUT!r}")
    hint = closest(str(name), [PIXELS_INPUT, IMAGE_INPUT])
    near = f"; did you mean {hint[0]!r}?" if hint else ""
    raise OIPError(400, f"unknown input {name!r}{near} The model takes {PIXELS_INPUT!r} (UINT8) or {IMAGE_INPUT!r} (BYTES)")


def _requested_outputs(request: dict[str, Any], names: Sequence[str] = (PROBABILITIES_OUTPUT, LABELS_OUTPUT)
                       ) -> list[tuple[str, dict[str, Any]]]:
    params = request.get("parameters") or {}
    if not isinstance(params, dict):
        raise OIPError(400, "the request's 'parameters' must be a JSON object")
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise OIPError(400, f"parameter binary_data_output must be true or false, got {binary_default!r}")
    wanted = request.get("outputs")
    if wanted is None:
        return [(n, {"binary_data": binary_default}) for n in names]
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise OIPError(400, f"'outputs' must be a list of objects like {{\"name\": \"{names[0]}\"}}")
    out = []
    for o in wanted:
        name = o.get("name")
        if name not in names:
            hint = closest(str(name), list(names))
            near = f"; did you mean {hint[0]!r}?" if hint else ""
            raise OIPError(400, f"unknown output {name!r}{near} The model gives {', '.join(repr(n) for n in names)}")
        p = o.get("parameters") or {}
        if not isinstance(p, dict):
            raise OIPError(400, f"output {name!r}: 'parameters' must be a JSON object")
        if "shared_memory_region" in p:
            raise OIPError(400, "the shared-memory extension is not supported; ask for the output in the response")
        binary = p.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise OIPError(400, f"output {name!r}: binary_data must be true or false, got {binary!r}")
        opts: dict[str, Any] = {"binary_data": binary}
        if "classification" in p:
            k = p["classification"]
            if name != PROBABILITIES_OUTPUT:
                raise OIPError(400, f"the classification parameter applies to {PROBABILITIES_OUTPUT!r}, not {name!r}")
            if not isinstance(k, int) or isinstance(k, bool) or k < 1:
                raise OIPError(400, f"output {name!r}: classification must be a positive integer (the top-k count), got {k!r}")
            opts["classification"] = k
        out.append((name, opts))
    return out


# ---------------------------------------------------------------- response building
def _serialize_bytes(strings: Sequence[str]) -> bytes:
    parts = []
    for s in strings:
        b = s.encode("utf-8")
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _output(name: str, opts: dict[str, Any], probs: np.ndarray, classes: Sequence[str]) -> tuple[dict[str, Any], bytes | None]:
    n = probs.shape[0]
    if name == LABELS_OUTPUT:
        datatype, shape = "BYTES", [n]
        values: Any = [classes[int(i)] for i in probs.argmax(axis=1)] if probs.size else []
    elif "classification" in opts:
        k = min(int(opts["classification"]), probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        datatype, shape = "BYTES", [n, k]
        values = [f"{float(probs[r, j]):.6f}:{int(j)}:{classes[int(j)]}" for r in range(n) for j in order[r]]
    else:
        datatype, shape = "FP32", [n, probs.shape[1]]
        values = probs
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if opts.get("binary_data"):
        buf = _serialize_bytes(values) if datatype == "BYTES" else np.ascontiguousarray(values, dtype="<f4").tobytes()
        entry["parameters"] = {"binary_data_size": len(buf)}
        return entry, buf
    entry["data"] = values if datatype == "BYTES" else [float(v) for v in np.asarray(values, np.float32).ravel()]
    return entry, None


def _detect_params(request: dict[str, Any]) -> dict[str, Any]:
    from pixlearn.serve.routes_detect import check_detect_params

    params = request.get("parameters") or {}
    if not isinstance(params, dict):
        raise OIPError(400, "the request's 'parameters' must be a JSON object")
    try:
        return check_detect_params({k: params.get(k) for k in ("threshold", "max_detections")})
    except ApiError as exc:
        raise OIPError(exc.status, f"parameter {exc}") from None


def _detect_images(request: dict[str, Any], binary: bytes, limits: _Limits) -> list[np.ndarray]:
    from pixlearn.io import read_image

    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise OIPError(400, f"the inference request needs 'inputs', a list with one tensor: {IMAGE_INPUT!r} (BYTES [N], "
                            "encoded images)")
    slices = _binary_slices(inputs, binary)
    if len(inputs) != 1 or inputs[0].get("name") != IMAGE_INPUT:
        names = [t.get("name") for t in inputs]
        raise OIPError(400, f"a detection model takes one input, {IMAGE_INPUT!r} (BYTES [N], encoded image files); "
                            f"got {names}")
    images = []
    for i, data in enumerate(_bytes_elements(inputs[0], slices[0], limits.max_batch)):
        try:
            images.append(read_image(data, mode="RGB", max_pixels=limits.max_pixels))
        except PixlearnError as exc:
            raise OIPError(status_for(exc), f"input {IMAGE_INPUT!r} element {i}: {exc}") from None
    return images


def _detection_output(name: str, opts: dict[str, Any], columns: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    datatype, shape = DETECTION_OUTPUTS[name]
    values = columns[name]
    n = len(columns["scores"])
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [n, *shape[1:]]}
    if opts.get("binary_data"):
        if datatype == "BYTES":
            buf = _serialize_bytes(values)
        else:
            buf = np.ascontiguousarray(values, dtype="<f4" if datatype == "FP32" else "<i8").tobytes()
        entry["parameters"] = {"binary_data_size": len(buf)}
        return entry, buf
    if datatype == "BYTES":
        entry["data"] = list(values)
    elif datatype == "FP32":
        entry["data"] = [float(v) for v in np.asarray(values, np.float32).ravel()]
    else:
        entry["data"] = [int(v) for v in np.asarray(values, np.int64).ravel()]
    return entry, None


def _infer_detect(registry: Any, name: str, record: dict[str, Any], request: dict[str, Any], binary: bytes,
                  limits: _Limits, settings: Any) -> tuple[list[dict[str, Any]], list[bytes]]:
    from pixlearn.serve.routes_detect import predict_detections

    outputs = _requested_outputs(request, tuple(DETECTION_OUTPUTS))
    opts = _detect_params(request)
    images = _detect_images(request, binary, limits)
    detector = _detector(registry, name, record, settings)
    try:
        found = predict_detections(detector, images, opts)
    except ApiError as exc:  # an exported detector's threshold floor
        raise OIPError(exc.status, f"parameter {exc}") from None
    columns = {
        "boxes": np.concatenate([d.boxes for d in found]).reshape(-1, 4) if found else np.zeros((0, 4), np.float32),
        "scores": np.concatenate([d.scores for d in found]) if found else np.zeros(0, np.float32),
        "labels": np.concatenate([d.labels for d in found]) if found else np.zeros(0, np.int64),
        "image_index": np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(found)]) if found
        else np.zeros(0, np.int64),
    }
    columns["class_names"] = [str(detector.class_names[int(i)]) for i in columns["labels"]]
    entries, buffers = [], []
    for out_name, o in outputs:
        entry, buf = _detection_output(out_name, o, columns)
        entries.append(entry)
        if buf is not None:
            buffers.append(buf)
    return entries, buffers


def _respond(name: str, request_id: Any, entries: list[dict[str, Any]], buffers: list[bytes]) -> Response:
    response: dict[str, Any] = {"model_name": name, "model_version": MODEL_VERSION}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = entries
    head = json.dumps(response, separators=(",", ":")).encode("utf-8")
    if not any(e.get("parameters", {}).get("binary_data_size") is not None for e in entries):
        return Response(head, media_type="application/json")
    return Response(head + b"".join(buffers), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(head))})


def _infer(registry: Any, name: str, version: str | None, body: bytes, header_length: str | None, limits: _Limits,
           settings: Any = None) -> Response:
    record = _record(registry, name, version)
    request, binary = _split_body(body, header_length)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise OIPError(400, f"the request 'id' must be a string, got {request_id!r}")
    if record.get("task") == "detect":
        entries, buffers = _infer_detect(registry, name, record, request, binary, limits, settings)
        return _respond(name, request_id, entries, buffers)
    outputs = _requested_outputs(request)
    clf, shape = _classifier(registry, name, record)
    if getattr(clf, "backend", None) == "onnxruntime":
        probs = clf.probabilities(_onnx_batch(request, binary, clf, shape, limits)).astype(np.float32, copy=False)
    else:
        batch = _input_batch(request, binary, clf, shape, limits)
        probs = clf.predict_proba(batch).numpy().astype(np.float32, copy=False)
    classes = [str(c) for c in clf.classes]
    response: dict[str, Any] = {"model_name": name, "model_version": MODEL_VERSION}
    if request_id is not None:
        response["id"] = request_id
    entries, buffers = [], []
    for out_name, opts in outputs:
        entry, buf = _output(out_name, opts, probs, classes)
        entries.append(entry)
        if buf is not None:
            buffers.append(buf)
    response["outputs"] = entries
    head = json.dumps(response, separators=(",", ":")).encode("utf-8")
    if not any(e.get("parameters", {}).get("binary_data_size") is not None for e in entries):
        return Response(head, media_type="application/json")
    return Response(
        head + b"".join(buffers),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(head))},
    )


async def _guard(call: Any, *args: Any) -> Response:
    """Run a blocking handler in a worker thread; protocol errors become ``{"error": ...}``."""
    try:
        return await run_blocking(call, *args)
    except OIPError as exc:
        return _error(exc.status, exc.message)
    except PixlearnError as exc:
        return _error(status_for(exc), str(exc))


# ---------------------------------------------------------------- routes
@router.get("/v2", summary="OIP server metadata")
def server_metadata() -> dict[str, Any]:
    """Server name, version and the protocol extensions it implements."""
    from pixlearn import __version__

    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


@router.get("/v2/health/live", summary="OIP server live")
def server_live() -> dict[str, bool]:
    """200 while the process answers requests."""
    return {"live": True}


@router.get("/v2/health/ready", summary="OIP server ready")
def server_ready(request: Request) -> Response:
    """200 once start-up finished (the model registry is open), 503 before and while shutting down."""
    state = request.app.state
    if getattr(state, "registry", None) is None or not getattr(state, "ready", True):
        return _error(503, "the server is still starting (no model registry yet); retry in a moment")
    return JSONResponse({"ready": True})


def _model_metadata(request: Request, name: str, version: str | None) -> Response:
    registry = _registry(request)
    record = _record(registry, name, version)
    if record.get("task") == "detect":
        detector = _detector(registry, name, record, getattr(request.app.state, "settings", None))
        return JSONResponse(_detector_metadata(name, record, detector))
    clf, shape = _classifier(registry, name, record)
    return JSONResponse(_metadata(name, record, clf, shape))


def _model_ready(request: Request, name: str, version: str | None) -> Response:
    registry = _registry(request)
    record = _record(registry, name, version)
    try:
        if record.get("task") == "detect":
            _detector(registry, name, record, getattr(request.app.state, "settings", None))
        else:
            _classifier(registry, name, record)
    except OIPError as exc:
        if exc.status == 404:
            raise
        return _error(503 if exc.status == 503 else 400, exc.message)
    except PixlearnError as exc:
        return _error(503, f"model {name!r} is registered but cannot be loaded: {exc}")
    return JSONResponse({"name": name, "ready": True})


@router.get("/v2/models/{model_name}", summary="OIP model metadata")
async def model_metadata(model_name: str, request: Request) -> Response:
    """Inputs (``input`` FP32 [N, C, H, W] preprocessed, or ``image`` BYTES [N] encoded files), outputs,
    classes and preprocessing of a registered model."""
    return await _guard(_model_metadata, request, model_name, None)


@router.get("/v2/models/{model_name}/versions/{model_version}", summary="OIP model metadata (version)")
async def model_version_metadata(model_name: str, model_version: str, request: Request) -> Response:
    """The model metadata; the only version is ``1``."""
    return await _guard(_model_metadata, request, model_name, model_version)


@router.get("/v2/models/{model_name}/ready", summary="OIP model ready")
async def model_ready(model_name: str, request: Request) -> Response:
    """200 when the model is registered and loads; 404 for an unknown model."""
    return await _guard(_model_ready, request, model_name, None)


@router.get("/v2/models/{model_name}/versions/{model_version}/ready", summary="OIP model ready (version)")
async def model_version_ready(model_name: str, model_version: str, request: Request) -> Response:
    """Model readiness; the only version is ``1``."""
    return await _guard(_model_ready, request, model_name, model_version)


_INFER_OPENAPI = {
    "requestBody": {
        "description": (
            "An OIP inference request JSON object, optionally followed by binary tensor data (then the "
            f"{HEADER_LENGTH} header gives the JSON length)."
        ),
        "content": {
            "application/json": {
                "example": {
                    "id": "42",
                    "inputs": [{"name": IMAGE_INPUT, "shape": [1], "datatype": "BYTES", "data": ["<base64 PNG or JPEG>"]}],
                    "outputs": [{"name": PROBABILITIES_OUTPUT}, {"name": LABELS_OUTPUT}],
                }
            }
        },
    }
}


async def _infer_route(request: Request, name: str, version: str | None) -> Response:
    try:
        registry = _registry(request)
        limits = _limits(request)
        raw = await request.body()
        # inflating up to max_body bytes is CPU work: off the event loop
        body = await run_blocking(_decompress, raw, request.headers.get("content-encoding"), limits.max_body)
    except OIPError as exc:
        return _error(exc.status, exc.message)
    return await _guard(_infer, registry, name, version, body, request.headers.get(HEADER_LENGTH), limits,
                        getattr(request.app.state, "settings", None))


@router.post("/v2/models/{model_name}/infer", summary="OIP inference", openapi_extra=_INFER_OPENAPI)
async def model_infer(model_name: str, request: Request) -> Response:
    """Classify a batch: ``input`` FP32 [N, C, H, W] (preprocessed; an exported ONNX model takes ``images`` UINT8
    [N, H, W, 3] instead) or ``image`` BYTES [N] (encoded files, base64 in JSON); returns ``probabilities`` FP32
    [N, n_classes] and ``labels`` BYTES [N]."""
    return await _infer_route(request, model_name, None)


@router.post("/v2/models/{model_name}/versions/{model_version}/infer", summary="OIP inference (version)", openapi_extra=_INFER_OPENAPI)
async def model_version_infer(model_name: str, model_version: str, request: Request) -> Response:
    """Inference on version ``1`` of the model (the only one)."""
    return await _infer_route(request, model_name, model_version)
