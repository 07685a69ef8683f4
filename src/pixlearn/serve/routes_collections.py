"""Collections (search by image, Watson v4 style): named sets of images with one search index each.

- ``POST /v1/collections`` ``{"name", "model"}``: a new, empty collection. ``model`` is ``phash`` (64-bit
  perceptual hashes: near-duplicates, no weights), a registered classification model (its pooled features), or a
  pretrained timm name whose weights are in the local weights folders (``pixlearn weights add``); nothing is
  downloaded.
- ``GET /v1/collections``, ``GET /v1/collections/{id}``, ``DELETE /v1/collections/{id}`` (its images and index go),
  ``DELETE /v1/collections/{id}/images/{image_id}`` (one image leaves the index and the folder).
- ``POST /v1/collections/{id}/images``: images as multipart ``files`` (repeat the field) and/or a zip in
  ``archive``. Each image is decoded (a bad one is that file's error; the others are added), stored under the
  collection as ``<image_id>.jpg`` (a generated name, never the client's) with a thumbnail, and embedded into the
  index; an image already in the collection (same pixels) is skipped.
- ``POST /v1/collections/{id}/search``: one image and ``top_k`` (1..100) -> the nearest images, each with its
  ``image_id``, ``score`` and the ``url`` of its thumbnail, ``GET /v1/collections/{id}/images/{image_id}``
  (``?size=full`` for the stored image).

On disk (``<storage>/collections/<id>/``): ``images/``, ``thumbs/`` and ``index-<generation>/`` (a
:mod:`pixlearn.search` index folder). An add writes a new generation's folder next to the current one and the
database row then points at it in one transaction, so a request stopped at its deadline (or a crash) leaves the
previous index whole; adds to one collection are serialised by a lock, so none is lost. Decoding, hashing and
FAISS run in the worker processes (:func:`~pixlearn.serve.workers.run_cpu`); a torch embedder (a registered model
or a pretrained name) runs in a thread, loaded once, as the classifiers do.

The service has no notion of users: any valid API key sees every collection.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, delete, func, insert, select, update

from pixlearn._core.errors import ConfigError, PixlearnError, UnknownNameError, WeightsNotFoundError
from pixlearn.serve.db import metadata
from pixlearn.serve.deps import run_blocking, run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "collections_table", "collection_images_table", "MAX_COLLECTIONS", "MAX_COLLECTION_IMAGES",
           "MAX_TOP_K", "THUMB_SIDE", "collection_dir"]

router = APIRouter(tags=["collections"])

#: Collections one server holds.
MAX_COLLECTIONS = 1000
#: Images one collection holds.
MAX_COLLECTION_IMAGES = 100_000
#: The most results one search returns.
MAX_TOP_K = 100
DEFAULT_TOP_K = 10
#: The longest side of a stored thumbnail (pixels).
THUMB_SIDE = 256
#: Longest collection name (characters).
MAX_NAME = 100

_ID = re.compile(r"^[0-9a-f]{32}$")
_IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")

collections_table = Table(
    "collections",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("model", String(256), nullable=False),  # what the client asked for: phash, a model name, a timm name
    Column("kind", String(16), nullable=False),  # phash | registered | pretrained
    Column("spec", JSON, nullable=False),  # what load_embedder takes (a run folder for a registered model)
    Column("created", String(40), nullable=False),
    Column("count", Integer, nullable=False, default=0),
    Column("generation", Integer, nullable=False, default=0),  # the index-<generation> folder in use (0: empty)
)

collection_images_table = Table(
    "collection_images",
    metadata,
    Column("collection_id", String(32), ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True),
    Column("image_id", String(16), primary_key=True),
    Column("filename", String(256), nullable=False),
    Column("created", String(40), nullable=False),
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def collection_dir(settings: ServeSettings, collection_id: str) -> Path:
    """``<storage>/collections/<id>`` (``collection_id`` must already be checked)."""
    return Path(settings.storage) / "collections" / collection_id


# ---------------------------------------------------------------- records
def _public(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "model": row["model"], "kind": row["kind"],
            "created": row["created"], "count": int(row["count"])}


def _check_id(collection_id: str) -> str:
    if not isinstance(collection_id, str) or not _ID.match(collection_id):
        raise ApiError(f"no collection {collection_id[:40]!r}: collection ids are 32 hex digits, as POST "
                       "/v1/collections returned them (GET /v1/collections lists them)", status=404)
    return collection_id


def _row(engine: Any, collection_id: str) -> dict[str, Any]:
    _check_id(collection_id)
    with engine.connect() as conn:
        row = conn.execute(select(collections_table).where(collections_table.c.id == collection_id)).mappings().first()
    if row is None:
        raise ApiError(f"no collection {collection_id!r}; GET /v1/collections lists them", status=404)
    return dict(row)


def _list(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(collections_table).order_by(collections_table.c.created,
                                                               collections_table.c.name)).mappings().all()
    return [_public(r) for r in rows]


def _text_field(value: Any, *, name: str, limit: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ApiError(f"{name} is required (text, 1..{limit} characters)", status=400)
    if not isinstance(value, str):
        raise ApiError(f"{name} must be text, got {type(value).__name__}", status=400)
    value = value.strip()
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ApiError(f"{name} must be 1..{limit} printable characters, got {len(value)} characters", status=400)
    return value


def resolve_model(model: str, registry: Any) -> tuple[str, dict[str, Any] | str]:
    """``(kind, spec)`` for a collection's ``model``: ``phash``; a registered classification model (its run folder);
    or a pretrained timm name with local weights. 400 naming the fix otherwise."""
    if model == "phash":
        return "phash", "phash"
    record = registry.get_or_none(model)
    if record is not None:
        if record.get("task", "classify") != "classify":
            raise ApiError(f"model {model!r} is a {record['task']} model; a collection embeds images with a "
                           "classification model, a pretrained name or phash", status=400)
        if record.get("backend", "torch") != "torch":
            raise ApiError(f"model {model!r} is an exported (onnxruntime) classifier; a collection embeds with a torch "
                           "run (register the run it was exported from), a pretrained name or phash", status=400)
        return "registered", str(record["run_dir"])
    from pixlearn.models.registry import check_model_name, find_pretrained
    from pixlearn.models.weights import split_name_tag

    try:
        check_model_name(split_name_tag(model)[0])
    except UnknownNameError:
        registered = registry.names(task="classify")
        raise ApiError(f"model {model!r} is not phash, a registered classification model "
                       f"({', '.join(map(repr, registered)) or 'none registered'}) or a pretrained model name; "
                       "use model=phash for near-duplicates", status=400) from None
    if find_pretrained(model) is None:
        raise ApiError(f"model {model!r}: no local weights file on the server (the service never downloads); add one "
                       f"with: pixlearn weights add FILE --model {split_name_tag(model)[0]}, or use model=phash",
                       status=400)
    return "pretrained", model


# ---------------------------------------------------------------- embedders and loaded indexes
_cache_lock = threading.Lock()
_embedders: dict[str, Any] = {}
_indexes: OrderedDict[str, Any] = OrderedDict()
_INDEX_CACHE = 8


def _embedder(spec: str) -> Any:
    """The embedder of ``spec`` (phash, a run folder or a timm name), built once per process."""
    from pixlearn.search import load_embedder

    with _cache_lock:
        emb = _embedders.get(spec)
    if emb is None:
        emb = load_embedder(spec)
        with _cache_lock:
            emb = _embedders.setdefault(spec, emb)
    return emb


def _open_index(folder: Path, embedder: Any) -> Any:
    """The index saved in ``folder`` (a generation folder is never rewritten, so its path is its identity)."""
    from pixlearn.search import Index

    key = str(folder)
    with _cache_lock:
        index = _indexes.get(key)
        if index is not None:
            _indexes.move_to_end(key)
            return index
    index = Index.load(folder, embedder=embedder)
    with _cache_lock:
        _indexes[key] = index
        while len(_indexes) > _INDEX_CACHE:
            _indexes.popitem(last=False)
    return index


def _hidden(exc: Exception, settings: ServeSettings, model: str, spec: str) -> str:
    """``exc``'s message without server paths: a registered model's run folder by the model's name."""
    from pixlearn.serve.security import hide_paths

    text = str(exc)
    if spec and spec != model:
        text = text.replace(spec, f"<{model}>")
    return hide_paths(text, settings.storage)


