"""Faces in the service: detection, enrolment, 1:N identification, 1:1 verification and the gallery.

- ``POST /v1/faces/detect``: the faces of one image (boxes, detector scores, 5 landmarks); ``detector`` hog
  (default, fast, frontal faces) or cnn (dlib's MMOD CNN: turned and smaller faces, several times slower), and
  ``upsample`` 0..3 (each step finds faces half as large at about 4x the cost; default 1, or 0 for an image too large
  to scan doubled).
- ``POST /v1/faces/enroll``: a person's ``name`` and their photos (multipart ``files``, repeated); each photo must
  show exactly one face, a photo that does not (or cannot be read) is refused with its reason while the others enrol.
- ``POST /v1/faces/identify``: every face of an image with the nearest enrolled person's name, or ``unknown`` when
  no one is within the threshold (``threshold`` in (0, 4]: a Euclidean distance between embeddings; default the
  gallery's calibrated value, else 0.6, dlib's documented one).
- ``POST /v1/faces/verify``: ``image_a`` and ``image_b``: the same person or not (each image's largest face).
- ``GET /v1/faces/gallery``: the people (name, embeddings, enrolment time) and the threshold in use;
  ``DELETE /v1/faces/gallery/{name}``: every embedding of that person goes.

The gallery lives in the service's database (:class:`DatabaseGalleryStore`, the
:class:`~pixlearn.tasks.faces.gallery.GalleryStore` of :mod:`pixlearn.tasks.faces`): 128 numbers per enrolled face,
its source file name and box; never the photos. dlib runs in the worker processes
(:func:`~pixlearn.serve.workers.run_cpu`: killed at a request's deadline), each loading its models once; the
gallery is read and written in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from sqlalchemy import JSON, Column, ForeignKey, Integer, LargeBinary, String, Table, delete, func, insert, select

from pixlearn._core.errors import ConfigError, PixlearnError, WeightsNotFoundError
from pixlearn.serve.db import metadata
from pixlearn.serve.deps import run_blocking, run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "DatabaseGalleryStore", "face_people_table", "face_vectors_table", "face_gallery_table",
           "check_face_params", "face_rows", "name_faces", "gallery_threshold", "MAX_TOP_K"]

router = APIRouter(tags=["faces"])

#: Candidates one identified face lists at most.
MAX_TOP_K = 10
_DIM = 128

face_people_table = Table(
    "face_people",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created", String(40), nullable=False),
)

face_vectors_table = Table(
    "face_vectors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), ForeignKey("face_people.name", ondelete="CASCADE"), nullable=False, index=True),
    Column("vector", LargeBinary, nullable=False),  # 128 float32, little-endian
    Column("source", String(256)),
    Column("box", JSON),
    Column("added", String(40), nullable=False),
)

#: One row per gallery setting (``calibration``).
face_gallery_table = Table(
    "face_gallery",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", JSON),
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DatabaseGalleryStore:
    """A :class:`~pixlearn.tasks.faces.gallery.GalleryStore` in the service's database: people in ``face_people``,
    one row of ``face_vectors`` per embedding (128 float32 as bytes, its source file name and box), the calibration
    in ``face_gallery``. Photos are never stored (a ``photo`` in ``meta`` is dropped).

    Examples
    --------
    >>> from pixlearn.serve.db import make_engine
    >>> eng = make_engine("sqlite://"); metadata.create_all(eng)
    >>> store = DatabaseGalleryStore(eng)
    >>> store.add("ada", np.eye(128, dtype=np.float32)[:2], [{"source": "a.png"}, {"source": "b.png"}])
    >>> [(p["name"], p["count"]) for p in store.people()], store.delete("ada"), store.vectors()[1].shape
    ([('ada', 2)], 2, (0, 128))
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def add(self, name: str, vectors: np.ndarray, meta: Sequence[Mapping[str, Any]]) -> None:
        name = _faces("check_person_name")(name)
        arr = np.asarray(vectors, np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != _DIM or not np.isfinite(arr).all():
            raise ConfigError(f"gallery vectors must be finite (n, {_DIM}) numbers, got shape {arr.shape}")
        meta = list(meta) if meta is not None else [{} for _ in arr]
        if len(meta) != len(arr):
            raise ConfigError(f"add: {len(arr)} vectors but {len(meta)} meta entries")
        now = _now()
        with self.engine.begin() as conn:
            if conn.execute(select(face_people_table.c.name).where(face_people_table.c.name == name)).first() is None:
                conn.execute(insert(face_people_table).values(name=name, created=now))
            conn.execute(insert(face_vectors_table), [
                {"name": name, "vector": v.astype("<f4").tobytes(), "source": (str(m.get("source") or ""))[:256] or None,
                 "box": [int(b) for b in m["box"]] if m.get("box") is not None else None, "added": now}
                for v, m in zip(arr, meta)])

    def vectors(self) -> tuple[list[str], np.ndarray]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(face_vectors_table.c.name, face_vectors_table.c.vector)
                                .order_by(face_vectors_table.c.id)).all()
        if not rows:
            return [], np.zeros((0, _DIM), np.float32)
        matrix = np.stack([np.frombuffer(bytes(r.vector), "<f4") for r in rows]).astype(np.float32)
        return [r.name for r in rows], matrix

    def people(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            counts = dict(conn.execute(select(face_vectors_table.c.name, func.count())
                                       .group_by(face_vectors_table.c.name)).all())
            people = conn.execute(select(face_people_table).order_by(face_people_table.c.name)).mappings().all()
        return [{"name": p["name"], "count": int(counts.get(p["name"], 0)), "created": p["created"]} for p in people]

    def delete(self, name: str) -> int:
        with self.engine.begin() as conn:
            removed = conn.execute(delete(face_vectors_table).where(face_vectors_table.c.name == name)).rowcount
            conn.execute(delete(face_people_table).where(face_people_table.c.name == name))
        return int(removed or 0)

    def get_calibration(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(face_gallery_table.c.value).where(face_gallery_table.c.key == "calibration")).first()
        return dict(row.value) if row is not None and row.value else None

    def set_calibration(self, calibration: Mapping[str, Any] | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(face_gallery_table).where(face_gallery_table.c.key == "calibration"))
            if calibration:
                conn.execute(insert(face_gallery_table).values(key="calibration", value=dict(calibration)))


def _faces(what: str) -> Any:
    """An entry point of the ``faces`` tool (the task registry: the service never imports a task package)."""
    from pixlearn.tasks.registry import tool

    return tool("faces").load(what)


def _gallery(store: Any, **kwargs: Any) -> Any:
    return _faces("gallery")(store, **kwargs)


# ---------------------------------------------------------------- options
def check_face_params(params: Mapping[str, Any], *, threshold: bool = False, top_k: bool = False) -> dict[str, Any]:
    """``detector`` (hog | cnn), ``upsample`` (0..3; None: :func:`fit_upsample` picks it per image), and when asked
    ``threshold`` ((0, 4], None: the gallery's) and
    ``top_k`` (1..10) checked; 400 naming the field.

    >>> check_face_params({"detector": "cnn", "upsample": "0"}), check_face_params({})
    ({'detector': 'cnn', 'upsample': 0}, {'detector': 'hog', 'upsample': None})
    >>> check_face_params({"detector": "haar"})
    Traceback (most recent call last):
    ...
    pixlearn.serve.errors.ApiError: detector='haar': use hog (fast, frontal faces) or cnn (turned and smaller faces, slower)
    """
    from pixlearn.serve.routes_detect import _number

    detector = params.get("detector") or "hog"
    if detector not in ("hog", "cnn"):
        raise ApiError(f"detector={str(detector)[:20]!r}: use hog (fast, frontal faces) or cnn (turned and smaller "
                       "faces, slower)", status=400)
    out: dict[str, Any] = {"detector": detector,
                           "upsample": _number(params.get("upsample"), name="upsample", low=0, high=3, integer=True,
                                               default=None)}
    if threshold:
        value = params.get("threshold")
        out["threshold"] = None if value is None or value == "" else _faces("check_threshold")(value)
    if top_k:
        out["top_k"] = _number(params.get("top_k"), name="top_k", low=1, high=MAX_TOP_K, integer=True, default=1)
    return out


def _faces_unavailable(exc: Exception) -> ApiError:
    return ApiError(f"face detection is not available on this server: {exc}", status=503)


# ---------------------------------------------------------------- the work (in a worker process)
def fit_upsample(shapes: Sequence[tuple[int, ...]], detector: str, upsample: int | None) -> int:
    """``upsample`` when given; else 1 (faces from about 40 px) when every image of ``shapes`` can be scanned doubled,
    0 otherwise (a phone photo: its faces are large anyway), so that a request without the option never fails on
    the detector's pixel limit.

    >>> fit_upsample([(480, 640, 3)], "hog", None), fit_upsample([(3000, 4000, 3)], "hog", None)
    (1, 0)
    """
    if upsample is not None:
        return int(upsample)
    from pixlearn.ops.faces import MAX_SCAN_PIXELS

    largest = max((int(s[0]) * int(s[1]) for s in shapes), default=0)
    return 1 if largest * 4 <= MAX_SCAN_PIXELS[detector] else 0


def face_rows(image: np.ndarray, *, detector: str, upsample: int | None, vectors: bool) -> list[dict[str, Any]]:
    """The faces of ``image``: ``box``, ``score``, ``landmarks`` (and ``vector``, a list, when ``vectors``);
    ``upsample`` None: :func:`fit_upsample`."""
    embed = _faces("embed")
    upsample = fit_upsample([image.shape], detector, upsample)
    return [f.to_dict(vector=vectors) for f in embed(image, detector=detector, upsample=upsample)]


def _decode(kind: str, payload: Any, name: str, settings: ServeSettings) -> np.ndarray:
    from pixlearn.serve.routes_detect import _decode as decode

    return decode(kind, payload, name, settings)


def _detect_work(kind: str, payload: Any, name: str, settings: ServeSettings, opts: dict[str, Any],
                 vectors: bool) -> dict[str, Any]:
    t = time.perf_counter()
    image = _decode(kind, payload, name, settings)
    decode_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    faces = face_rows(image, detector=opts["detector"], upsample=opts["upsample"], vectors=vectors)
    return {"faces": faces, "image": {"width": int(image.shape[1]), "height": int(image.shape[0])},
            "timings_ms": {"decode": round(decode_ms, 2), "faces": round((time.perf_counter() - t) * 1e3, 2)}}


def _enroll_work(name: str, blobs: list[tuple[str, bytes]], settings: ServeSettings,
                 opts: dict[str, Any]) -> dict[str, Any]:
    """Decode and embed the photos through a gallery held in memory (the faces tool's memory store) in a worker
    process; the server writes the vectors to the database afterwards."""
    from pixlearn.serve.inputs import decode_bytes

    images, where, rows = [], [], []
    for i, (fname, data) in enumerate(blobs):
        rows.append({"filename": fname, "status": "refused", "box": None, "reason": None})
        try:
            images.append(decode_bytes(data, name=fname, max_pixels=settings.max_pixels))
            where.append(i)
        except PixlearnError as exc:
            rows[i]["reason"] = str(exc)
    vectors = np.zeros((0, _DIM), np.float32)
    meta: list[dict[str, Any]] = []
    if images:
        upsample = fit_upsample([im.shape for im in images], opts["detector"], opts["upsample"])
        gallery = _gallery(_faces("memory_store")(), detector=opts["detector"], upsample=upsample)
        report = gallery.enroll(name, images)
        _, vectors = gallery.store.vectors()
        for i, r in zip(where, report["images"]):
            rows[i].update(status=r["status"], box=r["box"], reason=r["reason"])
            if r["status"] == "enrolled":
                meta.append({"source": blobs[i][0], "box": r["box"]})
    return {"rows": rows, "vectors": vectors, "meta": meta}


def _verify_work(a: tuple[str, bytes], b: tuple[str, bytes], settings: ServeSettings, opts: dict[str, Any],
                 threshold: float) -> dict[str, Any]:
    from pixlearn.serve.inputs import decode_bytes

    image_a = decode_bytes(a[1], name=a[0], max_pixels=settings.max_pixels)
    image_b = decode_bytes(b[1], name=b[0], max_pixels=settings.max_pixels)
    upsample = fit_upsample([image_a.shape, image_b.shape], opts["detector"], opts["upsample"])
    return _faces("verify_images")(image_a, image_b, threshold=threshold, detector=opts["detector"], upsample=upsample)


# ---------------------------------------------------------------- the gallery (in a thread)
def gallery_threshold(engine: Any) -> float:
    """The gallery's calibrated threshold, else the default (0.6)."""
    return _gallery(DatabaseGalleryStore(engine)).threshold


def name_faces(faces: list[dict[str, Any]], engine: Any, *, threshold: float | None, top_k: int = 1) -> dict[str, Any]:
    """Name each face (rows of :func:`face_rows` with ``vector``) after the nearest enrolled person, or ``unknown``;
    the vectors are dropped. ``{"faces", "threshold", "note"?}``."""
    gallery = _gallery(DatabaseGalleryStore(engine))
    t = gallery.threshold if threshold is None else float(threshold)
    vectors = [f.pop("vector") for f in faces]
    out: dict[str, Any] = {"faces": faces, "threshold": t}
    if not faces:
        return out
    names, _ = gallery.store.vectors()
    if not names:
        for f in faces:
            f.update(name="unknown", distance=None, candidates=[])
        out["note"] = "the gallery is empty: enroll people first (POST /v1/faces/enroll)"
        return out
    for f, m in zip(faces, gallery.match(np.asarray(vectors, np.float32), threshold=t, top_k=top_k)):
        f.update(name=m["name"], distance=m["distance"], candidates=m["candidates"])
    return out


async def _run_faces(func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_cpu(func, *args, **kwargs)
    except WeightsNotFoundError as exc:
        raise _faces_unavailable(exc) from None


_IMAGE_BODY = {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, "detector": {"type": "string",
                                                                                   "enum": ["hog", "cnn"]},
                       "upsample": {"type": "integer", "minimum": 0, "maximum": 3},
                       "threshold": {"type": "number"}, "top_k": {"type": "integer"}}}},
    "application/json": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {"image": {"type": "object", "properties": {"b64": {"type": "string"}}},
                       "detector": {"type": "string"}, "upsample": {"type": "integer"},
                       "threshold": {"type": "number"}, "top_k": {"type": "integer"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}
_DETECT_PARAMS = [
    {"name": "detector", "in": "query", "required": False, "schema": {"type": "string", "enum": ["hog", "cnn"],
                                                                      "default": "hog"}},
    {"name": "upsample", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "maximum": 3},
     "description": "Default 1 (faces from about 40 px), or 0 for an image too large to scan doubled."},
]
_IDENTIFY_PARAMS = [
    *_DETECT_PARAMS,
    {"name": "threshold", "in": "query", "required": False, "schema": {"type": "number", "exclusiveMinimum": 0,
                                                                       "maximum": 4},
     "description": "Same person at or below this distance, in (0, 4] (default: the gallery's calibrated threshold, "
                    "else 0.6)."},
    {"name": "top_k", "in": "query", "required": False,
     "schema": {"type": "integer", "default": 1, "minimum": 1, "maximum": MAX_TOP_K},
     "description": "Nearest people listed per face under candidates."},
]


