"""A gallery of enrolled people: embeddings by name, 1:N identification, 1:1 verification, calibrated thresholds.

Storage sits behind the :class:`GalleryStore` protocol, so the same :class:`Gallery` runs on a local file
(:class:`FileGalleryStore`: one ``.npz`` file, rewritten atomically on every change), in memory
(:class:`MemoryGalleryStore`) or in the service's database (a store of its own). A gallery holds embeddings (128
numbers per face, not the photo, though they still identify the person) and where each came from; it keeps the
aligned face crops only when asked (``keep_photos=True``). :meth:`Gallery.delete` removes every vector and crop of a person.

Two faces are the same person when the Euclidean distance between their embeddings is at most the threshold:
:data:`DEFAULT_THRESHOLD` (0.6, dlib's documented value) until :meth:`Gallery.calibrate` stores a calibrated one.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn.tasks.faces.calibration import Calibration, calibrate as _calibrate
from pixlearn.tasks.faces.embedding import EMBEDDING_DIM, EMBEDDING_MODEL, FaceEmbedding, distances, embed
from pixlearn.tasks.faces.errors import FaceError, GalleryError, GalleryNotFoundError, NoFaceError

__all__ = ["DEFAULT_THRESHOLD", "MAX_NAME_LENGTH", "GalleryStore", "FileGalleryStore", "MemoryGalleryStore", "Gallery",
           "open_gallery", "check_person_name", "check_threshold", "verify"]

#: dlib's documented same-person threshold on the Euclidean distance of two embeddings (99.38 % on LFW).
DEFAULT_THRESHOLD = 0.6
#: Longest person name, in characters.
MAX_NAME_LENGTH = 64
#: Most images one enroll call takes, most faces a gallery holds, largest gallery file read.
MAX_ENROLL_IMAGES = 1000
MAX_GALLERY_FACES = 1_000_000
MAX_GALLERY_BYTES = 2 << 30
_FORMAT = "pixlearn-faces-gallery"
_VERSION = 1
_BAD_NAME_CHARS = re.compile(r"[/\\:*?\"<>|\x00-\x1f\x7f]")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def check_person_name(name: Any) -> str:
    """``name`` if it can name a person: 1..64 characters, no path characters (``/ \\ : * ? " < > |``), no control
    characters, no leading or trailing space, not ``.``/``..`` and not ``unknown`` (what identify answers).

    >>> check_person_name("Ada Lovelace")
    'Ada Lovelace'
    >>> check_person_name("../etc")
    Traceback (most recent call last):
    ...
    pixlearn.tasks.faces.errors.GalleryError: person name '../etc' holds a path or control character (/ \\ : * ? " < > |); use letters, digits, spaces, '-', '_', '.' or "'"
    """
    if not isinstance(name, str):
        raise GalleryError(f"person name must be text, got {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise GalleryError(f"person name must have 1 to {MAX_NAME_LENGTH} characters, got {len(name)}")
    if _BAD_NAME_CHARS.search(name):
        raise GalleryError(f"person name {name!r} holds a path or control character (/ \\ : * ? \" < > |); use letters, "
                           "digits, spaces, '-', '_', '.' or \"'\"")
    if name != name.strip() or name in (".", "..") or name.casefold() == "unknown":
        raise GalleryError(f"person name {name!r} is not allowed (no leading or trailing spaces, not '.', '..' or "
                           "'unknown', the answer for faces that match no one)")
    return name


def check_threshold(threshold: Any, *, name: str = "threshold") -> float:
    """``threshold`` as a float if it is a finite distance in (0, 4] (embeddings have a length of about 1.5, so two are at most about 3 apart).

    >>> check_threshold("0.5")
    0.5
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in (0, 4], got {threshold!r}; e.g. {DEFAULT_THRESHOLD}") from None
    if not math.isfinite(value) or not 0.0 < value <= 4.0:
        raise ConfigError(f"{name} must be a finite number in (0, 4] (a Euclidean distance between embeddings), got "
                          f"{threshold!r}; e.g. {DEFAULT_THRESHOLD} (dlib's documented value)")
    return value


def _check_vectors(vectors: Any) -> np.ndarray:
    arr = np.asarray(vectors, np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != EMBEDDING_DIM or not np.isfinite(arr).all():
        raise GalleryError(f"gallery vectors must be finite (n, {EMBEDDING_DIM}) numbers, got shape {arr.shape}")
    return arr


@runtime_checkable
class GalleryStore(Protocol):
    """Where a :class:`Gallery` keeps its people. Implementations: :class:`FileGalleryStore`,
    :class:`MemoryGalleryStore`, and the service's database store.

    A store keeps, per person, the embeddings and one ``meta`` dict per embedding (``source``: where it came from,
    ``box``; ``photo``: the aligned crop as PNG bytes, or None), plus one calibration (a dict, or None).
    """

    def add(self, name: str, vectors: np.ndarray, meta: Sequence[Mapping[str, Any]]) -> None:
        """Add ``vectors`` (k, 128) float32 of person ``name`` (created if new) with one ``meta`` dict each."""

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """Every embedding: the person name of each row, and the (n, 128) float32 matrix."""

    def people(self) -> list[dict[str, Any]]:
        """One dict per person: ``name``, ``count`` (embeddings), ``created`` (ISO time); sorted by name."""

    def delete(self, name: str) -> int:
        """Remove every embedding and photo of ``name``; the number of embeddings removed (0: no such person)."""

    def get_calibration(self) -> dict[str, Any] | None:
        """The stored calibration (:meth:`Calibration.to_dict`), or None."""

    def set_calibration(self, calibration: Mapping[str, Any] | None) -> None:
        """Store (or with None, clear) the calibration."""


class MemoryGalleryStore:
    """A :class:`GalleryStore` in memory (tests, one-off verification); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._vectors = np.zeros((0, EMBEDDING_DIM), np.float32)
        self._meta: list[dict[str, Any]] = []
        self._created: dict[str, str] = {}
        self._calibration: dict[str, Any] | None = None

    def add(self, name: str, vectors: np.ndarray, meta: Sequence[Mapping[str, Any]]) -> None:
        name = check_person_name(name)
        arr = _check_vectors(vectors)
        meta = list(meta) if meta is not None else [{} for _ in arr]
        if len(meta) != len(arr):
            raise GalleryError(f"add: {len(arr)} vectors but {len(meta)} meta entries")
        with self._lock:
            if len(self._names) + len(arr) > MAX_GALLERY_FACES:
                raise GalleryError(f"a gallery holds at most {MAX_GALLERY_FACES:,} faces")
            self._names.extend([name] * len(arr))
            self._vectors = np.concatenate([self._vectors, arr])
            self._meta.extend(dict(m) for m in meta)
            self._created.setdefault(name, _now())

    def vectors(self) -> tuple[list[str], np.ndarray]:
        with self._lock:
            return list(self._names), self._vectors.copy()

    def people(self) -> list[dict[str, Any]]:
        with self._lock:
            counts: dict[str, int] = {}
            for n in self._names:
                counts[n] = counts.get(n, 0) + 1
            return [{"name": n, "count": counts[n], "created": self._created.get(n)} for n in sorted(counts)]

    def photos(self, name: str) -> list[bytes]:
        with self._lock:
            return [m["photo"] for n, m in zip(self._names, self._meta) if n == name and m.get("photo")]

    def delete(self, name: str) -> int:
        with self._lock:
            keep = [i for i, n in enumerate(self._names) if n != name]
            removed = len(self._names) - len(keep)
            self._names = [self._names[i] for i in keep]
            self._vectors = self._vectors[keep]
            self._meta = [self._meta[i] for i in keep]
            self._created.pop(name, None)
            return removed

    def get_calibration(self) -> dict[str, Any] | None:
        return dict(self._calibration) if self._calibration else None

    def set_calibration(self, calibration: Mapping[str, Any] | None) -> None:
        self._calibration = dict(calibration) if calibration else None


class FileGalleryStore:
    """A :class:`GalleryStore` in one local ``.npz`` file, rewritten atomically on every change.

    The file holds ``header`` (JSON as bytes: format marker, version, embedding model, people with their creation
    time, one entry per embedding -- person, source, box, time -- and the calibration), ``vectors`` ((n, 128) float32)
    and ``photo_<k>`` (the PNG bytes of entry ``k``'s aligned crop, only for photos kept). No pickles: it loads with
    ``numpy.load(allow_pickle=False)``. Deleting a person rewrites the file without any of their entries.

    Parameters
    ----------
    path : path
        The gallery file (``.npz`` by convention).
    create : bool, default True
        When the file does not exist: start an empty gallery (written on the first ``add``); False raises
        :class:`~pixlearn.tasks.faces.errors.GalleryNotFoundError`.

    Raises
    ------
    GalleryError
        ``path`` exists and is not a pixlearn face gallery (or holds another embedding model's vectors).
    GalleryNotFoundError
        ``path`` does not exist and ``create`` is False.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], tuple[dict[str, Any], np.ndarray, dict[int, bytes]]] | None = None
        if self.path.is_dir():
            raise GalleryError(f"gallery {self.path}: is a folder; give a file name, e.g. {self.path / 'gallery.npz'}")
        if not self.path.exists():
            if not create:
                raise GalleryNotFoundError(f"gallery {self.path}: no such file; create one with "
                                           f"pixlearn faces enroll {self.path} NAME IMAGES...")
        else:
            self._read()  # refuses a file that is not a gallery, now

    # ---------------------------------------------------------------- file
    def _empty(self) -> tuple[dict[str, Any], np.ndarray, dict[int, bytes]]:
        header = {"format": _FORMAT, "version": _VERSION, "model": EMBEDDING_MODEL, "dim": EMBEDDING_DIM,
                  "created": _now(), "people": {}, "entries": [], "calibration": None}
        return header, np.zeros((0, EMBEDDING_DIM), np.float32), {}

    def _read(self) -> tuple[dict[str, Any], np.ndarray, dict[int, bytes]]:
        """The file's header (a copy: callers may change it), vectors (read-only) and photos; read again only when
        the file changed (its inode, size or modification time)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._empty()
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._cache is None or self._cache[0] != key:
            header, vectors, photos = self._load(st.st_size)
            vectors.setflags(write=False)
            self._cache = (key, (header, vectors, photos))
        header, vectors, photos = self._cache[1]
        return json.loads(json.dumps(header)), vectors, dict(photos)

    def _load(self, size: int) -> tuple[dict[str, Any], np.ndarray, dict[int, bytes]]:
        if size > MAX_GALLERY_BYTES:
            raise GalleryError(f"gallery {self.path}: {size:,} bytes, over the limit of {MAX_GALLERY_BYTES:,}")
        not_gallery = (f"gallery {self.path}: not a pixlearn face gallery; give a file written by "
                       "pixlearn faces enroll, or a new file name")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if "header" not in data.files or "vectors" not in data.files:
                    raise GalleryError(not_gallery)
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                vectors = np.asarray(data["vectors"], np.float32)
                photos = {int(k[6:]): bytes(data[k]) for k in data.files if k.startswith("photo_")}
        except GalleryError:
            raise
        except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GalleryError(f"{not_gallery} ({type(exc).__name__})") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise GalleryError(not_gallery)
        if header.get("version") != _VERSION or header.get("model") != EMBEDDING_MODEL:
            raise GalleryError(f"gallery {self.path}: version {header.get('version')} of model {header.get('model')!r}; "
                               f"this pixlearn reads version {_VERSION} of {EMBEDDING_MODEL!r}")
        if vectors.ndim != 2 or vectors.shape[1] != EMBEDDING_DIM or len(vectors) != len(header.get("entries", [])):
            raise GalleryError(f"gallery {self.path}: damaged (vectors {vectors.shape}, "
                               f"{len(header.get('entries', []))} entries)")
        return header, vectors, photos

    def _write(self, header: dict[str, Any], vectors: np.ndarray, photos: Mapping[int, bytes]) -> None:
        from pixlearn.io import atomic_write_bytes

        arrays: dict[str, np.ndarray] = {
            "header": np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8),
            "vectors": np.ascontiguousarray(vectors, np.float32),
        }
        for k, png in photos.items():
            arrays[f"photo_{k}"] = np.frombuffer(png, np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        if not self.path.parent.exists():
            raise GalleryError(f"gallery {self.path}: the folder {self.path.parent} does not exist; create it first")
        atomic_write_bytes(self.path, buf.getvalue())

    # ---------------------------------------------------------------- protocol
    def add(self, name: str, vectors: np.ndarray, meta: Sequence[Mapping[str, Any]]) -> None:
        name = check_person_name(name)
        arr = _check_vectors(vectors)
        meta = list(meta) if meta is not None else [{} for _ in arr]
        if len(meta) != len(arr):
            raise GalleryError(f"add: {len(arr)} vectors but {len(meta)} meta entries")
        with self._lock:
            header, old, photos = self._read()
            if len(old) + len(arr) > MAX_GALLERY_FACES:
                raise GalleryError(f"a gallery holds at most {MAX_GALLERY_FACES:,} faces")
            now = _now()
            header["people"].setdefault(name, {"created": now})
            for m in meta:
                k = len(header["entries"])
                photo = m.get("photo")
                header["entries"].append({"name": name, "source": m.get("source"), "box": m.get("box"), "added": now,
                                          "photo": bool(photo)})
                if photo:
                    photos[k] = bytes(photo)
            self._write(header, np.concatenate([old, arr]), photos)

    def vectors(self) -> tuple[list[str], np.ndarray]:
        with self._lock:
            header, vectors, _ = self._read()
        return [e["name"] for e in header["entries"]], vectors

    def people(self) -> list[dict[str, Any]]:
        with self._lock:
            header, _, _ = self._read()
        counts: dict[str, int] = {}
        for e in header["entries"]:
            counts[e["name"]] = counts.get(e["name"], 0) + 1
        return [{"name": n, "count": counts.get(n, 0), "created": header["people"][n].get("created")}
                for n in sorted(header["people"])]

    def photos(self, name: str) -> list[bytes]:
        """The kept aligned crops (PNG bytes) of ``name`` (empty unless enrolled with ``keep_photos``)."""
        with self._lock:
            header, _, photos = self._read()
        return [photos[k] for k, e in enumerate(header["entries"]) if e["name"] == name and k in photos]

    def delete(self, name: str) -> int:
        with self._lock:
            header, vectors, photos = self._read()
            keep = [k for k, e in enumerate(header["entries"]) if e["name"] != name]
            removed = len(header["entries"]) - len(keep)
            if removed == 0 and name not in header["people"]:
                return 0
            header["entries"] = [header["entries"][k] for k in keep]
            header["people"].pop(name, None)
            new_photos = {new: photos[old] for new, old in enumerate(keep) if old in photos}
            self._write(header, vectors[keep], new_photos)
            return removed

    def get_calibration(self) -> dict[str, Any] | None:
        with self._lock:
            header, _, _ = self._read()
        return header.get("calibration")

    def set_calibration(self, calibration: Mapping[str, Any] | None) -> None:
        with self._lock:
            header, vectors, photos = self._read()
            header["calibration"] = dict(calibration) if calibration else None
            self._write(header, vectors, photos)


def _read_any(image: Any, *, name: str) -> np.ndarray:
    """An RGB array from an array or anything :func:`pixlearn.io.read_image` reads (path, bytes, file)."""
    if isinstance(image, np.ndarray):
        from pixlearn.tasks.faces.embedding import as_rgb

        return as_rgb(image, name=name)
    from pixlearn.io import read_image

    return read_image(image)


def _source_name(image: Any, k: int) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else f"image {k}"


def _largest(faces: Sequence[FaceEmbedding]) -> FaceEmbedding:
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def verify(image_a: Any, image_b: Any, *, threshold: float | None = None, detector: str = "hog", upsample: int = 1,
           jitter: int = 0) -> dict[str, Any]:
    """1:1 verification: are the faces of two images the same person?

    Each image's largest face is compared (``faces_a``/``faces_b`` say how many were found).

    Parameters
    ----------
    image_a, image_b : ndarray, path or bytes
        RGB/grey uint8 arrays or image files.
    threshold : float, optional
        Same person at or below this distance, in (0, 4]; default :data:`DEFAULT_THRESHOLD`.
    detector, upsample, jitter
        See :func:`~pixlearn.tasks.faces.embedding.embed`.

    Returns
    -------
    dict
        ``same`` (bool), ``distance``, ``threshold``, ``box_a``, ``box_b``, ``faces_a``, ``faces_b``.

    Raises
    ------
    NoFaceError
        An image holds no face (the message says which).
    ImageDecodeError
        An image cannot be read.
    """
    t = DEFAULT_THRESHOLD if threshold is None else check_threshold(threshold)
    found = []
    for label, image in (("image_a", image_a), ("image_b", image_b)):
        faces = embed(_read_any(image, name=label), detector=detector, upsample=upsample, jitter=jitter)
        if not faces:
            raise NoFaceError(f"{label} ({_source_name(image, 0) if not isinstance(image, np.ndarray) else 'array'}): "
                              f"no face found with the {detector} detector; try --detector cnn or --upsample 2")
        found.append((_largest(faces), len(faces)))
    (fa, na), (fb, nb) = found
    d = float(np.linalg.norm(fa.vector.astype(np.float64) - fb.vector.astype(np.float64)))
    return {"same": bool(d <= t), "distance": round(d, 4), "threshold": t, "box_a": list(fa.box),
            "box_b": list(fb.box), "faces_a": na, "faces_b": nb}


class Gallery:
    """Enrolled people, 1:N identification and 1:1 verification over a :class:`GalleryStore`.

    Parameters
    ----------
    store : GalleryStore or path
        Where the people are kept; a path opens a :class:`FileGalleryStore` (created on the first enroll).
    detector : {"hog", "cnn"}, default "hog"
        The face detector for enroll, identify, verify and calibrate.
    upsample : int, default 1
        0..3 (see :func:`~pixlearn.ops.faces.detect_faces`).
    jitter : int, default 0
        0..100 (see :func:`~pixlearn.tasks.faces.embedding.embed`).

    Examples
    --------
    >>> g = Gallery(MemoryGalleryStore())
    >>> g.store.add("ada", np.eye(128, dtype=np.float32)[:1], [{"source": "hand-made"}])
    >>> [(r["name"], r["distance"]) for r in g.match(np.eye(128, dtype=np.float32)[:2])]
    [('ada', 0.0), ('unknown', 1.4142)]
    """

    def __init__(self, store: GalleryStore | str | os.PathLike[str], *, detector: str = "hog", upsample: int = 1,
                 jitter: int = 0) -> None:
        from pixlearn.ops.faces import check_detect_options
        from pixlearn.tasks.faces.embedding import _check_jitter

        if isinstance(store, (str, os.PathLike)):
            store = FileGalleryStore(store)
        if not isinstance(store, GalleryStore):
            raise GalleryError(f"store must implement GalleryStore (add, vectors, people, delete, get_calibration, "
                               f"set_calibration), got {type(store).__name__}")
        self.store = store
        self.detector, self.upsample = check_detect_options(detector, upsample)
        self.jitter = _check_jitter(jitter)

    # ---------------------------------------------------------------- thresholds
    @property
    def calibration(self) -> Calibration | None:
        """The stored :class:`Calibration`, or None."""
        data = self.store.get_calibration()
        return Calibration.from_dict(data) if data else None

    @property
    def threshold(self) -> float:
        """The calibrated threshold, else :data:`DEFAULT_THRESHOLD`."""
        cal = self.calibration
        return float(cal.threshold) if cal is not None else DEFAULT_THRESHOLD

    def _threshold(self, threshold: float | None) -> float:
        return self.threshold if threshold is None else check_threshold(threshold)

    # ---------------------------------------------------------------- people
    def people(self) -> list[dict[str, Any]]:
        """One dict per person: ``name``, ``count``, ``created``."""
        return self.store.people()

    def delete(self, name: str) -> int:
        """Remove every embedding (and kept photo) of ``name``; how many embeddings were removed.

        Raises :class:`~pixlearn.tasks.faces.errors.GalleryError` when the gallery has no such person.
        """
        name = check_person_name(name)
        known = [p["name"] for p in self.store.people()]
        if name not in known:
            from pixlearn._core.names import closest

            hint = closest(name, known, n=1)
            raise GalleryError(f"no person {name!r} in the gallery" + (f"; did you mean {hint[0]!r}?" if hint else "")
                               + (f" People: {', '.join(known[:20])}" if known else " (it is empty)"))
        return self.store.delete(name)

    def enroll(self, name: str, images: Iterable[Any], *, keep_photos: bool = False,
               progress: bool | None = False) -> dict[str, Any]:
        """Add a person's faces: one embedding per image that holds exactly one face.

        An image with no face, with several faces, or that cannot be read is refused with its reason; the others
        still enrol.

        Parameters
        ----------
        name : str
            The person (see :func:`check_person_name`); enrolling a known name adds to that person.
        images : iterable of ndarray, path or bytes
            At most 1,000 images.
        keep_photos : bool, default False
            Also keep each face's aligned 150 x 150 crop (PNG) in the gallery; by default only embeddings are kept.
        progress : bool or None, default False
            A progress bar on stderr (None: when stderr is a terminal).

        Returns
        -------
        dict
            ``name``, ``added`` (embeddings added now), ``count`` (the person's embeddings in all), ``refused`` (how
            many images were refused) and ``images``: one row per image with ``source``, ``status`` ("enrolled" or
            "refused"), ``box`` and ``reason``.
        """
        name = check_person_name(name)
        images = list(images)
        if not images:
            raise ConfigError("enroll needs at least one image")
        if len(images) > MAX_ENROLL_IMAGES:
            raise ConfigError(f"enroll takes at most {MAX_ENROLL_IMAGES} images per call, got {len(images)}")
        from pixlearn.engine.progress import progress_bar

        rows: list[dict[str, Any]] = []
        vectors: list[np.ndarray] = []
        meta: list[dict[str, Any]] = []
        bar, task = progress_bar(progress, len(images), "enrolling")
        with bar:
            for k, image in enumerate(images):
                row = self._enroll_one(image, k, keep_photos, vectors, meta)
                rows.append(row)
                bar.advance(task)
        if vectors:
            self.store.add(name, np.stack(vectors), meta)
        count = next((p["count"] for p in self.store.people() if p["name"] == name), 0)
        return {"name": name, "added": len(vectors), "count": count, "refused": len(rows) - len(vectors), "images": rows}

    def _enroll_one(self, image: Any, k: int, keep_photos: bool, vectors: list[np.ndarray],
                    meta: list[dict[str, Any]]) -> dict[str, Any]:
        """One image of :meth:`enroll`: its row, and its vector and meta appended when it holds exactly one face."""
        source = _source_name(image, k)
        row: dict[str, Any] = {"source": source, "status": "refused", "box": None, "reason": None}
        try:
            img = _read_any(image, name=f"images[{k}]")
            faces = embed(img, detector=self.detector, upsample=self.upsample, jitter=self.jitter)
        except (PixlearnError, OSError) as exc:
            row["reason"] = f"{type(exc).__name__}: {exc}"
            return row
        if len(faces) != 1:
            row["reason"] = (f"no face found (detector {self.detector}, upsample {self.upsample}); try the cnn "
                             "detector or a larger photo" if not faces else
                             f"{len(faces)} faces found; enrol photos that show only this person (crop the others out)")
            return row
        face = faces[0]
        photo = None
        if keep_photos:
            from pixlearn.io import encode_image
            from pixlearn.tasks.faces.embedding import align

            photo = encode_image(align(img, [face.box])[0], "png")
        vectors.append(face.vector)
        meta.append({"source": source, "box": list(face.box), "photo": photo})
        row.update(status="enrolled", box=list(face.box))
        return row

    # ---------------------------------------------------------------- matching
    def match(self, vectors: np.ndarray, *, threshold: float | None = None, top_k: int = 1) -> list[dict[str, Any]]:
        """Match embeddings (k, 128) against the gallery: for each, the nearest person and its distance.

        A person's distance is that of their nearest embedding. ``name`` is ``"unknown"`` when the nearest person is
        farther than the threshold; ``candidates`` lists the ``top_k`` nearest people (name, distance).

        Raises :class:`~pixlearn.tasks.faces.errors.GalleryError` when the gallery is empty.
        """
        t = self._threshold(threshold)
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= int(top_k) <= 100:
            raise ConfigError(f"top_k must be an integer in [1, 100], got {top_k!r}")
        query = _check_vectors(vectors)
        names, matrix = self.store.vectors()
        if not names:
            raise GalleryError("the gallery holds no one; enroll people first (pixlearn faces enroll GALLERY NAME IMAGES)")
        people = sorted(set(names))
        index = {n: i for i, n in enumerate(people)}
        owner = np.array([index[n] for n in names])
        d = distances(query, matrix)
        out = []
        for row in d:
            best = np.full(len(people), np.inf)
            np.minimum.at(best, owner, row)
            order = np.argsort(best, kind="stable")[: int(top_k)]
            nearest = float(best[order[0]])
            out.append({"name": people[order[0]] if nearest <= t else "unknown", "distance": round(nearest, 4),
                        "threshold": t,
                        "candidates": [{"name": people[i], "distance": round(float(best[i]), 4)} for i in order]})
        return out

    def identify(self, image: Any, *, threshold: float | None = None, top_k: int = 1) -> list[dict[str, Any]]:
        """1:N identification: every face in ``image``, named after the nearest enrolled person, or ``"unknown"``.

        Parameters
        ----------
        image : ndarray, path or bytes
        threshold : float, optional
            A face is a person when its distance is at most this, in (0, 4]; default :attr:`threshold` (calibrated,
            else 0.6).
        top_k : int, default 1
            How many nearest people each face's ``candidates`` lists, 1..100.

        Returns
        -------
        list of dict
            One per face, highest detection score first: ``box`` (x0, y0, x1, y1), ``name`` (or ``"unknown"``),
            ``distance`` (to the nearest person), ``score`` (the detector's), ``threshold``, ``candidates``.
        """
        t = self._threshold(threshold)
        img = _read_any(image, name="image")
        faces = embed(img, detector=self.detector, upsample=self.upsample, jitter=self.jitter)
        if not faces:
            self.match(np.zeros((0, EMBEDDING_DIM), np.float32), threshold=t, top_k=top_k)  # an empty gallery still says so
            return []
        matches = self.match(np.stack([f.vector for f in faces]), threshold=t, top_k=top_k)
        return [{"box": list(f.box), "name": m["name"], "distance": m["distance"], "score": round(f.score, 4),
                 "threshold": t, "candidates": m["candidates"]} for f, m in zip(faces, matches)]

    def verify(self, image_a: Any, image_b: Any, *, threshold: float | None = None) -> dict[str, Any]:
        """1:1 verification with this gallery's threshold (see :func:`verify`): ``same``, ``distance``, ``threshold``..."""
        return verify(image_a, image_b, threshold=self._threshold(threshold), detector=self.detector,
                      upsample=self.upsample, jitter=self.jitter)

    # ---------------------------------------------------------------- calibration
    def embed_folder(self, folder: str | os.PathLike[str], *, progress: bool | None = None) -> tuple[dict[str, list[np.ndarray]], list[dict[str, Any]]]:
        """The embeddings of a folder with one subfolder per person (images with exactly one face), and one row per
        image (``path``, ``person``, ``status``, ``reason``)."""
        from pixlearn.engine.progress import progress_bar
        from pixlearn.io import expand_sources

        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"{root}: not a folder; give a folder with one subfolder of photos per person")
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(subs) < 2:
            raise ConfigError(f"{root}: {len(subs)} person subfolder(s); calibration needs at least two people, one "
                              "subfolder of photos each")
        work = [(sub.name, p) for sub in subs for p, _ in expand_sources(sub)]
        if len(work) > 5000:
            raise ConfigError(f"{root}: {len(work)} images; calibration takes at most 5000")
        groups: dict[str, list[np.ndarray]] = {}
        rows = []
        bar, task = progress_bar(progress, len(work), "embedding")
        with bar:
            for person, path in work:
                row = {"path": str(path), "person": person, "status": "used", "reason": None}
                try:
                    faces = embed(_read_any(path, name=str(path)), detector=self.detector, upsample=self.upsample,
                                  jitter=self.jitter)
                    if len(faces) != 1:
                        raise FaceError(f"{len(faces)} faces found; calibration uses photos of one face")
                    groups.setdefault(person, []).append(faces[0].vector)
                except (PixlearnError, OSError) as exc:
                    row.update(status="skipped", reason=f"{type(exc).__name__}: {exc}")
                rows.append(row)
                bar.advance(task)
        return groups, rows

    def calibrate(self, data: Any, *, progress: bool | None = None) -> Calibration:
        """Calibrate the threshold and store it in the gallery (identify and verify use it from then on).

        Parameters
        ----------
        data : path, pairs or mapping
            A folder with one subfolder of photos per person (every pair of faces among them is used), or what
            :func:`~pixlearn.tasks.faces.calibration.calibrate` takes (labelled pairs, or vectors by name).

        Returns
        -------
        Calibration
            Its ``source`` says what it was calibrated on.
        """
        if isinstance(data, (str, os.PathLike)):
            groups, rows = self.embed_folder(data, progress=progress)
            skipped = sum(1 for r in rows if r["status"] != "used")
            cal = _calibrate({k: np.stack(v) for k, v in groups.items()}, source=f"folder {Path(data).resolve()} ({len(rows)} images, {skipped} skipped; "
                                            f"detector {self.detector}, upsample {self.upsample})")
        else:
            cal = _calibrate(data)
        self.store.set_calibration(cal.to_dict())
        return cal


def open_gallery(path: str | os.PathLike[str], *, create: bool = False, detector: str = "hog", upsample: int = 1,
                 jitter: int = 0) -> Gallery:
    """A :class:`Gallery` on the file ``path``; a missing file raises
    :class:`~pixlearn.tasks.faces.errors.GalleryNotFoundError` unless ``create``."""
    return Gallery(FileGalleryStore(path, create=create), detector=detector, upsample=upsample, jitter=jitter)
