"""Search by image: embeddings (a pretrained timm model, a classification run, or a perceptual hash) in a
FAISS index persisted to a folder (``index.faiss`` + ``manifest.json``).

Nothing heavy is imported here: faiss and torch load when an index is built, opened or searched.

Examples
--------
>>> from pixlearn.search import Index  # doctest: +SKIP
>>> index = Index.build("photos/", "phash", out="photos.index")  # doctest: +SKIP
>>> index.search("query.jpg", top_k=5)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["Embedder", "Index", "IndexMismatchError", "load_embedder", "MANIFEST_FORMAT", "remove", "INDEX_KINDS"]

_LAZY = {
    "Embedder": "pixlearn.search.embed",
    "load_embedder": "pixlearn.search.embed",
    "Index": "pixlearn.search.index",
    "IndexMismatchError": "pixlearn.search.index",
    "MANIFEST_FORMAT": "pixlearn.search.index",
    "remove": "pixlearn.search.index",
    "INDEX_KINDS": "pixlearn.search.index",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pixlearn.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