# ---------------------------------------------------------------- routes
@router.post("/v1/faces/detect", summary="The faces in one image: boxes, scores and 5 landmarks",
             openapi_extra={"parameters": _DETECT_PARAMS, "requestBody": {"required": True, "content": _IMAGE_BODY}})
async def detect_faces_route(request: Request) -> dict[str, Any]:
    """``{"detector", "faces": [{"box": [x0, y0, x1, y1], "score", "landmarks": [[x, y] x 5]}], "image", "timings_ms"}``,
    highest score first. The image comes as for /v1/analyze (multipart ``file``, JSON ``image.b64``, raw body)."""
    from pixlearn.serve.routes_analyze import read_image_request

    t0 = time.perf_counter()
    settings: ServeSettings = request.app.state.settings
    params, (kind, payload, name) = await read_image_request(request, keys=("detector", "upsample"))
    opts = check_face_params(params)
    result = await _run_faces(_detect_work, kind, payload, name, settings, opts, False)
    timings = {**result.pop("timings_ms"), "total": round((time.perf_counter() - t0) * 1e3, 2)}
    return {"detector": opts["detector"], **result, "timings_ms": timings}


@router.post("/v1/faces/identify", summary="Every face of an image named after the nearest enrolled person",
             openapi_extra={"parameters": _IDENTIFY_PARAMS, "requestBody": {"required": True, "content": _IMAGE_BODY}})