def _unavailable(exc: Exception, settings: ServeSettings, model: str, spec: str) -> ApiError:
    return ApiError(f"the collection's model {model!r} cannot be loaded: {_hidden(exc, settings, model, spec)}; "
                    "restore it or create the collection again with another model", status=503)


# ---------------------------------------------------------------- the work (worker process, or a thread for torch)
def _thumbnail(image: Any) -> Any:
    import cv2

    h, w = image.shape[:2]
    scale = THUMB_SIDE / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def add_images(folder: Path, generation: int, spec: str, blobs: list[tuple[str, bytes]],
               zip_blob: tuple[str, bytes] | None, *, max_images: int, room: int, max_pixels: int,
               max_zip_bytes: int, max_ratio: float, embedder: Any = None) -> dict[str, Any]:
    """Decode, store and index the images of one request; the new generation's index is saved next to the old.

    Returns ``{"added": [{"image_id", "filename"}], "skipped": [...], "errors": [...], "generation", "count"}``;
    ``generation`` is unchanged when nothing was added. ``room``: how many more images the collection may hold.
    """
    from pixlearn.io import encode_image
    from pixlearn.search import Index
    from pixlearn.serve.inputs import Decoded, decode_bytes, iter_zip_images

    items: list[Decoded] = []
    for fname, data in blobs:
        try:
            items.append(Decoded(fname, decode_bytes(data, name=fname, max_pixels=max_pixels)))
        except PixlearnError as exc:
            items.append(Decoded(fname, error=str(exc)))
    if zip_blob is not None:
        items.extend(iter_zip_images(zip_blob[1], name=zip_blob[0], max_images=max_images - len(blobs),
                                     max_total_bytes=max_zip_bytes, max_ratio=max_ratio, max_pixels=max_pixels))
    emb = embedder if embedder is not None else _embedder(spec)
    current = folder / f"index-{generation}"
    index = Index.load(current, embedder=emb) if generation else Index(emb)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    errors = [{"filename": d.name, "error": d.error} for d in items if d.error is not None]
    good = [d for d in items if d.error is None]
    if len(good) > room:
        for d in good[room:]:
            errors.append({"filename": d.name, "error": f"the collection is full ({MAX_COLLECTION_IMAGES} images); "
                                                        "delete it or create another one"})
        good = good[:room]
    staged: dict[str, tuple[str, str]] = {}  # path -> (image id, client's file name)
    for d in good:
        image_id = secrets.token_hex(8)
        path = folder / "images" / f"{image_id}.jpg"
        path.write_bytes(encode_image(d.image, "jpg", quality=95))
        (folder / "thumbs" / f"{image_id}.jpg").write_bytes(encode_image(_thumbnail(d.image), "jpg", quality=85))
        staged[str(path)] = (image_id, d.name)
    report = index.add(list(staged), progress=False)
    added, skipped = [], []
    for p in report.added:
        added.append({"image_id": staged[p][0], "filename": staged[p][1][:256]})
    for p in [*report.skipped, *report.failed]:
        image_id, fname = staged[p]
        if p in report.failed:
            errors.append({"filename": fname, "error": report.failed[p]})
        else:
            skipped.append({"filename": fname, "reason": "already in the collection (the same pixels)"})
        for sub in ("images", "thumbs"):
            (folder / sub / f"{image_id}.jpg").unlink(missing_ok=True)
    new_generation = generation
    if added:
        new_generation = generation + 1
        target = folder / f"index-{new_generation}"
        shutil.rmtree(target, ignore_errors=True)  # a leftover of a stopped request
        index.save(target)
    return {"added": added, "skipped": skipped, "errors": errors, "generation": new_generation, "count": len(index)}


