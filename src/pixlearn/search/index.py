"""The search index: FAISS over embeddings, persisted to a folder with its manifest.

A folder holds ``index.faiss`` (the FAISS index; vector ``i`` is ``manifest["entries"][i]``) and ``manifest.json``:
the embedder's record (kind, model name or run path, weights sha256, dimension, metric, preprocessing), the index
kind and type with their parameters, and one entry per image (absolute path, size in bytes, sha256).

Float embeddings use inner product on L2-normalised vectors (cosine similarity). The ``kind`` chosen at build says
what the index becomes once it holds ``threshold`` vectors; below that it is always the exact flat index:

- ``flat``: exact ``IndexFlatIP`` at every size;
- ``hnsw``: ``IndexHNSWFlat`` (M 32, efConstruction 80, efSearch 64 by default) from ``threshold`` on;
- ``ivf``: ``IndexIVFFlat`` over an inner-product flat quantizer, trained the moment the collection reaches
  ``threshold`` (nlist ~ 4 sqrt(n), at most n / 39 so that each centroid has enough training points; k-means on
  up to 64 vectors per list, 10 iterations),
  searched with ``nprobe`` lists (default 32, settable per search); retrained on all vectors when the collection
  reaches 4x the size it was trained on;
- ``auto``: :data:`AUTO_LARGE_KIND` from ``threshold`` on (see docs/search.md for the measurements behind it).

Perceptual hashes always use a binary flat index (exact Hamming distance). Removal keeps ``vector i = entries[i]``:
flat, binary flat and IVF indexes remove in place (``remove_ids``; IVF ids are renumbered in their lists), an HNSW
graph is rebuilt from the vectors it stores (FAISS cannot delete from HNSW).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ImageNotFoundError

__all__ = ["Index", "IndexMismatchError", "AddReport", "MANIFEST_FORMAT", "IMAGE_SUFFIXES", "INDEX_KINDS",
           "AUTO_LARGE_KIND", "list_images", "ivf_nlist", "make_faiss_index", "remove"]

MANIFEST_FORMAT = "pixlearn.search-index/1"
#: The image files a folder contributes (by extension, case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_HNSW_THRESHOLD = 50_000
#: The vector count from which an ``auto``/``hnsw``/``ivf`` index leaves the exact flat index.
DEFAULT_THRESHOLD = DEFAULT_HNSW_THRESHOLD
MAX_THRESHOLD = 1_000_000_000
MAX_TOP_K = 1000
#: What ``kind`` accepts at build.
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")
#: What an ``auto`` index becomes at ``threshold`` vectors (docs/search.md says why).
AUTO_LARGE_KIND = "ivf"
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 80
DEFAULT_EF_SEARCH = 64
MAX_EF_SEARCH = 4096
DEFAULT_NPROBE = 32
MAX_NLIST = 65536
#: An IVF index is retrained (nlist recomputed) when it reaches this many times the size it was trained on.
IVF_RETRAIN_FACTOR = 4
#: FAISS's k-means wants at least 39 training points per centroid.
_IVF_MIN_POINTS_PER_LIST = 39
#: k-means samples at most this many training vectors per list, for this many iterations (training time is
#: sample x nlist x dim x iterations: minutes, not hours, at a million vectors).
_IVF_MAX_POINTS_PER_LIST = 64
_IVF_KMEANS_ITERATIONS = 10


class IndexMismatchError(ConfigError):
    """A query embedded with another model or preprocessing than the index's."""


def _faiss() -> Any:
    import faiss

    return faiss