async def identify_faces(request: Request) -> dict[str, Any]:
    """``{"faces": [{"box", "score", "landmarks", "name" (or "unknown"), "distance", "candidates": [{"name",
    "distance"}]}], "threshold", "image", "timings_ms"}``. With an empty gallery every face is ``unknown`` and
    ``note`` says so."""
    from pixlearn.serve.routes_analyze import read_image_request

    t0 = time.perf_counter()
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    params, (kind, payload, name) = await read_image_request(
        request, keys=("detector", "upsample", "threshold", "top_k"))
    opts = check_face_params(params, threshold=True, top_k=True)
    result = await _run_faces(_detect_work, kind, payload, name, settings, opts, True)
    t = time.perf_counter()
    named = await run_blocking(name_faces, result["faces"], engine, threshold=opts["threshold"], top_k=opts["top_k"])
    timings = {**result["timings_ms"], "match": round((time.perf_counter() - t) * 1e3, 2),
               "total": round((time.perf_counter() - t0) * 1e3, 2)}
    return {**named, "image": result["image"], "timings_ms": timings}


@router.post("/v1/faces/enroll", summary="Enrol a person: their name and photos showing their face")
async def enroll_faces(
    request: Request,
    name: Annotated[str, Form(description="The person: 1..64 characters, no path characters, not 'unknown'.")],
    files: Annotated[list[UploadFile], File(description="Photos of that person, one face each (repeat the field).")],
    detector: Annotated[str | None, Form(description="hog (default) or cnn.")] = None,
    upsample: Annotated[str | None, Form(description="0..3 (default 1, or 0 for images too large to scan doubled).")] = None,
) -> dict[str, Any]:
    """``{"name", "added", "count", "refused", "images": [{"filename", "status": "enrolled" | "refused", "box",
    "reason"}]}``. A photo with no face, several faces, or that cannot be read is refused with its reason; the others
    enrol. Only the 128-number embeddings are kept, never the photos."""
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    name = await run_blocking(_faces("check_person_name"), name)  # 400 naming the rule (GalleryError)
    opts = check_face_params({"detector": detector, "upsample": upsample})
    uploads = [f for f in files if f is not None]
    limit = min(settings.max_archive_images, 1000)
    if len(uploads) > limit:
        raise ApiError(f"{len(uploads)} photos in one request, over the limit of {limit}; send fewer", status=413)
    blobs = [((u.filename or f"file{i}")[:256], await u.read()) for i, u in enumerate(uploads)]
    t0 = time.perf_counter()
    work = await _run_faces(_enroll_work, name, blobs, settings, opts)
    store = DatabaseGalleryStore(engine)

    def save() -> int:
        if len(work["vectors"]):
            store.add(name, work["vectors"], work["meta"])
        return next((p["count"] for p in store.people() if p["name"] == name), 0)

    count = await run_blocking(save)
    added = len(work["meta"])
    return {"name": name, "added": added, "count": count, "refused": len(blobs) - added, "images": work["rows"],
            "timings_ms": {"total": round((time.perf_counter() - t0) * 1e3, 2)}}