def search_images(folder: Path, generation: int, spec: str, image_bytes: bytes, name: str, top_k: int,
                  max_pixels: int, embedder: Any = None) -> dict[str, Any]:
    """Decode the query and search the collection's current index: rows of rank, image id, score (and distance)."""
    from pixlearn.serve.inputs import decode_bytes

    t = time.perf_counter()
    image = decode_bytes(image_bytes, name=name, max_pixels=max_pixels)
    if not generation:
        return {"results": [], "timings_ms": {"search": 0.0}}
    emb = embedder if embedder is not None else _embedder(spec)
    index = _open_index(folder / f"index-{generation}", emb)
    rows = index.search(image, top_k=top_k)
    out = []
    for row in rows:
        entry: dict[str, Any] = {"rank": row["rank"], "image_id": Path(row["path"]).stem}
        if "distance" in row:  # Hamming bits of 64: a similarity in 0..1 as well, for one scale on the page
            entry["score"] = round(1.0 - row["distance"] / 64.0, 4)
            entry["distance"] = row["distance"]
        else:
            entry["score"] = round(float(row["score"]), 6)
        out.append(entry)
    return {"results": out, "timings_ms": {"search": round((time.perf_counter() - t) * 1e3, 2)}}


# ---------------------------------------------------------------- helpers of the routes
def _lock(request: Request, collection_id: str) -> anyio.Lock:
    locks = getattr(request.app.state, "collection_locks", None)
    if locks is None:
        locks = request.app.state.collection_locks = {}
    lock = locks.get(collection_id)
    if lock is None:
        lock = locks[collection_id] = anyio.Lock()
    return lock


