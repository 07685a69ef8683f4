"""``POST /v1/classify``: images (uploads and/or a zip) through one or several registered classifiers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from pixlearn._core.errors import PixlearnError
from pixlearn.serve.deps import get_registry, get_settings, run_blocking
from pixlearn.serve.errors import ApiError
from pixlearn.serve.inputs import Decoded, decode_bytes, iter_zip_images
from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.routes_analyze import parse_names
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "classify_images"]

router = APIRouter(tags=["classify"])

_BATCH = 32


def classify_images(items: list[Decoded], *, models: list[str], top_k: int, threshold: float,
                    registry: ModelRegistry) -> list[dict[str, Any]]:
    """One result per item: per model the ``top_k`` classes scoring at least ``threshold``, or the item's error."""
    good = [i for i, d in enumerate(items) if d.error is None]
    per_model: dict[str, list[list[dict[str, Any]]]] = {}
    for name in models:
        clf = registry.load(name)
        rows: list[list[dict[str, Any]]] = []
        for start in range(0, len(good), _BATCH):
            batch = [items[i].image for i in good[start:start + _BATCH]]
            rows.extend(r["top_k"] for r in clf.predict(batch, top_k=top_k))
        per_model[name] = rows
    results: list[dict[str, Any]] = []
    slot = {i: n for n, i in enumerate(good)}
    for i, item in enumerate(items):
        if item.error is not None:
            results.append({"image": item.name, "error": item.error})
            continue
        results.append({"image": item.name, "models": {
            name: [e for e in per_model[name][slot[i]] if e["score"] >= threshold] for name in models}})
    return results


def _number(value: Any, *, name: str, kind: type, low: float, high: float, default: Any) -> Any:
    if value is None or value == "":
        return default
    try:
        n = kind(value)
    except (TypeError, ValueError):
        raise ApiError(f"{name}={value!r} is not a {'number' if kind is float else 'whole number'}; use {low:g}..{high:g}",
                       status=400) from None
    if not low <= n <= high:
        raise ApiError(f"{name}={value} is out of range; use {low:g}..{high:g}", status=400)
    return n


@router.post("/v1/classify", summary="Classify images (uploads and/or a zip) with one or more models")
async def classify(
    request: Request,
    files: Annotated[list[UploadFile] | None, File(description="One or more images.")] = None,
    images: Annotated[list[UploadFile] | None, File(description="Alias of `files`.")] = None,
    archive: Annotated[UploadFile | None, File(description="A zip of images (at most max_archive_images).")] = None,
    model: Annotated[list[str] | None, Form(description="Model names (repeat the field, or a comma list); "
                                                        "default: every registered model.")] = None,
    threshold: Annotated[str | None, Form(description="Drop classes scoring below this (0..1, default 0).")] = None,
    top_k: Annotated[str | None, Form(description="Classes per image and model, best first (default 5).")] = None,
    registry: ModelRegistry = Depends(get_registry),
    settings: ServeSettings = Depends(get_settings),
) -> dict[str, Any]:
    """``{"results": [{"image": "<file name>", "models": {"<model>": [{"label", "score"}, ...]}} |
    {"image": "<file name>", "error": "..."}]}``; one unreadable image gives an error entry, not a failed request.

    ``model``, ``threshold`` and ``top_k`` may also be query parameters.
    """
    query = request.query_params
    names = parse_names(model or query.getlist("model") or query.getlist("models") or None)
    thr = _number(threshold if threshold is not None else query.get("threshold"), name="threshold", kind=float,
                  low=0.0, high=1.0, default=0.0)
    k = _number(top_k if top_k is not None else query.get("top_k"), name="top_k", kind=int, low=1, high=1000, default=5)
    registered = await run_blocking(registry.names, task="classify")
    if not registered and not names:
        raise ApiError("no model is registered as a classifier; train one (POST /v1/trainings) or start the server with "
                       "--model RUN_DIR", status=400)
    names = names or registered
    for name in names:
        record = await run_blocking(registry.get, name)  # 404 with the closest names, before reading any image
        if record.get("task", "classify") != "classify":
            raise ApiError(f"model {name!r} is a {record['task']} model, not a classifier; detect objects with it "
                           "through POST /v1/detect", status=400)
    uploads = [f for f in [*(files or []), *(images or [])] if f is not None]
    if not uploads and archive is None:
        raise ApiError("no images: send them in the multipart field 'files' (repeat it) and/or a zip in 'archive'",
                       status=400)
    limit = settings.max_archive_images
    if len(uploads) > limit:
        raise ApiError(f"{len(uploads)} images in one request, over the limit of {limit}; send fewer", status=413)
    blobs = [(u.filename or f"file{i}", await u.read()) for i, u in enumerate(uploads)]
    zip_blob = (archive.filename or "archive.zip", await archive.read()) if archive is not None else None

    def work() -> list[dict[str, Any]]:
        items: list[Decoded] = []
        for fname, data in blobs:
            try:
                items.append(Decoded(fname, decode_bytes(data, name=fname, max_pixels=settings.max_pixels)))
            except PixlearnError as exc:
                items.append(Decoded(fname, error=str(exc)))
        if zip_blob is not None:
            items.extend(iter_zip_images(zip_blob[1], name=zip_blob[0], max_images=limit - len(blobs),
                                         max_total_bytes=int(settings.max_archive_mb * 1024 * 1024),
                                         max_ratio=settings.max_archive_ratio, max_pixels=settings.max_pixels))
        return classify_images(items, models=names, top_k=k, threshold=thr, registry=registry)

    return {"results": await run_blocking(work)}