@router.post("/v1/faces/verify", summary="Are the faces of two images the same person?")
async def verify_faces(
    request: Request,
    image_a: Annotated[UploadFile, File(description="The first image (its largest face is compared).")],
    image_b: Annotated[UploadFile, File(description="The second image.")],
    threshold: Annotated[str | None, Form(description="Same person at or below this distance, (0, 4]; default the "
                                                      "gallery's calibrated threshold, else 0.6.")] = None,
    detector: Annotated[str | None, Form(description="hog (default) or cnn.")] = None,
    upsample: Annotated[str | None, Form(description="0..3 (default 1, or 0 for images too large to scan doubled).")] = None,
) -> dict[str, Any]:
    """``{"same", "distance", "threshold", "box_a", "box_b", "faces_a", "faces_b"}``; an image with no face is a 400
    naming it."""
    engine = request.app.state.engine
    settings: ServeSettings = request.app.state.settings
    query = request.query_params
    opts = check_face_params({"detector": detector or query.get("detector"),
                              "upsample": upsample if upsample is not None else query.get("upsample"),
                              "threshold": threshold if threshold is not None else query.get("threshold")},
                             threshold=True)
    t = opts["threshold"] if opts["threshold"] is not None else await run_blocking(gallery_threshold, engine)
    a = ((image_a.filename or "image_a")[:256], await image_a.read())
    b = ((image_b.filename or "image_b")[:256], await image_b.read())
    t0 = time.perf_counter()
    result = await _run_faces(_verify_work, a, b, settings, opts, t)
    return {**result, "timings_ms": {"total": round((time.perf_counter() - t0) * 1e3, 2)}}