async def _run(kind: str, spec: str, settings: ServeSettings, model: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func`` in a worker process for phash, in a thread with this process's embedder for a torch model."""
    from pixlearn.search import IndexMismatchError

    if kind == "phash":
        return await run_cpu(func, *args, **kwargs)
    try:
        emb = await run_blocking(_embedder, spec)
    except (ConfigError, WeightsNotFoundError, OSError) as exc:
        raise _unavailable(exc, settings, model, spec) from None
    try:
        return await run_blocking(func, *args, embedder=emb, **kwargs)
    except IndexMismatchError as exc:  # the run was trained again in place: its features are not the index's
        raise ApiError(f"the collection's model {model!r} has changed since its images were added "
                       f"({_hidden(exc, settings, model, spec)}); create a new collection and add the images again",
                       status=409) from None


def _int_param(value: Any, *, name: str, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or isinstance(value, float) and value != int(value):
            raise ValueError
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(f"{name}={value!r} is not a whole number; use {low}..{high}", status=400) from None
    if not low <= n <= high:
        raise ApiError(f"{name}={n} is out of range; use {low}..{high}", status=400)
    return n


_CREATE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["name", "model"],
                "properties": {"name": {"type": "string", "maxLength": MAX_NAME},
                               "model": {"type": "string", "description": "phash, a registered classification "
                                         "model, or a pretrained model name with local weights"}}},
                "example": {"name": "holiday photos", "model": "phash"}},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["name", "model"],
                "properties": {"name": {"type": "string"}, "model": {"type": "string"}}}},
        },
    },
}


# ---------------------------------------------------------------- routes
@router.post("/v1/collections", status_code=201, summary="Create a collection of images to search by image",
             openapi_extra=_CREATE_OPENAPI)
