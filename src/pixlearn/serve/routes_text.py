"""``POST /v1/text``: the text in one image, line by line in reading order (PP-OCR through :mod:`pixlearn.tasks.ocr`).

The image comes as for /v1/analyze (multipart ``file``, JSON ``image.b64``, the raw body). Options:
``min_confidence`` (0..1, default 0.5: pieces read less surely are dropped), ``rotation`` (``auto``: the 180° direction
classifier on each piece, the default; ``none``: off; ``any``: also try the whole image turned by 90, 180 and 270
degrees and keep the reading with the most confident text, four times the work) and ``max_side`` (64..8192, default
2000: a larger image is scaled down for text detection). The bundled models read Chinese and English.

Reading runs in the worker processes (killed at a request's deadline), each loading the models once with one
onnxruntime thread (the processes are the parallelism).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from pixlearn._core.errors import WeightsNotFoundError
from pixlearn.serve.deps import run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "check_text_params", "read_lines", "ROTATIONS"]

router = APIRouter(tags=["text"])

ROTATIONS = ("auto", "none", "any")

_OPENAPI = {
    "parameters": [
        {"name": "min_confidence", "in": "query", "required": False,
         "schema": {"type": "number", "default": 0.5, "minimum": 0, "maximum": 1},
         "description": "Drop pieces of text read with a lower confidence."},
        {"name": "rotation", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(ROTATIONS), "default": "auto"},
         "description": "auto: upside-down pieces are turned (direction classifier); none: off; any: also try the "
                        "image turned by 90, 180, 270 degrees (4x the work)."},
        {"name": "max_side", "in": "query", "required": False,
         "schema": {"type": "integer", "default": 2000, "minimum": 64, "maximum": 8192}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, "min_confidence": {"type": "number"},
                               "rotation": {"type": "string"}, "max_side": {"type": "integer"}}}},
            "application/json": {"schema": {
                "type": "object", "required": ["image"],
                "properties": {"image": {"type": "object", "properties": {"b64": {"type": "string"}}},
                               "min_confidence": {"type": "number"}, "rotation": {"type": "string"},
                               "max_side": {"type": "integer"}}},
                "example": {"image": {"b64": "<base64 of the file>"}, "min_confidence": 0.6}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}


def check_text_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``min_confidence`` (0..1, default 0.5), ``rotation`` (auto | none | any) and ``max_side`` (64..8192, default
    2000) checked; 400 naming the field.

    >>> check_text_params({"min_confidence": "0.8"})
    {'min_confidence': 0.8, 'rotation': 'auto', 'max_side': 2000}
    >>> check_text_params({"min_confidence": 2})
    Traceback (most recent call last):
    ...
    pixlearn.serve.errors.ApiError: min_confidence=2 is out of range; use 0..1
    """
    from pixlearn.serve.routes_detect import _number

    rotation = params.get("rotation") or "auto"
    if rotation not in ROTATIONS:
        raise ApiError(f"rotation={str(rotation)[:20]!r}: use auto (turn upside-down pieces), none, or any (also try "
                       "the image turned by 90, 180 and 270 degrees)", status=400)
    return {"min_confidence": _number(params.get("min_confidence"), name="min_confidence", low=0.0, high=1.0,
                                      integer=False, default=0.5),
            "rotation": rotation,
            "max_side": _number(params.get("max_side"), name="max_side", low=64, high=8192, integer=True, default=2000)}


def read_lines(image: np.ndarray, opts: Mapping[str, Any]) -> dict[str, Any]:
    """``{"lines": [{"text", "confidence", "line", "quad", "box"}], "text", "rotation"}`` of one RGB image (in a worker
    process: one onnxruntime thread); through the task registry's ``ocr`` tool."""
    from pixlearn.tasks.registry import tool

    ocr = tool("ocr")
    read_oriented, get_engine = ocr.load("read_oriented"), ocr.load("engine")
    lines, angle = read_oriented(image, min_confidence=opts["min_confidence"], rotation=opts["rotation"],
                                 max_side=opts["max_side"], engine=get_engine(threads=1))
    rows = [t.to_dict() for t in lines]
    by_line: dict[int, list[str]] = {}
    for r in rows:
        by_line.setdefault(r["line"], []).append(r["text"])
    return {"lines": rows, "text": "\n".join(" ".join(v) for _, v in sorted(by_line.items())), "rotation": angle}


def _text_work(kind: str, payload: Any, name: str, settings: ServeSettings, opts: dict[str, Any]) -> dict[str, Any]:
    from pixlearn.serve.routes_detect import _decode

    t = time.perf_counter()
    image = _decode(kind, payload, name, settings)
    decode_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    out = read_lines(image, opts)
    out["image"] = {"width": int(image.shape[1]), "height": int(image.shape[0])}
    out["timings_ms"] = {"decode": round(decode_ms, 2), "text": round((time.perf_counter() - t) * 1e3, 2)}
    return out


@router.post("/v1/text", summary="The text in one image: quadrilaterals, strings and confidences in reading order",
             openapi_extra=_OPENAPI)
async def read_text_route(request: Request) -> dict[str, Any]:
    """``{"lines": [{"text", "confidence", "line", "quad": [[x, y] x 4], "box": [x0, y0, x1, y1]}], "text", "image",
    "timings_ms"}``: pieces top to bottom, left to right within a line (``line`` numbers the lines from 0); ``quad``
    clockwise from the top-left corner, in the image's own pixels; ``text`` joins the pieces, one line of text per
    line; ``rotation``: how far (degrees, clockwise) the text stood turned (0 unless ``rotation=any``)."""
    from pixlearn.serve.routes_analyze import read_image_request

    t0 = time.perf_counter()
    settings: ServeSettings = request.app.state.settings
    params, (kind, payload, name) = await read_image_request(request, keys=("min_confidence", "rotation", "max_side"))
    opts = check_text_params(params)
    try:
        result = await run_cpu(_text_work, kind, payload, name, settings, opts)
    except (WeightsNotFoundError, ModuleNotFoundError) as exc:
        raise ApiError(f"reading text is not available on this server: {exc}", status=503) from None
    timings = {**result.pop("timings_ms"), "total": round((time.perf_counter() - t0) * 1e3, 2)}
    return {**result, "timings_ms": timings}