@router.get("/v1/faces/gallery", summary="The enrolled people")
async def list_gallery(request: Request) -> dict[str, Any]:
    """``{"people": [{"name", "count", "created"}], "threshold", "calibration"}`` (people by name)."""
    engine = request.app.state.engine

    def read() -> dict[str, Any]:
        store = DatabaseGalleryStore(engine)
        return {"people": store.people(), "threshold": gallery_threshold(engine), "calibration": store.get_calibration()}

    return await run_blocking(read)


@router.delete("/v1/faces/gallery/{name}", summary="Delete a person: every embedding of them")
async def delete_person(name: str, request: Request) -> dict[str, Any]:
    """``{"deleted": name, "removed": <embeddings removed>}``; 404 when the gallery has no such person."""
    engine = request.app.state.engine
    store = DatabaseGalleryStore(engine)

    def remove() -> int:
        known = [p["name"] for p in store.people()]
        if name not in known:
            from pixlearn._core.names import closest

            hint = closest(name, known, n=1)
            raise ApiError(f"no person {name[:80]!r} in the gallery" + (f"; did you mean {hint[0]!r}?" if hint else "")
                           + ("" if known else " (it is empty)") + "; GET /v1/faces/gallery lists the people",
                           status=404)
        return _gallery(store).delete(name)  # every embedding of that person

    return {"deleted": name, "removed": await run_blocking(remove)}
