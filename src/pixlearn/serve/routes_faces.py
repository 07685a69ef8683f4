"""Faces in the service: detection, enrolment, 1:N identification, 1:1 verification and the gallery.

- ``POST /v1/faces/detect``: the faces of one image (boxes, detector scores, 5 landmarks); ``detector`` hog
  (default, fast, frontal faces) or cnn (dlib's MMOD CNN: turned and smaller faces, several times slower), and
  ``upsample`` 0..3 (each step finds faces half as large at about 4x the cost; default 1, or 0 for an image too large
  to scan doubled).
- ``POST /v1/faces/enroll``: a person's ``name`` and their photos (multipart ``files``, repeated, or JSON
  ``{"name", "images": [{"b64": ...}, ...]}``); each photo must show exactly one face, a photo that does not (or
  cannot be read) is refused with its reason while the others enrol.
- ``POST /v1/faces/identify``: every face of an image with the nearest enrolled person's name, or ``unknown`` when
  no one is within the threshold (``threshold`` in (0, 4]: a Euclidean distance between embeddings; default the
  gallery's calibrated value, else 0.6, dlib's documented one).
- ``POST /v1/faces/verify``: ``image_a`` and ``image_b`` (multipart files, or JSON ``{"image_a": {"b64": ...},
  "image_b": {"b64": ...}}``): the same person or not (each image's largest face).
- ``POST /v1/faces/calibrate``: calibrate the gallery's threshold on labelled pairs and store it (identify and verify
  use it from then on): from an uploaded zip with one folder of photos per person (multipart ``archive``; checked like
  a training upload, decoded in memory, never extracted), or with no upload from the faces already enrolled. The
  answer is the calibration: threshold, ROC AUC, EER, FAR and FRR at the threshold, the pairs it rests on.
- ``GET /v1/faces/gallery``: the people (name, embeddings, enrolment time), the threshold in use and its
  calibration (or that it is dlib's default 0.6);
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
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from sqlalchemy import JSON, Column, ForeignKey, Integer, LargeBinary, String, Table, delete, func, insert, select
from starlette.datastructures import UploadFile

from pixlearn._core.errors import ConfigError, PixlearnError, WeightsNotFoundError
from pixlearn.serve.db import metadata
from pixlearn.serve.deps import run_blocking, run_cpu
from pixlearn.serve.errors import ApiError
from pixlearn.serve.settings import ServeSettings

__all__ = ["router", "DatabaseGalleryStore", "face_people_table", "face_vectors_table", "face_gallery_table",
           "check_face_params", "face_rows", "name_faces", "gallery_threshold", "gallery_groups", "MAX_TOP_K",
           "MAX_CALIBRATION_FACES"]

router = APIRouter(tags=["faces"])

#: Candidates one identified face lists at most.
MAX_TOP_K = 10
#: Most faces a calibration embeds from a zip or uses from the gallery (past it, a seeded sample of the gallery's):
#: every pair of 3,000 faces is 4.5 million pairs, the calibration's own cap.
MAX_CALIBRATION_FACES = 3000
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


def _enroll_work(name: str, sources: list[tuple[str, Any, str]], settings: ServeSettings,
                 opts: dict[str, Any]) -> dict[str, Any]:
    """Decode and embed the photos (``(kind, payload, name)`` as :func:`_decode` takes them: uploaded bytes or JSON
    base64) through a gallery held in memory (the faces tool's memory store) in a worker process; the server writes
    the vectors to the database afterwards."""
    images, where, rows = [], [], []
    for i, (kind, payload, fname) in enumerate(sources):
        rows.append({"filename": fname, "status": "refused", "box": None, "reason": None})
        try:
            images.append(_decode(kind, payload, fname, settings))
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
                meta.append({"source": sources[i][2], "box": r["box"]})
    return {"rows": rows, "vectors": vectors, "meta": meta}


def _verify_work(a: tuple[str, Any, str], b: tuple[str, Any, str], settings: ServeSettings, opts: dict[str, Any],
                 threshold: float) -> dict[str, Any]:
    image_a = _decode(*a, settings)
    image_b = _decode(*b, settings)
    upsample = fit_upsample([image_a.shape, image_b.shape], opts["detector"], opts["upsample"])
    return _faces("verify_images")(image_a, image_b, threshold=threshold, detector=opts["detector"], upsample=upsample)


def _calibrate_groups(groups: Mapping[str, np.ndarray], source: str) -> dict[str, Any]:
    """The calibration of ``groups`` (person -> (n, 128) vectors) as a dict, its ``source`` set; the gallery of the
    faces tool (in memory) computes it, the server stores it."""
    cal = _gallery(_faces("memory_store")()).calibrate({k: np.asarray(v, np.float32) for k, v in groups.items()})
    if not 0 < cal.threshold <= 4:  # never with dlib's embeddings (at most about 3 apart); identify would refuse it
        raise ApiError(f"the calibrated threshold {cal.threshold:g} is outside (0, 4], the range of distances between "
                       "face embeddings; these vectors are not dlib's embeddings, nothing was stored", status=400)
    return {**cal.to_dict(), "source": source}


def _missing_pairs(groups: Mapping[str, Any]) -> str | None:
    """What ``groups`` lacks for a calibration (two people, and a person with two faces), or None."""
    counts = {k: len(v) for k, v in groups.items() if len(v)}
    problems = []
    if len(counts) < 2:
        problems.append(f"{len(counts)} person(s) with a face, and it needs at least 2 people (pairs of different "
                        "people)")
    if not any(n >= 2 for n in counts.values()):
        problems.append("no person with 2 faces or more, and it needs at least one (pairs of the same person)")
    return "; ".join(problems) or None


def _zip_calibration_work(blob: tuple[str, bytes], settings: ServeSettings, opts: dict[str, Any]) -> dict[str, Any]:
    """Calibrate on a zip with one folder of photos per person, in a worker process.

    The zip is checked from its headers like a training upload (:func:`~pixlearn.serve.archive.check_archive`: no
    member climbing out, no links, the size, ratio and member caps) and its images are decoded in memory, never
    extracted (:func:`~pixlearn.serve.inputs.iter_zip_images`: at most ``--max-archive-images`` and
    :data:`MAX_CALIBRATION_FACES`). A photo that cannot be read, or that shows no face or several, is skipped with its
    reason. ``{"calibration", "images": [{"filename", "person", "status": "used" | "skipped", "reason"}]}``.
    """
    import io

    from pixlearn.serve.archive import ArchiveError, ArchiveLimits, check_archive
    from pixlearn.serve.inputs import iter_zip_images

    fname, data = blob
    limits = ArchiveLimits.from_settings(settings)
    try:
        plan = check_archive(io.BytesIO(data), limits=limits, name=fname, task="detect")
    except ArchiveError as exc:
        raise ApiError(f"{exc.archive}: the archive was refused: " + "; ".join(exc.reasons), status=400,
                       extra={"reasons": exc.reasons}) from None
    embed = _faces("embed")
    depth = len(plan.prefix)  # a folder wrapping the person folders is unwrapped
    groups: dict[str, list[np.ndarray]] = {}
    rows: list[dict[str, Any]] = []
    for item in iter_zip_images(data, name=fname, max_images=min(settings.max_archive_images, MAX_CALIBRATION_FACES),
                                max_total_bytes=limits.max_bytes, max_ratio=limits.max_ratio,
                                max_pixels=settings.max_pixels):
        parts = PurePosixPath(item.name).parts
        row: dict[str, Any] = {"filename": item.name[:256], "person": None, "status": "skipped", "reason": None}
        rows.append(row)
        if tuple(parts[:depth]) != plan.prefix or len(parts) < depth + 2:
            row["reason"] = "not in a person's folder: put each person's photos in a folder named after them"
            continue
        person = row["person"] = parts[depth][:64]
        if item.error is not None:
            row["reason"] = item.error
            continue
        try:
            faces = embed(item.image, detector=opts["detector"],
                          upsample=fit_upsample([item.image.shape], opts["detector"], opts["upsample"]))
        except PixlearnError as exc:
            row["reason"] = f"{type(exc).__name__}: {exc}"
            continue
        if len(faces) != 1:
            row["reason"] = (f"no face found (detector {opts['detector']}); try the cnn detector or a larger photo"
                             if not faces else f"{len(faces)} faces found; calibration uses photos of one face")
            continue
        groups.setdefault(person, []).append(faces[0].vector)
        row["status"] = "used"
    missing = _missing_pairs(groups)
    if missing:
        used = sum(len(v) for v in groups.values())
        raise ApiError(f"{fname}: {used} usable face(s) of {len(groups)} person(s) in {len(rows)} image(s): {missing}. "
                       "Put one folder per person, each photo showing that person's face alone", status=400,
                       extra={"images": rows})
    skipped = sum(1 for r in rows if r["status"] != "used")
    upsample = "auto" if opts["upsample"] is None else opts["upsample"]
    source = (f"zip {fname} ({len(rows)} images, {skipped} skipped; detector {opts['detector']}, "
              f"upsample {upsample})")
    return {"calibration": _calibrate_groups({k: np.stack(v) for k, v in groups.items()}, source), "images": rows}


# ---------------------------------------------------------------- the gallery (in a thread)
def gallery_groups(engine: Any, *, limit: int = MAX_CALIBRATION_FACES) -> tuple[dict[str, np.ndarray], int]:
    """The enrolled faces by person (name -> (n, 128) float32) and how many there are in all; past ``limit`` faces,
    a seeded sample of ``limit`` of them (the same sample for the same gallery)."""
    names, matrix = DatabaseGalleryStore(engine).vectors()
    total = len(names)
    keep = np.arange(total)
    if total > limit:
        keep = np.sort(np.random.default_rng(0).choice(total, limit, replace=False))
    groups: dict[str, list[np.ndarray]] = {}
    for k in keep:
        groups.setdefault(names[k], []).append(matrix[k])
    return {k: np.stack(v) for k, v in groups.items()}, total


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


_IMAGE_REF = {"type": "object", "description": "An image: its bytes in base64 (a data: URL prefix is allowed), or a "
                                             "path under a folder the server allows (--allow-root).",
              "properties": {"b64": {"type": "string"}, "path": {"type": "string"}}}
_ENROLL_BODY = {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["name", "files"],
        "properties": {"name": {"type": "string", "maxLength": 64,
                                "description": "The person: 1..64 characters, no path characters, not 'unknown'."},
                       "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "description": "Photos of that person, one face each (repeat the field)."},
                       "detector": {"type": "string", "enum": ["hog", "cnn"]},
                       "upsample": {"type": "integer", "minimum": 0, "maximum": 3}}}},
    "application/json": {"schema": {
        "type": "object", "required": ["name", "images"],
        "properties": {"name": {"type": "string", "maxLength": 64},
                       "images": {"type": "array", "items": _IMAGE_REF, "minItems": 1,
                                  "description": "At most --max-archive-images (and 1,000) photos."},
                       "detector": {"type": "string", "enum": ["hog", "cnn"]},
                       "upsample": {"type": "integer", "minimum": 0, "maximum": 3}}},
        "example": {"name": "Ada", "images": [{"b64": "<base64 of a photo>"}]}},
}
_VERIFY_BODY = {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["image_a", "image_b"],
        "properties": {"image_a": {"type": "string", "format": "binary",
                                   "description": "The first image (its largest face is compared)."},
                       "image_b": {"type": "string", "format": "binary", "description": "The second image."},
                       "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
                       "detector": {"type": "string", "enum": ["hog", "cnn"]},
                       "upsample": {"type": "integer", "minimum": 0, "maximum": 3}}}},
    "application/json": {"schema": {
        "type": "object", "required": ["image_a", "image_b"],
        "properties": {"image_a": _IMAGE_REF, "image_b": _IMAGE_REF,
                       "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
                       "detector": {"type": "string", "enum": ["hog", "cnn"]},
                       "upsample": {"type": "integer", "minimum": 0, "maximum": 3}}},
        "example": {"image_a": {"b64": "<base64>"}, "image_b": {"b64": "<base64>"}}},
}
_CALIBRATE_BODY = {
    "multipart/form-data": {"schema": {
        "type": "object",
        "properties": {"archive": {"type": "string", "format": "binary",
                                   "description": "A zip with one folder of photos per person (at least two people, "
                                                  "one of them with two photos or more). Without it, the faces "
                                                  "already enrolled are used."},
                       "detector": {"type": "string", "enum": ["hog", "cnn"]},
                       "upsample": {"type": "integer", "minimum": 0, "maximum": 3}}}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
}
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(ctype: str) -> bool:
    return ctype == "application/json" or ctype.endswith("+json")


async def _json_body(request: Request, example: str) -> dict[str, Any]:
    """The request's JSON object (parsed in a thread, depth-limited); 400 with ``example`` otherwise."""
    from pixlearn._core.safe_yaml import load_json

    raw = await request.body()
    try:
        body = await run_blocking(load_json, raw or b"null", what="the JSON body", max_bytes=len(raw) + 4, max_depth=8)
    except ConfigError as exc:
        raise ApiError(f"{exc}; send {example}", status=400) from None
    if not isinstance(body, dict):
        raise ApiError(f"the JSON body must be an object like {example}", status=400)
    return body


def _json_image(value: Any, field: str) -> tuple[str, Any, str]:
    """``(kind, payload, name)`` of a JSON image (``{"b64": ...}``, ``{"path": ...}`` or bare base64 text)."""
    if isinstance(value, str):
        return "b64", value, f"{field}.b64"
    if isinstance(value, dict) and isinstance(value.get("b64"), str):
        return "b64", value["b64"], f"{field}.b64"
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return "path", value["path"], value["path"][:256]
    raise ApiError(f"{field} must be an image: {{\"b64\": \"<base64>\"}} or {{\"path\": \"<file under an "
                   f"allowed root>\"}}, got {type(value).__name__}", status=400)


def _required(field: str) -> ApiError:
    """The 422 a missing field gets (the message FastAPI's validation errors get, so multipart and JSON agree)."""
    return ApiError(f"invalid request: {field} is required (see /docs for the expected fields)", status=422)


def _form_text(form: Any, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


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


@router.post("/v1/faces/enroll", summary="Enrol a person: their name and photos showing their face",
             openapi_extra={"requestBody": {"required": True, "content": _ENROLL_BODY}})
async def enroll_faces(request: Request) -> dict[str, Any]:
    """``{"name", "added", "count", "refused", "images": [{"filename", "status": "enrolled" | "refused", "box",
    "reason"}]}``. A photo with no face, several faces, or that cannot be read is refused with its reason; the others
    enrol. Only the 128-number embeddings are kept, never the photos.

    Multipart: ``name``, ``files`` (repeated), ``detector``, ``upsample``; JSON: ``{"name", "images": [{"b64"}, ...],
    "detector", "upsample"}``. At most ``--max-archive-images`` (and 1,000) photos per request (413 past it)."""
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    limit = min(settings.max_archive_images, 1000)
    ctype = _content_type(request)
    if _is_json(ctype):
        body = await _json_body(request, '{"name": "Ada", "images": [{"b64": "..."}]}')
        name, images = body.get("name"), body.get("images")
        if name is None:
            raise _required("name")
        if images is None:
            raise _required("images")
        if not isinstance(images, list):
            raise ApiError(f"images must be a list of images like [{{\"b64\": \"...\"}}], got "
                           f"{type(images).__name__}", status=400)
        if len(images) > limit:
            raise ApiError(f"{len(images)} photos in one request, over the limit of {limit}; send fewer", status=413)
        params = {"detector": body.get("detector"), "upsample": body.get("upsample")}
        sources = [_json_image(v, f"images[{i}]") for i, v in enumerate(images)]
    elif ctype in _FORM_TYPES:
        form = await request.form()
        name = _form_text(form, "name")
        if name is None:
            raise _required("name")
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not uploads:
            raise _required("files")
        if len(uploads) > limit:
            raise ApiError(f"{len(uploads)} photos in one request, over the limit of {limit}; send fewer", status=413)
        params = {"detector": _form_text(form, "detector"), "upsample": _form_text(form, "upsample")}
        sources = [("bytes", await u.read(), (u.filename or f"file{i}")[:256]) for i, u in enumerate(uploads)]
    else:
        raise ApiError(f"unsupported Content-Type {ctype or '(none)'!r}; send multipart/form-data (name, files) or "
                       "JSON {\"name\", \"images\": [{\"b64\"}]}", status=415)
    name = await run_blocking(_faces("check_person_name"), name)  # 400 naming the rule (GalleryError)
    opts = check_face_params(params)
    if not sources:
        raise ApiError("images is empty: send at least one photo of the person", status=400)
    t0 = time.perf_counter()
    work = await _run_faces(_enroll_work, name, sources, settings, opts)
    store = DatabaseGalleryStore(engine)

    def save() -> int:
        if len(work["vectors"]):
            store.add(name, work["vectors"], work["meta"])
        return next((p["count"] for p in store.people() if p["name"] == name), 0)

    count = await run_blocking(save)
    added = len(work["meta"])
    return {"name": name, "added": added, "count": count, "refused": len(sources) - added, "images": work["rows"],
            "timings_ms": {"total": round((time.perf_counter() - t0) * 1e3, 2)}}


@router.post("/v1/faces/verify", summary="Are the faces of two images the same person?",
             openapi_extra={"parameters": _IDENTIFY_PARAMS[:3],
                            "requestBody": {"required": True, "content": _VERIFY_BODY}})
async def verify_faces(request: Request) -> dict[str, Any]:
    """``{"same", "distance", "threshold", "box_a", "box_b", "faces_a", "faces_b"}``; an image with no face is a 400
    naming it. Multipart files ``image_a`` and ``image_b``, or JSON ``{"image_a": {"b64"}, "image_b": {"b64"}}``;
    ``threshold`` (default the gallery's calibrated one, else 0.6), ``detector`` and ``upsample`` in the body or the
    query."""
    engine = request.app.state.engine
    settings: ServeSettings = request.app.state.settings
    query = request.query_params
    params: dict[str, Any] = {k: query.get(k) for k in ("detector", "upsample", "threshold")}
    ctype = _content_type(request)
    if _is_json(ctype):
        body = await _json_body(request, '{"image_a": {"b64": "..."}, "image_b": {"b64": "..."}}')
        for key in ("image_a", "image_b"):
            if body.get(key) is None:
                raise _required(key)
        params.update({k: body[k] for k in params if body.get(k) is not None})
        a, b = _json_image(body["image_a"], "image_a"), _json_image(body["image_b"], "image_b")
    elif ctype in _FORM_TYPES:
        form = await request.form()
        uploads = {}
        for key in ("image_a", "image_b"):
            upload = form.get(key)
            if not isinstance(upload, UploadFile):
                raise _required(key)
            uploads[key] = upload
        params.update({k: _form_text(form, k) for k in params if _form_text(form, k) is not None})
        a = ("bytes", await uploads["image_a"].read(), (uploads["image_a"].filename or "image_a")[:256])
        b = ("bytes", await uploads["image_b"].read(), (uploads["image_b"].filename or "image_b")[:256])
    else:
        raise ApiError(f"unsupported Content-Type {ctype or '(none)'!r}; send multipart/form-data (image_a, image_b) "
                       "or JSON {\"image_a\": {\"b64\"}, \"image_b\": {\"b64\"}}", status=415)
    opts = check_face_params(params, threshold=True)
    t = opts["threshold"] if opts["threshold"] is not None else await run_blocking(gallery_threshold, engine)
    t0 = time.perf_counter()
    result = await _run_faces(_verify_work, a, b, settings, opts, t)
    return {**result, "timings_ms": {"total": round((time.perf_counter() - t0) * 1e3, 2)}}


@router.post("/v1/faces/calibrate", summary="Calibrate the gallery's threshold on labelled pairs",
             openapi_extra={"parameters": _DETECT_PARAMS,
                            "requestBody": {"required": False, "content": _CALIBRATE_BODY}})
async def calibrate_faces(request: Request) -> dict[str, Any]:
    """Choose the threshold that makes the fewest mistakes (FAR + FRR) on pairs of faces of the same person and of
    different people, store it (identify and verify use it from then on), and report how well it separates.

    With a zip in the multipart field ``archive`` or as the body (``Content-Type: application/zip``): one folder of
    photos per person, checked like a training upload, decoded in memory, at most ``--max-archive-images`` photos;
    every pair of its faces, ``detector`` and ``upsample`` as for /v1/faces/detect. With no upload: every pair of the
    faces already enrolled (at most :data:`MAX_CALIBRATION_FACES`, a seeded sample past it). Either needs two people
    and one person with two faces or more (400 saying what is missing).

    ``{"calibration": {"threshold", "auc", "eer", "far", "frr", "n_pairs", "n_same", "n_different", "source",
    "people", "faces", "created"}, "threshold", "previous_threshold", "images" (zip: one row per photo, used or
    skipped with its reason), "timings_ms"}``."""
    settings: ServeSettings = request.app.state.settings
    engine = request.app.state.engine
    query = request.query_params
    params: dict[str, Any] = {"detector": query.get("detector"), "upsample": query.get("upsample")}
    blob = None
    ctype = _content_type(request)
    if ctype in _ZIP_TYPES:  # the zip as the raw body
        blob = ("body.zip", await request.body())
    elif ctype not in _FORM_TYPES and not _is_json(ctype) and await request.body():
        raise ApiError(f"unsupported Content-Type {ctype or '(none)'!r}; send the zip in the multipart field "
                       "'archive' (curl -F archive=@people.zip), or as the body with Content-Type: application/zip, "
                       "or no body to calibrate on the enrolled faces", status=415)
    if ctype in _FORM_TYPES:
        form = await request.form()
        params.update({k: _form_text(form, k) for k in params if _form_text(form, k) is not None})
        archive = form.get("archive")
        if not isinstance(archive, UploadFile):
            other = [k for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if other:
                raise ApiError(f"the zip goes in the multipart field 'archive', got field(s) {', '.join(other[:5])} "
                               "(curl -F archive=@people.zip); send no upload to calibrate on the enrolled faces",
                               status=400)
        else:
            blob = ((archive.filename or "archive.zip")[:256], await archive.read())
    opts = check_face_params(params)
    previous = await run_blocking(gallery_threshold, engine)
    t0 = time.perf_counter()
    if blob is not None:
        work = await _run_faces(_zip_calibration_work, blob, settings, opts)
        calibration, rows = work["calibration"], work["images"]
    else:
        groups, total = await run_blocking(gallery_groups, engine, limit=MAX_CALIBRATION_FACES)
        missing = _missing_pairs(groups)
        if missing:
            raise ApiError(f"the gallery holds {total} face(s) of {len(groups)} person(s): {missing}. Enrol more "
                           "(POST /v1/faces/enroll), or send a zip with one folder of photos per person in the field "
                           "'archive'", status=400)
        used = sum(len(v) for v in groups.values())
        source = f"gallery ({used} faces of {len(groups)} people" + (
            f", a sample of the {total} enrolled)" if used < total else ")")
        calibration, rows = await run_cpu(_calibrate_groups, groups, source), None
    await run_blocking(DatabaseGalleryStore(engine).set_calibration, calibration)
    out: dict[str, Any] = {"calibration": calibration, "threshold": calibration["threshold"],
                           "previous_threshold": previous}
    if rows is not None:
        out["images"] = rows
    return {**out, "timings_ms": {"total": round((time.perf_counter() - t0) * 1e3, 2)}}


@router.get("/v1/faces/gallery", summary="The enrolled people")
async def list_gallery(request: Request) -> dict[str, Any]:
    """``{"people": [{"name", "count", "created"}], "threshold", "calibrated", "calibration", "note"}`` (people by
    name): ``calibration`` is the stored one (threshold, AUC, EER, FAR, FRR, pairs, source, time), or None and
    ``note`` says the threshold is dlib's default 0.6."""
    engine = request.app.state.engine

    def read() -> dict[str, Any]:
        store = DatabaseGalleryStore(engine)
        calibration = store.get_calibration()
        out = {"people": store.people(), "threshold": gallery_threshold(engine), "calibrated": calibration is not None,
               "calibration": calibration}
        if calibration is None:
            out["note"] = ("not calibrated: the threshold is dlib's default 0.6; POST /v1/faces/calibrate calibrates "
                           "it on the enrolled faces or on a zip with one folder per person")
        return out

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