async def create_collection(request: Request) -> dict[str, Any]:
    """``{"name", "model"}`` (JSON or a form) -> the new collection: ``{"id", "name", "model", "kind", "created",
    "count": 0}``. ``model``: ``phash``, a registered classification model or a pretrained name with local weights."""
    from pixlearn._core.safe_yaml import load_json

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        body: Any = {k: form.get(k) for k in ("name", "model")}
    else:
        raw = await request.body()
        try:
            body = load_json(raw or b"null", what="the JSON body", max_bytes=len(raw) + 4, max_depth=4)
        except ConfigError as exc:
            raise ApiError(f"{exc}; send {{\"name\": \"...\", \"model\": \"phash\"}}", status=400) from None
        if not isinstance(body, dict):
            raise ApiError("the body must be a JSON object like {\"name\": \"photos\", \"model\": \"phash\"}", status=400)
    name = _text_field(body.get("name"), name="name", limit=MAX_NAME)
    model = _text_field(body.get("model"), name="model", limit=200)
    engine = request.app.state.engine
    kind, spec = await run_blocking(resolve_model, model, request.app.state.registry)

    def create() -> dict[str, Any]:
        with engine.begin() as conn:
            n = conn.execute(select(func.count()).select_from(collections_table)).scalar_one()
            if n >= MAX_COLLECTIONS:
                raise ApiError(f"the server holds {n} collections, the limit is {MAX_COLLECTIONS}; delete some "
                               "(DELETE /v1/collections/{id})", status=409)
            row = {"id": secrets.token_hex(16), "name": name, "model": model, "kind": kind, "spec": spec,
                   "created": _now(), "count": 0, "generation": 0}
            conn.execute(insert(collections_table).values(**row))
        return _public(row)

    return await run_blocking(create)


@router.get("/v1/collections", summary="List the collections")
async def list_collections(request: Request) -> dict[str, Any]:
    """``{"collections": [{"id", "name", "model", "kind", "created", "count"}]}``, oldest first."""
    return {"collections": await run_blocking(_list, request.app.state.engine)}


@router.get("/v1/collections/{collection_id}", summary="One collection")
async def get_collection(collection_id: str, request: Request) -> dict[str, Any]:
    """The collection (404 for an unknown id)."""
    return _public(await run_blocking(_row, request.app.state.engine, collection_id))


@router.delete("/v1/collections/{collection_id}", summary="Delete a collection, its images and its index")
async def delete_collection(collection_id: str, request: Request) -> dict[str, Any]:
    """``{"deleted": id}``; the stored images, thumbnails and index go with it."""
    engine = request.app.state.engine
    settings: ServeSettings = request.app.state.settings
    await run_blocking(_row, engine, collection_id)
    async with _lock(request, collection_id):

        def remove() -> None:
            with engine.begin() as conn:
                conn.execute(delete(collection_images_table).where(
                    collection_images_table.c.collection_id == collection_id))
                conn.execute(delete(collections_table).where(collections_table.c.id == collection_id))
            shutil.rmtree(collection_dir(settings, collection_id), ignore_errors=True)
            with _cache_lock:
                for key in [k for k in _indexes if Path(k).parent.name == collection_id]:
                    _indexes.pop(key, None)

        await run_blocking(remove)
    getattr(request.app.state, "collection_locks", {}).pop(collection_id, None)
    return {"deleted": collection_id}


