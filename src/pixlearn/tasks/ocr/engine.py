"""The PP-OCR models loaded once: :class:`OcrEngine` and the per-option cache :func:`get_engine`.

The models are those bundled inside the ``rapidocr_onnxruntime`` wheel (PP-OCRv4 detection and recognition,
PP-OCR mobile v2.0 180° direction classifier; they read Chinese and English) unless PP-OCR ONNX files of your own are
given. Nothing is ever downloaded. Sessions run on onnxruntime's CPU provider with as many intra-op threads as the
process may use cores.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, PixlearnError, WeightsNotFoundError

__all__ = ["OcrEngine", "OcrError", "get_engine", "default_threads", "MAX_THREADS"]

#: The most intra-op threads an engine may be given.
MAX_THREADS = 256

_CACHE: dict[tuple, OcrEngine] = {}
_CACHE_LOCK = threading.Lock()


class OcrError(PixlearnError, RuntimeError):
    """The OCR models failed on an image (the message names the image size and onnxruntime's or rapidocr's reason)."""


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _model_file(path: str | os.PathLike[str] | None, *, option: str, suffixes: tuple[str, ...]) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsNotFoundError(f"{option} {p}: no such file; give the path of a PP-OCR {'/'.join(suffixes)} file, "
                                   "or leave it out to use the model bundled with rapidocr_onnxruntime")
    if not p.is_file():
        raise ConfigError(f"{option} {p}: is not a file; give the path of a PP-OCR {'/'.join(suffixes)} file")
    if p.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {p}: expected a {' or '.join(suffixes)} file, got {p.suffix or 'no extension'!r}")
    return p.resolve()


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise ConfigError(f"threads must be an integer in [1, {MAX_THREADS}], got {threads!r}")
    if not 1 <= int(threads) <= MAX_THREADS:
        raise ConfigError(f"threads must be in [1, {MAX_THREADS}], got {threads}")
    return int(threads)


class OcrEngine:
    """PP-OCR text detection, direction classification and recognition, loaded once.

    Calls are serialised by a lock, so one engine may be shared between threads (each call already uses every
    intra-op thread). Prefer :func:`get_engine`, which keeps one engine per option set.

    Parameters
    ----------
    det_model, rec_model : path, optional
        PP-OCR text detection / recognition ONNX files (``.onnx``) of your own; default: the PP-OCRv4 models bundled
        with ``rapidocr_onnxruntime`` (Chinese and English).
    rec_keys : path, optional
        The recogniser's character list (a ``.txt`` file, one character a line), for a ``rec_model`` that does not
        carry it in its ONNX metadata.
    threads : int, optional
        onnxruntime intra-op threads, in [1, 256]; default: the cores this process may use.

    Raises
    ------
    WeightsNotFoundError
        A model or keys file does not exist.
    ConfigError
        A path is not a file of the expected kind, ``threads`` is out of range, or a model cannot be loaded.
    """

    def __init__(
        self,
        *,
        det_model: str | os.PathLike[str] | None = None,
        rec_model: str | os.PathLike[str] | None = None,
        rec_keys: str | os.PathLike[str] | None = None,
        threads: int | None = None,
    ) -> None:
        self.det_model = _model_file(det_model, option="det_model", suffixes=(".onnx",))
        self.rec_model = _model_file(rec_model, option="rec_model", suffixes=(".onnx",))
        self.rec_keys = _model_file(rec_keys, option="rec_keys", suffixes=(".txt",))
        self.threads = _check_threads(threads)
        self._lock = threading.Lock()
        self._ocr = self._load()

    def __repr__(self) -> str:
        models = {k: str(v) for k, v in (("det_model", self.det_model), ("rec_model", self.rec_model),
                                          ("rec_keys", self.rec_keys)) if v is not None}
        return f"OcrEngine({', '.join(f'{k}={v!r}' for k, v in models.items()) or 'bundled models'}, threads={self.threads})"

    def _load(self) -> Any:
        from rapidocr_onnxruntime import RapidOCR

        kwargs: dict[str, Any] = {"text_score": 0.0, "print_verbose": False, "intra_op_num_threads": self.threads}
        if self.det_model is not None:
            kwargs["det_model_path"] = str(self.det_model)
        if self.rec_model is not None:
            kwargs["rec_model_path"] = str(self.rec_model)
        if self.rec_keys is not None:
            kwargs["rec_keys_path"] = str(self.rec_keys)
        try:
            return RapidOCR(**kwargs)
        except Exception as exc:  # onnxruntime's own errors, a model without its character list, ...
            given = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k.endswith("_path")) or "the bundled models"
            hint = ("; a recognition model without a character list in its metadata needs rec_keys"
                    if "character" in str(exc) else "; check that the files are PP-OCR ONNX models")
            raise ConfigError(f"could not load the OCR models ({given}): {type(exc).__name__}: {exc}{hint}") from None

    def detect_and_read(self, bgr: np.ndarray, *, use_cls: bool, max_side: int) -> list[tuple[np.ndarray, str, float]]:
        """Every piece of text in a BGR uint8 image: ``(points (4, 2) float, text, confidence)`` in the library's
        order, unfiltered. Options are checked by the caller (:func:`~pixlearn.tasks.ocr.read.read_text`).

        Raises
        ------
        OcrError
            The library failed on this image.
        """
        with self._lock:
            self._ocr.max_side_len = int(max_side)
            try:
                result, _elapsed = self._ocr(bgr, use_cls=bool(use_cls))
            except Exception as exc:  # rapidocr's resize errors, onnxruntime's failures: one image's error, not a crash
                raise OcrError(f"text detection and recognition failed on a {bgr.shape[1]}x{bgr.shape[0]} image: "
                               f"{type(exc).__name__}: {exc}") from exc
        if not result:
            return []
        return [(np.asarray(points, dtype=np.float64).reshape(4, 2), str(text), float(score))
                for points, text, score in result]


def get_engine(
    *,
    det_model: str | os.PathLike[str] | None = None,
    rec_model: str | os.PathLike[str] | None = None,
    rec_keys: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> OcrEngine:
    """The :class:`OcrEngine` of these options, loaded on the first call and kept for the next ones.

    Paths are compared once resolved, so two spellings of one file share an engine.
    """
    key = (
        _model_file(det_model, option="det_model", suffixes=(".onnx",)),
        _model_file(rec_model, option="rec_model", suffixes=(".onnx",)),
        _model_file(rec_keys, option="rec_keys", suffixes=(".txt",)),
        _check_threads(threads),
    )
    with _CACHE_LOCK:
        engine = _CACHE.get(key)
        if engine is None:
            engine = OcrEngine(det_model=key[0], rec_model=key[1], rec_keys=key[2], threads=key[3])
            _CACHE[key] = engine
    return engine
