"""The search index: FAISS over embeddings, persisted to a folder with its manifest.

A folder holds ``index.faiss`` (the FAISS index; vector ``i`` is ``manifest["entries"][i]``) and ``manifest.json``:
the embedder's record (kind, model name or run path, weights sha256, dimension, metric, preprocessing), the index
type and one entry per image (absolute path, size in bytes, sha256). Float embeddings use inner product on L2-normalised
vectors (cosine similarity): an exact flat index below ``hnsw_threshold`` vectors, HNSW from there on (switched when
an ``add`` crosses it). Perceptual hashes use a binary flat index (Hamming distance).
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

__all__ = ["Index", "IndexMismatchError", "AddReport", "MANIFEST_FORMAT", "IMAGE_SUFFIXES", "list_images"]

MANIFEST_FORMAT = "pixlearn.search-index/1"
#: The image files a folder contributes (by extension, case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_HNSW_THRESHOLD = 50_000
MAX_TOP_K = 1000
_HNSW_M = 32


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
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"hnsw_threshold must be an integer >= 1 (vectors), got {value!r}")
    return value


class Index:
    """An embedder plus a FAISS index of images; see the module docstring for the folder's layout."""

    #: What the last :meth:`build` added, skipped and could not read.
    last_report: AddReport | None = None

    def __init__(self, embedder: Any, *, hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD) -> None:
        self.embedder = embedder
        self.model = embedder.describe()
        self.hnsw_threshold = _check_threshold(hnsw_threshold)
        self.entries: list[dict[str, Any]] = []
        self._known: set[str] = set()
        self.index_type = "binary_flat" if embedder.binary else "flat"
        self.faiss_index = self._new_index(self.index_type)

    # ------------------------------------------------------------ build, add
    def _new_index(self, index_type: str) -> Any:
        faiss = _faiss()
        dim = int(self.model["dim"])
        if index_type == "binary_flat":
            return faiss.IndexBinaryFlat(dim)
        if index_type == "flat":
            return faiss.IndexFlatIP(dim)
        if index_type == "hnsw":
            index = faiss.IndexHNSWFlat(dim, _HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 64
            return index
        raise ConfigError(f"index type {index_type!r} is not one of binary_flat, flat, hnsw")

    @classmethod
    def build(cls, source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], embedder: Any, *,
              out: str | os.PathLike[str] | None = None, hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
              progress: bool | None = None, batch_size: int = 32) -> Index:
        """Index the images of folder (or file list) ``source`` with ``embedder`` (an :class:`Embedder`, or what
        :func:`~pixlearn.search.embed.load_embedder` takes: ``"phash"``, a run folder, a timm name); saved to ``out``
        when given. ``index.last_report`` says what was added, skipped and unreadable."""
        from pixlearn.search.embed import load_embedder

        paths = list_images(source) if isinstance(source, (str, os.PathLike)) else [Path(p) for p in source]
        emb = load_embedder(embedder, batch_size=batch_size) if isinstance(embedder, (str, os.PathLike)) else embedder
        index = cls(emb, hnsw_threshold=hnsw_threshold)
        index.last_report = index.add(paths, progress=progress, batch_size=batch_size)
        if out is not None:
            index.save(out)
        return index

    def add(self, paths: Sequence[str | os.PathLike[str]], *, progress: bool | None = None,
            batch_size: int = 32) -> AddReport:
        """Embed and add ``paths``; files whose sha256 is already indexed are skipped, unreadable ones reported."""
        from pixlearn.search.embed import embed_files, file_sha256

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
            self._grow(len(ok))
            self.faiss_index.add(np.ascontiguousarray(vectors))
            for row, i in enumerate(ok):
                size, digest = facts[i]
                self.entries.append({"path": str(todo[i].resolve()), "size": size, "sha256": digest})
                self._known.add(digest)
                report.added.append(str(todo[i]))
        return report

    def _grow(self, extra: int) -> None:
        """Switch a flat float index to HNSW when it reaches ``hnsw_threshold`` vectors (the vectors move over)."""
        if self.index_type != "flat" or self.faiss_index.ntotal + extra < self.hnsw_threshold:
            return
        old = self.faiss_index
        self.index_type = "hnsw"
        self.faiss_index = self._new_index("hnsw")
        if old.ntotal:
            self.faiss_index.add(old.reconstruct_n(0, old.ntotal))

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
               embedder: Any | None = None) -> list[dict[str, Any]]:
        """The ``top_k`` (1..1000) nearest images to ``query`` (a file or a uint8 RGB array): rows of rank, path and
        score (cosine similarity, higher is nearer) or distance (Hamming bits, lower is nearer)."""
        from pixlearn.search.embed import read_rgb

        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be an integer in 1..{MAX_TOP_K}, got {top_k!r}")
        if embedder is not None:
            self.check_embedder(embedder)
        emb = embedder or self.embedder
        image = query if isinstance(query, np.ndarray) else read_rgb(query)
        vector = np.ascontiguousarray(emb.embed([image]))
        k = min(top_k, self.faiss_index.ntotal)
        if k == 0:
            return []
        scores, ids = self.faiss_index.search(vector, k)
        binary = self.index_type == "binary_flat"
        rows = []
        for s, i in zip(scores[0], ids[0]):
            if i < 0:
                continue
            row: dict[str, Any] = {"rank": len(rows) + 1, "path": self.entries[int(i)]["path"]}
            row["distance" if binary else "score"] = int(s) if binary else float(s)
            rows.append(row)
        return rows

    # ------------------------------------------------------------ persistence
    def manifest(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "model": self.model, "index_type": self.index_type,
                "hnsw_threshold": self.hnsw_threshold, "count": len(self.entries), "entries": self.entries}

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
        emb = embedder if embedder is not None else load_embedder(manifest["model"], batch_size=batch_size)
        if emb.describe() != manifest["model"]:
            probe = cls.__new__(cls)
            probe.model = manifest["model"]
            probe.check_embedder(emb)
        index = cls.__new__(cls)
        index.embedder, index.model = emb, manifest["model"]
        index.hnsw_threshold = _check_threshold(manifest.get("hnsw_threshold", DEFAULT_HNSW_THRESHOLD))
        index.index_type = str(manifest.get("index_type"))
        index.entries = list(manifest.get("entries", []))
        index._known = {str(e["sha256"]) for e in index.entries}
        reader = faiss.read_index_binary if index.index_type == "binary_flat" else faiss.read_index
        index.faiss_index = reader(str(index_path))
        if index.faiss_index.ntotal != len(index.entries):
            raise ConfigError(f"{path}: index.faiss holds {index.faiss_index.ntotal} vectors but manifest.json lists "
                              f"{len(index.entries)} images; rebuild the index")
        return index

    def __len__(self) -> int:
        return len(self.entries)
