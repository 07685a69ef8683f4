"""``/v1/ops`` (list), ``/v1/ops/{op}`` (one classical op on an upload) and ``/v1/process`` (a recipe)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from pixlearn._core.errors import UnknownNameError
from pixlearn._core.names import check_name
from pixlearn.serve.deps import get_settings, run_blocking, run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.inputs import decode_bytes
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "to_jsonable", "pick_upload"]

router = APIRouter(tags=["ops"])

_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff", "bmp": "image/bmp"}
_PNG_DESCRIPTION = {"content": {"image/png": {}, "application/json": {}},
                    "description": "PNG for an image result (JSON with `format=json`); JSON for data results"}


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for an op's data result (numpy arrays and scalars included)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def pick_upload(file: UploadFile | None, image: UploadFile | None, *, what: str = "file") -> UploadFile:
    """The upload from the ``file`` field (``image`` is accepted too)."""
    upload = file or image
    if upload is None:
        raise ApiError(f"no image: send it as multipart/form-data in the '{what}' field "
                       f"(e.g. curl -F {what}=@photo.jpg)", status=400)
    return upload


def _guard_size(op: str, options: dict[str, Any], shape: tuple[int, ...], limit: int) -> None:
    """Refuse geometry options whose output would exceed the pixel limit (before allocating it)."""
    h, w = int(shape[0]), int(shape[1])
    if op == "resize" and options.get("size"):
        oh, ow = options["size"]
    elif op == "pad":
        oh = h + int(options.get("top", 0)) + int(options.get("bottom", 0))
        ow = w + int(options.get("left", 0)) + int(options.get("right", 0))
    elif op == "rotate" and options.get("expand"):
        oh = ow = int((h * h + w * w) ** 0.5) + 1
    else:
        return
    if int(oh) * int(ow) > limit:
        raise ApiError(f"op '{op}' would make a {int(oh)}x{int(ow)} image, over the limit of {limit:,} pixels; "
                       "ask for a smaller output", status=413)


def _image_response(result: np.ndarray, *, fmt: str, want_json: bool, quality: int = 95) -> Response:
    from pixlearn.io import encode_image

    fmt = {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)
    data = encode_image(result, fmt, quality=quality)
    if want_json:
        return JSONResponse({"width": int(result.shape[1]), "height": int(result.shape[0]),
                             "format": fmt, "png_b64" if fmt == "png" else "image_b64": base64.b64encode(data).decode()})
    return Response(data, media_type=_MEDIA.get(fmt, "application/octet-stream"))


def _check_format(format: str | None) -> bool:
    if format is None or format in ("", "image", "png"):
        return False
    if format == "json":
        return True
    raise ApiError(f"format={format!r} is not valid; use format=json for JSON with base64 PNG, or leave it out "
                   "for the image itself", status=400)


@router.get("/v1/ops", summary="List the classical ops with their options")
def list_ops_route() -> dict[str, Any]:
    """``{"ops": [{"name", "group", "doc", "returns", "options": {name: {"type", "default", "range", "min", "max"}}}]}``.

    ``doc`` is plain text; ``range`` is the documented range of a numeric option (e.g. ``(0, 100]``), checked
    before any work: a value outside it is a 400 naming the option, the range and the fix.
    """
    from pixlearn.ops import list_ops

    ops = []
    for spec in list_ops():
        ops.append({
            "name": spec.name,
            "group": spec.category,
            "doc": spec.summary,
            "returns": spec.returns,
            "options": {o["name"]: {k: jsonable_encoder(v) for k, v in o.items() if k != "name"}
                        for o in spec.describe_options()},
        })
    return {"ops": ops}


@router.post("/v1/ops/{op}", summary="Run one classical op on an uploaded image", responses={200: _PNG_DESCRIPTION})
async def run_op(
    op: str,
    request: Request,
    file: Annotated[UploadFile | None, File(description="The image (JPEG, PNG, WebP, TIFF, BMP, GIF).")] = None,
    image: Annotated[UploadFile | None, File(description="Alias of `file`.")] = None,
    format: Annotated[str | None, Query(description="`json`: {width, height, png_b64} instead of the PNG.")] = None,
    settings: ServeSettings = Depends(get_settings),
) -> Response:
    """The op's options are query parameters (``?sigma=2``, ``?size=64,64``), checked before the image is read.

    An image (or mask) result comes back as ``image/png``; ops that return data (``dominant_colors``,
    ``quality``) answer JSON. Unknown op: 404 naming the closest ops.
    """
    from pixlearn.ops import get_op

    spec = get_op(op)  # UnknownNameError -> 404 with the closest names
    raw = {k: v for k, v in request.query_params.items() if k != "format"}
    try:
        options = spec.validate(raw, where=f"op '{op}'")
    except UnknownNameError as exc:  # an unknown option is a bad parameter (400); only an unknown op is a 404
        raise ApiError(str(exc), status=400) from None
    want_json = _check_format(format)
    upload = pick_upload(file, image)
    data = await upload.read()
    name = upload.filename or "file"

    def work() -> Any:
        img = decode_bytes(data, name=name, max_pixels=settings.max_pixels)
        _guard_size(op, options, img.shape, settings.max_pixels)
        return spec(img, **options)

    result = await run_cpu(work)  # in a worker process, killed at the deadline
    if isinstance(result, np.ndarray):
        return await run_blocking(_image_response, result, fmt="png", want_json=want_json)
    return JSONResponse(to_jsonable(result))


def _load_recipe(text: str):
    from pixlearn.ops.recipe import Recipe, builtin_recipes

    text = (text or "").strip()
    if not text:
        raise ApiError("recipe is empty; send YAML (steps: [gaussian: {sigma: 1.5}, canny]) or a built-in recipe "
                       "name", status=400)
    builtins = builtin_recipes()
    if text in builtins:
        return Recipe.load(text)
    if "\n" not in text and ":" not in text and "[" not in text and "-" not in text[:1]:
        try:  # a single word: the name of a built-in recipe (never a server path)
            check_name(text, list(builtins), what="built-in recipe")
        except UnknownNameError as exc:
            raise ApiError(f"{exc}; or send the recipe itself as YAML", status=400) from None
    try:
        return Recipe.from_yaml(text, source="recipe")
    except UnknownNameError as exc:  # an unknown op or option inside the recipe: the form field is wrong (400)
        raise ApiError(str(exc), status=400) from None


@router.post("/v1/process", summary="Run a recipe (YAML, or a built-in recipe's name) on an uploaded image",
             responses={200: _PNG_DESCRIPTION})
async def process(
    recipe: Annotated[str, Form(description="YAML text (`steps: [gaussian: {sigma: 1.5}, canny]`) or a built-in "
                                            "name: edges, enhance, thumbnail, colors, quality.")],
    file: Annotated[UploadFile | None, File(description="The image.")] = None,
    image: Annotated[UploadFile | None, File(description="Alias of `file`.")] = None,
    format: Annotated[str | None, Query(description="`json`: {width, height, png_b64} instead of the image.")] = None,
    settings: ServeSettings = Depends(get_settings),
) -> Response:
    """The recipe is validated (unknown op or option: 400 with the closest name) before the image is read.

    The result is encoded as the recipe's ``output.format`` (PNG by default) or JSON for data results.
    """
    from pixlearn.ops import get_op

    rec = await run_blocking(_load_recipe, recipe)  # parsing user YAML: off the event loop, within limits
    want_json = _check_format(format)
    upload = pick_upload(file, image)
    data = await upload.read()
    name = upload.filename or "file"

    def work() -> Any:
        out: Any = decode_bytes(data, name=name, max_pixels=settings.max_pixels)
        for step in rec.steps:  # Recipe.__call__'s loop, with the pixel guard before each step
            if isinstance(out, np.ndarray):
                _guard_size(step.op, dict(step.options), out.shape, settings.max_pixels)
            out = get_op(step.op)(out, **step.options)  # checks the image-relative bounds first
        return out

    result = await run_cpu(work)  # in a worker process, killed at the deadline
    if isinstance(result, np.ndarray):
        fmt = rec.output.format if rec.output.format not in ("same",) else "png"
        if want_json:
            fmt = "png"
        return await run_blocking(_image_response, result, fmt=fmt, want_json=want_json, quality=rec.output.quality)
    return JSONResponse(to_jsonable(result))