def list_images(source: str | os.PathLike[str]) -> list[Path]:
    """The image files under folder ``source`` (recursively, sorted), or ``[source]`` for one file."""
    path = Path(source)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImageNotFoundError(f"{path}: no such file or folder; pass a folder of images or image files")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class AddReport:
    """What an ``add`` did: files added, skipped (fingerprint already indexed) and unreadable (with the reason)."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"added": len(self.added), "skipped": len(self.skipped), "failed": len(self.failed),
                "errors": [{"path": p, "error": e} for p, e in self.failed.items()]}


def _check_threshold(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THRESHOLD:
        raise ConfigError(f"threshold (hnsw_threshold) must be an integer in 1..{MAX_THRESHOLD} (vectors), got {value!r}")
    return value


def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _check_kind(kind: Any, binary: bool) -> str:
    if kind not in INDEX_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    if binary and kind in ("hnsw", "ivf"):
        raise ConfigError(f"kind {kind!r} needs float embeddings; a phash index is always an exact binary flat index "
                          "(Hamming distance): use kind auto or flat")
    return str(kind)


def ivf_nlist(n: int) -> int:
    """The number of IVF lists for ``n`` training vectors: round(4 sqrt(n)), at most n / 39 and 65536, at least 1.

    >>> [ivf_nlist(n) for n in (10, 1_000, 50_000, 1_000_000)]
    [1, 25, 894, 4000]
    """
    return max(1, min(round(4 * n ** 0.5), n // _IVF_MIN_POINTS_PER_LIST, MAX_NLIST))


def make_faiss_index(index_type: str, dim: int, *, train: np.ndarray | None = None, nprobe: int = DEFAULT_NPROBE,
                     ef_search: int = DEFAULT_EF_SEARCH, hnsw_m: int = _HNSW_M) -> Any:
    """An empty FAISS index of ``index_type`` (``binary_flat``, ``flat``, ``hnsw``, ``ivf``) as :class:`Index` makes
    it: inner product for floats; IVF trained on ``train`` (nlist :func:`ivf_nlist`), empty but trained.
    ``hnsw_m`` is for measurements only (the index always uses M 32)."""
    faiss = _faiss()
    if index_type == "binary_flat":
        return faiss.IndexBinaryFlat(dim)
    if index_type == "flat":
        return faiss.IndexFlatIP(dim)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = ef_search
        return index
    if index_type == "ivf":
        if train is None or not len(train):
            raise ConfigError("an IVF index is trained on vectors; none were given")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, ivf_nlist(len(train)), faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = _IVF_MAX_POINTS_PER_LIST
        index.cp.niter = _IVF_KMEANS_ITERATIONS
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        index.nprobe = min(nprobe, index.nlist)
        return index
    raise ConfigError(f"index type {index_type!r} is not one of binary_flat, flat, hnsw, ivf")


class Index:
    """An embedder plus a FAISS index of images; see the module docstring for the folder's layout.

    Parameters
    ----------
    embedder : Embedder
        What turns images into vectors (:func:`~pixlearn.search.embed.load_embedder`).
    hnsw_threshold : int, default 50,000
        The older name of ``threshold`` (kept; ``threshold`` wins when both are given).
    kind : {"auto", "flat", "hnsw", "ivf"}, default "auto"
        What the index becomes from ``threshold`` vectors on (below it: exact flat). Hash embedders take
        ``auto``/``flat`` only.
    threshold : int, optional
        1..1e9 vectors; default ``hnsw_threshold``.
    nprobe : int, default 32
        IVF lists searched per query unless a search says otherwise (1..65536; clamped to nlist).
    ef_search : int, default 64
        HNSW candidate list size per query unless a search says otherwise (1..4096).
    """

    #: What the last :meth:`build` added, skipped and could not read.
    last_report: AddReport | None = None

    def __init__(self, embedder: Any, *, hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD, kind: str = "auto",
                 threshold: int | None = None, nprobe: int = DEFAULT_NPROBE,
                 ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self.embedder = embedder
        self.model = embedder.describe()
        self.kind = _check_kind(kind, bool(embedder.binary))
        self.hnsw_threshold = _check_threshold(hnsw_threshold if threshold is None else threshold)
        self.nprobe = _check_int(nprobe, "nprobe", 1, MAX_NLIST)
        self.ef_search = _check_int(ef_search, "ef_search", 1, MAX_EF_SEARCH)
        self.ivf_trained_on = 0
        self.entries: list[dict[str, Any]] = []
        self._known: set[str] = set()
        self.index_type = "binary_flat" if embedder.binary else "flat"
        self.faiss_index = self._new_index(self.index_type)

    @property
    def threshold(self) -> int:
        """The vector count from which the index leaves the exact flat type (same as ``hnsw_threshold``)."""
        return self.hnsw_threshold

    @property
    def large_kind(self) -> str | None:
        """What this index becomes at ``threshold`` vectors: ``hnsw``, ``ivf``, or None (stays exact)."""
        if self.index_type == "binary_flat" or self.kind == "flat":
            return None
        return AUTO_LARGE_KIND if self.kind == "auto" else self.kind

    # ------------------------------------------------------------ build, add
    def _new_index(self, index_type: str, train: np.ndarray | None = None) -> Any:
        index = make_faiss_index(index_type, int(self.model["dim"]), train=train, nprobe=self.nprobe,
                                 ef_search=self.ef_search)
        if index_type == "ivf":
            self.ivf_trained_on = len(train) if train is not None else 0
        return index

    @classmethod
    def build(cls, source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], embedder: Any, *,
              out: str | os.PathLike[str] | None = None, hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
              progress: bool | None = None, batch_size: int = 32, kind: str = "auto",
              threshold: int | None = None, nprobe: int = DEFAULT_NPROBE, ef_search: int = DEFAULT_EF_SEARCH) -> Index:
        """Index the images of folder (or file list) ``source`` with ``embedder`` (an :class:`Embedder`, or what
        :func:`~pixlearn.search.embed.load_embedder` takes: ``"phash"``, a run folder, a timm name); saved to ``out``
        when given. ``kind``, ``threshold``, ``nprobe`` and ``ef_search`` are the constructor's. ``index.last_report``
        says what was added, skipped and unreadable."""
        from pixlearn.search.embed import load_embedder

        paths = list_images(source) if isinstance(source, (str, os.PathLike)) else [Path(p) for p in source]
        emb = load_embedder(embedder, batch_size=batch_size) if isinstance(embedder, (str, os.PathLike)) else embedder
        index = cls(emb, hnsw_threshold=hnsw_threshold, kind=kind, threshold=threshold, nprobe=nprobe,
                    ef_search=ef_search)
        index.last_report = index.add(paths, progress=progress, batch_size=batch_size)
        if out is not None:
            index.save(out)
        return index

    def add(self, paths: Sequence[str | os.PathLike[str]], *, progress: bool | None = None,
            batch_size: int = 32) -> AddReport:
        """Embed and add ``paths``; files whose sha256 is already indexed are skipped, unreadable ones reported.

        The index changes type when this add makes it reach ``threshold`` (flat -> HNSW/IVF, the vectors move over)
        and an IVF index is retrained when it reaches 4x the size it was trained on.
        """
        from pixlearn.search.embed import embed_files, file_sha256

        self._need_embedder("add images")
        report = AddReport()
        todo: list[Path] = []
        facts: list[tuple[int, str]] = []
        seen = set(self._known)
        for p in map(Path, paths):
            try:
                size, digest = p.stat().st_size, file_sha256(p)
            except OSError as exc:
                report.failed[str(p)] = f"{type(exc).__name__}: {exc.strerror or exc}"
                continue
            if digest in seen:
                report.skipped.append(str(p))
                continue
            seen.add(digest)
            todo.append(p)
            facts.append((size, digest))
        vectors, ok, errors = embed_files(self.embedder, todo, progress=progress, batch_size=batch_size)
        for i, err in errors.items():
            report.failed[str(todo[i])] = err
        if len(ok):
            self._add_vectors(vectors)
            for row, i in enumerate(ok):
                size, digest = facts[i]
                self.entries.append({"path": str(todo[i].resolve()), "size": size, "sha256": digest})
                self._known.add(digest)
                report.added.append(str(todo[i]))
        return report

    def _add_vectors(self, vectors: np.ndarray) -> None:
        """Add vectors (rows in entry order), switching type or retraining first when the new count asks for it."""
        vectors = np.ascontiguousarray(vectors)
        total = self.faiss_index.ntotal + len(vectors)
        target = self.large_kind
        if target is not None and self.index_type == "flat" and total >= self.hnsw_threshold:
            self._rebuild(target, np.concatenate([self.vectors(), vectors]))
        elif self.index_type == "ivf" and total >= IVF_RETRAIN_FACTOR * max(self.ivf_trained_on, 1):
            self._rebuild("ivf", np.concatenate([self.vectors(), vectors]))
        else:
            self.faiss_index.add(vectors)

    def _rebuild(self, index_type: str, vectors: np.ndarray) -> None:
        """A new index of ``index_type`` holding ``vectors`` (IVF: trained on them)."""
        index = self._new_index(index_type, train=vectors if index_type == "ivf" else None)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors))
        self.index_type, self.faiss_index = index_type, index

    def vectors(self) -> np.ndarray:
        """Every stored vector, in entry order (float32 (N, dim), or uint8 (N, dim // 8) codes for hashes)."""
        index, n = self.faiss_index, self.faiss_index.ntotal
        if self.index_type != "ivf":
            if n == 0:
                width = index.d // 8 if self.index_type == "binary_flat" else index.d
                return np.zeros((0, width), np.uint8 if self.index_type == "binary_flat" else np.float32)
            return index.reconstruct_n(0, n)
        faiss = _faiss()
        out = np.zeros((n, index.d), np.float32)
        lists = index.invlists
        for lst in range(index.nlist):
            size = lists.list_size(lst)
            if size:
                ids = faiss.rev_swig_ptr(lists.get_ids(lst), size)
                codes = faiss.rev_swig_ptr(lists.get_codes(lst), size * lists.code_size)
                out[ids] = codes.view(np.float32).reshape(size, index.d)
        return out

    # ------------------------------------------------------------ remove
    def remove(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Remove the entries of ``paths`` (files, or folders: every entry under them; matched by absolute path,
        the files need not exist any more). Returns how many entries were removed; paths not indexed are ignored.

        Flat, binary flat and IVF indexes remove in place; an HNSW index is rebuilt from the vectors it stores
        (about as long as building it). The index keeps its type whatever its new size.
        """
        drop, _ = self.match(paths)
        if not drop:
            return 0
        ids = np.asarray(drop, dtype=np.int64)
        if self.index_type == "hnsw":
            self._rebuild("hnsw", np.delete(self.vectors(), ids, axis=0))
        else:
            faiss = _faiss()
            removed = self.faiss_index.remove_ids(faiss.IDSelectorBatch(ids))
            if removed != len(drop):
                raise ConfigError(f"FAISS removed {removed} vectors, expected {len(drop)}; the index is left unsaved")
            if self.index_type == "ivf":
                self._renumber_ivf(ids)
        dropped = set(drop)
        self.entries = [e for i, e in enumerate(self.entries) if i not in dropped]
        self._known = {str(e["sha256"]) for e in self.entries}
        return len(drop)

    def match(self, paths: Iterable[str | os.PathLike[str]]) -> tuple[list[int], list[str]]:
        """The entry positions ``paths`` name (a file: its entry; a folder: every entry under it), and the paths
        that name none."""
        wanted = [(str(p), str(Path(p).resolve())) for p in paths]
        hits: set[int] = set()
        unmatched: list[str] = []
        for given, full in wanted:
            prefix = full.rstrip(os.sep) + os.sep
            found = [i for i, e in enumerate(self.entries) if e["path"] == full or str(e["path"]).startswith(prefix)]
            if not found:
                unmatched.append(given)
            hits.update(found)
        return sorted(hits), unmatched

    def _renumber_ivf(self, removed: np.ndarray) -> None:
        """After ``remove_ids``, shift every IVF id down by the removed ids below it (ids stay 0..N-1, in order)."""
        faiss = _faiss()
        lists = self.faiss_index.invlists
        for lst in range(self.faiss_index.nlist):
            size = lists.list_size(lst)
            if size:
                ids = faiss.rev_swig_ptr(lists.get_ids(lst), size)
                ids -= np.searchsorted(removed, ids)

    # ------------------------------------------------------------ search
    def check_embedder(self, embedder: Any) -> None:
        """Refuse an embedder whose record (model, weights, preprocessing, dimension) differs from the index's."""
        theirs = embedder.describe()
        if theirs != self.model:
            diff = sorted(k for k in set(theirs) | set(self.model) if theirs.get(k) != self.model.get(k))
            raise IndexMismatchError(
                f"the query is embedded with {theirs.get('kind')} {theirs.get('name')!r} but the index was built with "
                f"{self.model.get('kind')} {self.model.get('name')!r} (differing: {', '.join(diff)}); "
                "search with the index's own model (omit the embedder) or rebuild the index with this one")

    def search(self, query: str | os.PathLike[str] | np.ndarray, *, top_k: int = 10,
               embedder: Any | None = None, nprobe: int | None = None,
               ef_search: int | None = None) -> list[dict[str, Any]]:
        """The ``top_k`` (1..1000) nearest images to ``query`` (a file or a uint8 RGB array): rows of rank, path and
        score (cosine similarity, higher is nearer) or distance (Hamming bits, lower is nearer).

        ``nprobe`` (IVF lists to visit, 1..65536) and ``ef_search`` (HNSW candidates, 1..4096) override the index's
        own for this query; each is ignored by the other index types.
        """
        from pixlearn.search.embed import read_rgb

        self._check_search(top_k, nprobe, ef_search)
        if embedder is not None:
            self.check_embedder(embedder)
        if embedder is None:
            self._need_embedder("search with an image")
        emb = embedder or self.embedder
        image = query if isinstance(query, np.ndarray) else read_rgb(query)
        vector = np.ascontiguousarray(emb.embed([image]))
        return self.search_vectors(vector, top_k=top_k, nprobe=nprobe, ef_search=ef_search)[0]

    def _need_embedder(self, what: str) -> None:
        if self.embedder is None:
            raise ConfigError(f"this index was opened with Index.read, without its model; to {what}, open it with "
                              "Index.load(folder) (or pass embedder=)")

    def _check_search(self, top_k: Any, nprobe: Any, ef_search: Any) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be an integer in 1..{MAX_TOP_K}, got {top_k!r}")
        if nprobe is not None:
            _check_int(nprobe, "nprobe", 1, MAX_NLIST)
        if ef_search is not None:
            _check_int(ef_search, "ef_search", 1, MAX_EF_SEARCH)

    def search_vectors(self, vectors: np.ndarray, *, top_k: int = 10, nprobe: int | None = None,
                       ef_search: int | None = None) -> list[list[dict[str, Any]]]:
        """:meth:`search` for vectors already embedded with the index's model: one list of rows per query row."""
        self._check_search(top_k, nprobe, ef_search)
        vectors = np.ascontiguousarray(vectors)
        width = self.faiss_index.d // 8 if self.index_type == "binary_flat" else self.faiss_index.d
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise ConfigError(f"query vectors must have shape (N, {width}), got {vectors.shape}")
        k = min(top_k, self.faiss_index.ntotal)
        if k == 0:
            return [[] for _ in range(len(vectors))]
        scores, ids = self.faiss_index.search(vectors, k, params=self._search_params(nprobe, ef_search))
        binary = self.index_type == "binary_flat"
        out = []
        for srow, irow in zip(scores, ids):
            rows: list[dict[str, Any]] = []
            for s, i in zip(srow, irow):
                if i < 0:
                    continue
                row: dict[str, Any] = {"rank": len(rows) + 1, "path": self.entries[int(i)]["path"]}
                row["distance" if binary else "score"] = int(s) if binary else float(s)
                rows.append(row)
            out.append(rows)
        return out

    def _search_params(self, nprobe: int | None, ef_search: int | None) -> Any:
        """Per-call FAISS search parameters (the shared index object is never changed, so threads may share it)."""
        faiss = _faiss()
        if self.index_type == "ivf":
            want = self.nprobe if nprobe is None else nprobe
            return faiss.SearchParametersIVF(nprobe=min(want, self.faiss_index.nlist))
        if self.index_type == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.ef_search if ef_search is None else ef_search)
        return None

    # ------------------------------------------------------------ persistence
    def params(self) -> dict[str, Any]:
        """The current index type's parameters, as the manifest records them."""
        if self.index_type == "hnsw":
            return {"M": _HNSW_M, "efConstruction": _HNSW_EF_CONSTRUCTION, "efSearch": self.ef_search,
                    "metric": "inner_product"}
        if self.index_type == "ivf":
            return {"nlist": int(self.faiss_index.nlist), "nprobe": self.nprobe, "trained_on": self.ivf_trained_on,
                    "retrain_at": IVF_RETRAIN_FACTOR * self.ivf_trained_on, "quantizer": "IndexFlatIP",
                    "metric": "inner_product"}
        if self.index_type == "flat":
            return {"metric": "inner_product", "exact": True}
        return {"metric": "hamming", "exact": True}

    def manifest(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "model": self.model, "kind": self.kind, "index_type": self.index_type,
                "large_kind": self.large_kind, "threshold": self.hnsw_threshold, "hnsw_threshold": self.hnsw_threshold,
                "params": self.params(), "search_defaults": {"nprobe": self.nprobe, "ef_search": self.ef_search},
                "count": len(self.entries), "entries": self.entries}

    def info(self) -> dict[str, Any]:
        """The manifest without its entries (plus the count)."""
        m = self.manifest()
        m.pop("entries")
        return m

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``index.faiss`` and ``manifest.json`` into ``folder`` (created), each atomically."""
        faiss = _faiss()
        out = Path(folder)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: is a file; the index is a folder (index.faiss + manifest.json); pass a folder path")
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "index.faiss.tmp"
        if self.index_type == "binary_flat":
            faiss.write_index_binary(self.faiss_index, str(tmp))
        else:
            faiss.write_index(self.faiss_index, str(tmp))
        os.replace(tmp, out / "index.faiss")
        tmp_m = out / "manifest.json.tmp"
        tmp_m.write_text(json.dumps(self.manifest(), indent=1), encoding="utf-8")
        os.replace(tmp_m, out / "manifest.json")
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, embedder: Any | None = None, batch_size: int = 32) -> Index:
        """Open a saved index. Its embedder is rebuilt from the manifest (the timm name or run folder must still be
        there, with the same weights); pass ``embedder`` to use one already in memory (it must match)."""
        from pixlearn.search.embed import load_embedder

        index = cls.read(folder)
        emb = embedder if embedder is not None else load_embedder(index.model, batch_size=batch_size)
        if emb.describe() != index.model:
            index.check_embedder(emb)
        index.embedder = emb
        return index

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> Index:
        """The index and manifest of ``folder`` without loading its model (``embedder`` is None): enough to
        remove entries, list them or search with vectors (:meth:`search_vectors`); :meth:`load` to search images."""
        faiss = _faiss()
        path = Path(folder)
        manifest_path, index_path = path / "manifest.json", path / "index.faiss"
        if not manifest_path.is_file() or not index_path.is_file():
            raise ConfigError(f"{path}: not a pixlearn search index (needs index.faiss and manifest.json); "
                              "build one with pixlearn index build DIR --model NAME -o INDEX")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{manifest_path}: is not valid JSON ({exc}); rebuild the index") from None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ConfigError(f"{manifest_path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                              f"expected {MANIFEST_FORMAT!r}; rebuild the index")
        index = cls.__new__(cls)
        index.embedder, index.model = None, manifest["model"]
        index.index_type = str(manifest.get("index_type"))
        binary = index.index_type == "binary_flat"
        # manifests written before kinds existed switched to HNSW at the threshold
        index.kind = _check_kind(manifest.get("kind", "auto" if binary else "hnsw"), binary)
        index.hnsw_threshold = _check_threshold(manifest.get("threshold", manifest.get("hnsw_threshold", DEFAULT_THRESHOLD)))
        defaults = manifest.get("search_defaults") or {}
        index.nprobe = _check_int(defaults.get("nprobe", DEFAULT_NPROBE), "nprobe", 1, MAX_NLIST)
        index.ef_search = _check_int(defaults.get("ef_search", DEFAULT_EF_SEARCH), "ef_search", 1, MAX_EF_SEARCH)
        index.ivf_trained_on = int((manifest.get("params") or {}).get("trained_on", 0))
        index.entries = list(manifest.get("entries", []))
        index._known = {str(e["sha256"]) for e in index.entries}
        reader = faiss.read_index_binary if binary else faiss.read_index
        index.faiss_index = reader(str(index_path))
        if index.faiss_index.ntotal != len(index.entries):
            raise ConfigError(f"{path}: index.faiss holds {index.faiss_index.ntotal} vectors but manifest.json lists "
                              f"{len(index.entries)} images; rebuild the index")
        return index

    def __len__(self) -> int:
        return len(self.entries)


def remove(index_dir: str | os.PathLike[str], paths: Iterable[str | os.PathLike[str]], *,
           out: str | os.PathLike[str] | None = None) -> int:
    """Remove the images ``paths`` (files or folders, matched by absolute path) from the saved index ``index_dir``
    and save it (into ``out`` when given, e.g. a new generation's folder; else in place). Returns how many entries
    went; when none did, nothing is written. The model is not loaded.

    Examples
    --------
    >>> remove("photos.index", ["photos/old.jpg"])  # doctest: +SKIP
    1
    """
    index = Index.read(index_dir)
    removed = index.remove(paths)
    if removed:
        index.save(index_dir if out is None else out)
    return removed