@router.post("/v1/collections/{collection_id}/images", summary="Add images (uploads and/or a zip) to a collection")
async def add_collection_images(
    collection_id: str,
    request: Request,
    files: Annotated[list[UploadFile] | None, File(description="One or more images (repeat the field).")] = None,
    archive: Annotated[UploadFile | None, File(description="A zip of images.")] = None,
) -> dict[str, Any]:
    """``{"collection": {...}, "added": [{"image_id", "filename"}], "skipped": [{"filename", "reason"}],
    "errors": [{"filename", "error"}]}``: an unreadable image is that file's error, the others are added; an image
    already in the collection is skipped. At most the server's --max-archive-images images per request."""
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    row = await run_blocking(_row, engine, collection_id)
    uploads = [f for f in (files or []) if f is not None]
    if not uploads and archive is None:
        raise ApiError("no images: send them in the multipart field 'files' (repeat it) and/or a zip in 'archive'",
                       status=400)
    limit = settings.max_archive_images
    if len(uploads) > limit:
        raise ApiError(f"{len(uploads)} images in one request, over the limit of {limit}; send fewer", status=413)
    blobs = [((u.filename or f"file{i}")[:256], await u.read()) for i, u in enumerate(uploads)]
    zip_blob = ((archive.filename or "archive.zip")[:256], await archive.read()) if archive is not None else None
    t0 = time.perf_counter()
    async with _lock(request, collection_id):
        row = await run_blocking(_row, engine, collection_id)  # it may have been deleted or grown while we waited
        folder = collection_dir(settings, collection_id)
        result = await _run(row["kind"], row["spec"], settings, row["model"], add_images, folder, row["generation"],
                            row["spec"], blobs, zip_blob, max_images=limit,
                            room=MAX_COLLECTION_IMAGES - int(row["count"]), max_pixels=settings.max_pixels,
                            max_zip_bytes=int(settings.max_archive_mb * 1024 * 1024),
                            max_ratio=settings.max_archive_ratio)

        def commit() -> dict[str, Any]:
            if result["generation"] == row["generation"]:
                return row
            now = _now()
            with engine.begin() as conn:
                moved = conn.execute(update(collections_table).where(
                    collections_table.c.id == collection_id, collections_table.c.generation == row["generation"])
                    .values(count=result["count"], generation=result["generation"])).rowcount
                if moved != 1:  # another server process changed it meanwhile: this add is dropped, not merged
                    shutil.rmtree(folder / f"index-{result['generation']}", ignore_errors=True)
                    raise ApiError("the collection changed while these images were being added (another server "
                                   "process?); send them again", status=409)
                conn.execute(insert(collection_images_table), [
                    {"collection_id": collection_id, "image_id": a["image_id"], "filename": a["filename"],
                     "created": now} for a in result["added"]])
            shutil.rmtree(folder / f"index-{row['generation']}", ignore_errors=True)
            return _row(engine, collection_id)

        final = await run_blocking(commit)
    return {"collection": _public(final), "added": result["added"], "skipped": result["skipped"],
            "errors": result["errors"], "timings_ms": {"total": round((time.perf_counter() - t0) * 1e3, 2)}}


@router.post("/v1/collections/{collection_id}/search", summary="The images of a collection nearest to an image")
async def search_collection(
    collection_id: str,
    request: Request,
    file: Annotated[UploadFile | None, File(description="The query image.")] = None,
    image: Annotated[UploadFile | None, File(description="Alias of `file`.")] = None,
) -> dict[str, Any]:
    """``{"collection", "results": [{"rank", "image_id", "filename", "score", "url"}]}``, nearest first.

    ``top_k`` (query or form field, 1..100, default 10). ``score``: cosine similarity for a model's features,
    ``1 - hamming/64`` for phash (which also gives ``distance``, the differing bits).
    """
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    row = await run_blocking(_row, engine, collection_id)
    upload = file or image
    top_k = request.query_params.get("top_k")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form()
        if form.get("top_k") is not None:
            top_k = form.get("top_k")
    k = _int_param(top_k, name="top_k", low=1, high=MAX_TOP_K, default=DEFAULT_TOP_K)
    if upload is None:
        raise ApiError("no image: send the query image in the multipart field 'file' (curl -F file=@query.jpg)",
                       status=400)
    data = await upload.read()
    t0 = time.perf_counter()
    result = await _run(row["kind"], row["spec"], settings, row["model"], search_images,
                        collection_dir(settings, collection_id), row["generation"], row["spec"], data,
                        (upload.filename or "file")[:256], k, settings.max_pixels)

    def names() -> dict[str, str]:
        ids = [r["image_id"] for r in result["results"]]
        if not ids:
            return {}
        with engine.connect() as conn:
            rows = conn.execute(select(collection_images_table.c.image_id, collection_images_table.c.filename).where(
                collection_images_table.c.collection_id == collection_id,
                collection_images_table.c.image_id.in_(ids))).all()
        return {r.image_id: r.filename for r in rows}

    filenames = await run_blocking(names)
    for r in result["results"]:
        r["filename"] = filenames.get(r["image_id"], "")
        r["url"] = f"/v1/collections/{collection_id}/images/{r['image_id']}"
    timings = {**result["timings_ms"], "total": round((time.perf_counter() - t0) * 1e3, 2)}
    return {"collection": _public(row), "results": result["results"], "timings_ms": timings}


def remove_image(folder: Path, generation: int, image_id: str) -> dict[str, Any]:
    """Drop one image from the collection's index into the next generation's folder (the model is not loaded)."""
    from pixlearn.search import remove

    target = folder / f"index-{generation + 1}"
    shutil.rmtree(target, ignore_errors=True)  # a leftover of a stopped request
    removed = remove(folder / f"index-{generation}", [folder / "images" / f"{image_id}.jpg"], out=target)
    return {"removed": removed, "generation": generation + 1 if removed else generation}


@router.delete("/v1/collections/{collection_id}/images/{image_id}", summary="Remove an image from a collection")
async def delete_collection_image(collection_id: str, image_id: str, request: Request) -> dict[str, Any]:
    """``{"deleted": image_id, "collection": {...}}``: the image leaves the index (searches no longer find it), and its
    stored file and thumbnail are deleted. 404 for an unknown collection or image."""
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    await run_blocking(_row, engine, collection_id)
    if not _IMAGE_ID.match(image_id):
        raise ApiError(f"no image {image_id[:40]!r} in this collection: image ids are 16 hex digits, as the add and "
                       "search answers give them", status=404)
    folder = collection_dir(settings, collection_id)
    async with _lock(request, collection_id):
        row = await run_blocking(_row, engine, collection_id)

        def known() -> bool:
            with engine.connect() as conn:
                return conn.execute(select(collection_images_table.c.image_id).where(
                    collection_images_table.c.collection_id == collection_id,
                    collection_images_table.c.image_id == image_id)).first() is not None

        if not row["generation"] or not await run_blocking(known):
            raise ApiError(f"no image {image_id!r} in collection {collection_id!r}", status=404)
        result = await run_cpu(remove_image, folder, row["generation"], image_id)

        def commit() -> dict[str, Any]:
            with engine.begin() as conn:
                moved = conn.execute(update(collections_table).where(
                    collections_table.c.id == collection_id, collections_table.c.generation == row["generation"])
                    .values(count=max(int(row["count"]) - result["removed"], 0),
                            generation=result["generation"])).rowcount
                if moved != 1:
                    shutil.rmtree(folder / f"index-{result['generation']}", ignore_errors=True)
                    raise ApiError("the collection changed while this image was being removed (another server "
                                   "process?); send the request again", status=409)
                conn.execute(delete(collection_images_table).where(
                    collection_images_table.c.collection_id == collection_id,
                    collection_images_table.c.image_id == image_id))
            if result["generation"] != row["generation"]:
                shutil.rmtree(folder / f"index-{row['generation']}", ignore_errors=True)
            for sub in ("images", "thumbs"):
                (folder / sub / f"{image_id}.jpg").unlink(missing_ok=True)
            return _row(engine, collection_id)

        final = await run_blocking(commit)
    return {"deleted": image_id, "collection": _public(final)}


@router.get("/v1/collections/{collection_id}/images/{image_id}", summary="A collection image's thumbnail (or the image)",
            response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The JPEG thumbnail, or the stored image with size=full."}})
async def get_collection_image(collection_id: str, image_id: str, request: Request, size: str = "thumb") -> FileResponse:
    """The JPEG thumbnail (longest side at most 256 px) of an image of the collection; ``size=full``: the stored
    image. Served from the collection's folder by its generated id only."""
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    await run_blocking(_row, engine, collection_id)
    if size not in ("thumb", "full"):
        raise ApiError(f"size={size[:20]!r}: use thumb (default) or full", status=400)
    if not _IMAGE_ID.match(image_id):
        raise ApiError(f"no image {image_id[:40]!r} in this collection: image ids are 16 hex digits, as the add and "
                       "search answers give them", status=404)

    def known() -> bool:
        with engine.connect() as conn:
            return conn.execute(select(collection_images_table.c.image_id).where(
                collection_images_table.c.collection_id == collection_id,
                collection_images_table.c.image_id == image_id)).first() is not None

    path = collection_dir(settings, collection_id) / ("images" if size == "full" else "thumbs") / f"{image_id}.jpg"
    if not await run_blocking(known) or not path.is_file():
        raise ApiError(f"no image {image_id!r} in collection {collection_id!r}", status=404)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

