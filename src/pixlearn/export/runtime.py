"""Exported ONNX models run through onnxruntime: the predictors of classify, segment and restore without torch.

:func:`load_onnx_model` reads ``model.onnx`` and its card ``model.json`` (written by ``pixlearn export RUN --format
onnx``) and returns a predictor with the interface and the rows of the task's torch predictor:

* :class:`OnnxClassifier` -- ``predict(images, top_k=...)``: ``{"label", "score", "top_k"}`` per image; images are
  resized to the card's input size outside the graph (:func:`resize_image`, the arithmetic of the torch predictor's
  antialiased bilinear resize) and sent in batches;
* :class:`OnnxSegmenter` -- ``predict(image)``: the (H, W) class-id mask at the image's own size; like the torch
  segmenter, an image is cut into input-sized tiles whose overlaps are blended (:func:`tiled_run`);
* :class:`OnnxRestorer` -- ``restore(image)``: the restored uint8 image, tile by tile as well;
* :class:`OnnxDetector` -- ``predict(images, score=..., iou=..., max_detections=...)``: one
  :class:`~pixlearn.tasks.detect.detections.Detections` per image on its own pixels, like the run's torch
  detector; each image is letterboxed outside the graph and sent alone (the graph takes one image).

Normalisation, the network, softmax/argmax and clamping live in the graph; what stays outside is what depends on the
image's size. Nothing here imports torch: a machine that only predicts needs numpy, Pillow and onnxruntime.

Sessions run with as many intra-op threads as this process may use (:func:`usable_cores`, its CPU affinity) and
one inter-op thread (:func:`session_options`).

:func:`predict_files`, :func:`predict_segment_files` and :func:`restore_files` are ``pixlearn predict``'s
file-level entry points for exported models, with the rows of the torch ones.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.checks import probability_logit
from pixlearn._core.errors import ConfigError, PixlearnError, ShapeError
from pixlearn._core.tta import tta_average, tta_transposes
from pixlearn.tasks.segment.render import class_fractions, mask_targets, write_mask_files

__all__ = [
    "CARD_NAME",
    "MODEL_NAME",
    "RUNTIME_TASKS",
    "OnnxClassifier",
    "OnnxDetector",
    "OnnxModel",
    "OnnxRestorer",
    "OnnxSegmenter",
    "find_onnx_model",
    "is_onnx_model",
    "load_onnx_model",
    "predict_files",
    "predict_segment_files",
    "read_onnx_card",
    "resize_image",
    "restore_files",
    "session_options",
    "tiled_run",
    "usable_cores",
]

#: The card beside an exported model, and the model file in an export folder.
CARD_NAME = "model.json"
MODEL_NAME = "model.onnx"
#: The tasks whose exported models this module runs.
RUNTIME_TASKS = ("classify", "segment", "restore", "detect")
#: The output each task's graph must give.
_TASK_OUTPUTS = {"classify": "probabilities", "segment": "probabilities", "restore": "restored", "detect": "boxes"}
_EXPORT_HINT = "pixlearn export RUN --format onnx"


# ---------------------------------------------------------------- files and cards
def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_onnx_model(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an exported ONNX model: a ``.onnx`` file, or a folder holding ``model.onnx``.

    >>> import tempfile
    >>> is_onnx_model("model.onnx"), is_onnx_model(tempfile.mkdtemp())
    (True, False)
    """
    p = Path(path)
    return p.suffix.lower() == ".onnx" or (p.is_dir() and (p / MODEL_NAME).is_file())


def find_onnx_model(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(model.onnx, model.json)`` of an export folder or of a ``.onnx`` file (whose card lies beside it).

    Raises
    ------
    ConfigError
        No such file or folder, no ``.onnx`` file in the folder, or no card beside the file.
    """
    p = Path(path)
    if p.is_dir():
        onnx = p / MODEL_NAME
        if not onnx.is_file():
            found = sorted(q.name for q in p.glob("*.onnx"))
            also = f" (it holds {', '.join(found[:5])}: pass one of them)" if found else ""
            raise ConfigError(f"{p}: no {MODEL_NAME} in this folder{also}; {_EXPORT_HINT} writes one with its card")
    elif p.suffix.lower() == ".onnx":
        if not p.is_file():
            raise ConfigError(f"{p}: no such ONNX file; {_EXPORT_HINT} writes RUN/export/onnx/{MODEL_NAME}")
        onnx = p
    elif not p.exists():
        raise ConfigError(f"{p}: no such file or folder; pass an exported model (a {MODEL_NAME} or its folder)")
    else:
        raise ConfigError(f"{p}: not an ONNX model (expected a .onnx file or a folder holding {MODEL_NAME}); "
                          f"{_EXPORT_HINT} writes one")
    own = onnx.with_suffix(".json")
    card = own if own.is_file() and own != onnx else onnx.with_name(CARD_NAME)
    if not card.is_file():
        raise ConfigError(f"{onnx}: no model card ({CARD_NAME}) beside it, so its task, classes and input size are "
                          f"unknown; pixlearn runs the ONNX models it exported: {_EXPORT_HINT} writes both files")
    return onnx, card


def read_onnx_card(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """``(card, model.onnx path)`` of an exported model (its folder or its ``.onnx`` file), checked.

    Raises
    ------
    ConfigError
        The card is missing, unreadable, of another format (a run's ``weights/model.json``, a TorchScript
        export...), or of a task this runtime does not serve; the message names the file and the fix.
    """
    onnx, card_path = find_onnx_model(path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{card_path}: unreadable model card ({exc}); export the run again: {_EXPORT_HINT}") from None
    if not isinstance(card, dict) or card.get("format") != "onnx":
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ConfigError(f"{card_path}: a model card of format {got!r}, not an ONNX export card (format 'onnx'); "
                          f"export the run with {_EXPORT_HINT}")
    task = card.get("task")
    if task not in RUNTIME_TASKS:
        raise ConfigError(f"{card_path}: an exported {task!r} model; the ONNX runtime serves "
                          f"{', '.join(RUNTIME_TASKS)} models; predict with the run folder instead")
    inp = card.get("input")
    ok = isinstance(inp, dict) and all(isinstance(inp.get(k), int) and not isinstance(inp.get(k), bool) and inp[k] > 0
                                       for k in ("height", "width"))
    names = card.get("class_names")
    if not ok or not isinstance(names, list) or (task != "restore" and not names):
        raise ConfigError(f"{card_path}: the card lacks input.height/input.width or class_names; export the run again "
                          f"with {_EXPORT_HINT}")
    return card, onnx


def session_options(threads: int | None = None) -> Any:
    """onnxruntime ``SessionOptions``: ``threads`` intra-op threads (default :func:`usable_cores`), one inter-op thread.

    >>> opts = session_options(2)
    >>> opts.intra_op_num_threads, opts.inter_op_num_threads
    (2, 1)
    """
    import onnxruntime as ort

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads) if threads else usable_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return opts


# ---------------------------------------------------------------- pixels
def as_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image as (H, W, 3) RGB (grey repeated, alpha dropped)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ShapeError(f"images must be uint8 (H, W, 3) or (H, W) arrays, got {arr.dtype} {arr.shape}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image to ``size`` = (height, width): bilinear, antialiased when shrinking, as uint8 (H', W', 3).

    The torch predictors' resize (``torch.nn.functional.interpolate(..., antialias=True)`` on uint8, which follows
    Pillow's) done with Pillow: an exported classifier is fed what its run was fed, give or take one grey level on
    about 1% of the pixels (the two libraries' fixed-point weights round differently).

    Examples
    --------
    >>> resize_image(np.full((10, 20, 3), 7, np.uint8), (4, 6)).shape
    (4, 6, 3)
    >>> int(resize_image(np.full((10, 20), 7, np.uint8), (4, 6)).max())
    7
    """
    from PIL import Image

    rgb = as_rgb(image)
    h, w = int(size[0]), int(size[1])
    if rgb.shape[:2] == (h, w):
        return rgb
    im = Image.fromarray(rgb, "RGB")
    # the width first, then the height, as torch's separable uint8 kernel does (Pillow may take the other order
    # in one call, which rounds the intermediate image differently: up to a quarter of the pixels one level off)
    if im.width != w:
        im = im.resize((w, im.height), Image.Resampling.BILINEAR)
    if im.height != h:
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(im)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of ``tile``-sized windows covering ``length`` (the last ends at ``length``); as
    :func:`pixlearn.engine.tiling.tile_starts`."""
    if tile >= length:
        return [0]
    stride = max(tile - overlap, 1)
    n = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


def _pad_reflect(image: np.ndarray, bottom: int, right: int) -> np.ndarray:
    """Pad an (H, W, C) array on its bottom and right by repeated reflection (a single row or column is replicated)."""
    while bottom > 0 or right > 0:
        h, w = image.shape[:2]
        b, r = min(bottom, h - 1), min(right, w - 1)
        if (bottom and b <= 0) or (right and r <= 0):
            pad = ((0, bottom if b <= 0 else 0), (0, right if r <= 0 else 0), (0, 0))
            image = np.pad(image, pad, mode="edge")
            bottom, right = (0 if b <= 0 else bottom), (0 if r <= 0 else right)
            continue
        image = np.pad(image, ((0, b), (0, r), (0, 0)), mode="reflect")
        bottom, right = bottom - b, right - r
    return image


def _blend_window(size: tuple[int, int], overlap: tuple[int, int], edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """The (H, W) Hann weight window of one tile (flat where the tile touches the image border); as
    :func:`pixlearn.engine.tiling.blend_window`."""

    def axis(n: int, o: int, first: bool, last: bool) -> np.ndarray:
        w = np.ones(n, np.float64)
        o = min(o, n // 2)
        if o <= 0:
            return w
        r = np.sin(0.5 * math.pi * (np.arange(o, dtype=np.float64) + 0.5) / o) ** 2
        if not first:
            w[:o] = r
        if not last:
            w[n - o:] = r[::-1]
        return w

    top, bottom, left, right = edges
    return (axis(size[0], overlap[0], top, bottom)[:, None] * axis(size[1], overlap[1], left, right)[None, :]).astype(np.float32)


def tiled_run(
    fn: Any, image: np.ndarray, *, tile: tuple[int, int], overlap: float | int, multiple: int = 1, batch: int = 4,
    scale: int = 1,
) -> np.ndarray:
    """Apply ``fn`` to an (H, W, 3) uint8 image in ``tile``-sized windows and blend the outputs (Hann windows).

    ``fn`` maps a uint8 (B, th, tw, 3) batch to float (B, K, scale*th, scale*tw) outputs. The image is padded by
    reflection on its bottom and right up to a multiple of ``multiple`` (and at least one tile); ``overlap`` is pixels
    (int) or a fraction of the tile (float). The tiles, padding and windows are those of
    :func:`pixlearn.engine.tiling.tiled_apply`, so a tiled ONNX model gives what the tiled torch model gives.

    Returns
    -------
    ndarray of shape (K, scale*H, scale*W), float32

    Examples
    --------
    >>> img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    >>> out = tiled_run(lambda b: b.transpose(0, 3, 1, 2).astype(np.float32), img, tile=(4, 4), overlap=2)
    >>> bool(np.allclose(out, img.transpose(2, 0, 1)))
    True
    """
    th, tw = int(tile[0]), int(tile[1])
    h, w = image.shape[:2]
    ph, pw = max(th, _round_up(h, multiple)), max(tw, _round_up(w, multiple))
    if isinstance(overlap, float):
        oh, ow = int(round(overlap * th)), int(round(overlap * tw))
    else:
        oh, ow = min(int(overlap), th - 1), min(int(overlap), tw - 1)
    padded = _pad_reflect(image, ph - h, pw - w)
    positions = [(y, x) for y in _tile_starts(ph, th, oh) for x in _tile_starts(pw, tw, ow)]
    s = scale
    out: np.ndarray | None = None
    weight = np.zeros((ph * s, pw * s), np.float32)
    windows: dict[tuple[bool, bool, bool, bool], np.ndarray] = {}
    for i in range(0, len(positions), batch):
        chunk = positions[i:i + batch]
        tiles = np.stack([padded[y:y + th, x:x + tw] for y, x in chunk])
        pred = np.asarray(fn(np.ascontiguousarray(tiles)), np.float32)
        if pred.ndim != 4 or pred.shape[0] != len(chunk) or pred.shape[2:] != (th * s, tw * s):
            raise ShapeError(f"the tiled model must give (B, K, {th * s}, {tw * s}) for (B, {th}, {tw}, 3) tiles, "
                             f"got {pred.shape}; export the run again")
        if out is None:
            out = np.zeros((pred.shape[1], ph * s, pw * s), np.float32)
        for k, (y, x) in enumerate(chunk):
            edges = (y == 0, y + th == ph, x == 0, x + tw == pw)
            win = windows.get(edges)
            if win is None:
                win = windows[edges] = _blend_window((th * s, tw * s), (oh * s, ow * s), edges)
            out[:, y * s:(y + th) * s, x * s:(x + tw) * s] += pred[k] * win
            weight[y * s:(y + th) * s, x * s:(x + tw) * s] += win
    assert out is not None
    return (out / weight)[:, :h * s, :w * s]


# ---------------------------------------------------------------- predictors
class OnnxModel:
    """An exported model's onnxruntime session, its card and its fixed input size.

    Parameters
    ----------
    path : path
        The export folder or its ``.onnx`` file (the card ``model.json`` lies beside it).
    threads : int, optional
        onnxruntime intra-op threads (default :func:`usable_cores`).
    batch : int, default 32
        Most images (or tiles) per session call.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None, batch: int = 32) -> None:
        import onnxruntime as ort

        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch must be a positive integer, got {batch!r}")
        self.card, self.path = read_onnx_card(path)
        self.task = str(self.card["task"])
        self.height, self.width = int(self.card["input"]["height"]), int(self.card["input"]["width"])
        self.details: dict[str, Any] = dict(self.card.get("details") or {})
        self.batch = batch
        opts = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ConfigError(f"{self.path}: onnxruntime cannot open this file ({type(exc).__name__}: {str(exc)[:200]}); "
                              f"export the run again with {_EXPORT_HINT}") from None
        self.threads = int(self.session.get_session_options().intra_op_num_threads)
        self.input_name = self._check_graph()

    def _check_graph(self) -> str:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        want = _TASK_OUTPUTS[self.task]
        found = f"inputs {[(i.name, i.type, i.shape) for i in inputs]}, outputs {[o.name for o in outputs]}"
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        if (len(inputs) != 1 or inputs[0].type != "tensor(uint8)" or len(shape) != 4 or shape[1:] != [self.height, self.width, 3]
                or want not in [o.name for o in outputs]):
            raise ConfigError(f"{self.path}: the graph does not match its card ({self.task}, input {self.height}x{self.width}): "
                              f"found {found}; expected one uint8 input [batch, {self.height}, {self.width}, 3] and an output "
                              f"{want!r}; export the run again with {_EXPORT_HINT}")
        return str(inputs[0].name)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.card.get("class_names") or []]

    def run(self, batch: np.ndarray, output: str) -> np.ndarray:
        """Output ``output`` of a uint8 (N, H, W, 3) batch at the input size, ``self.batch`` images per call."""
        arr = np.asarray(batch)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (self.height, self.width, 3):
            raise ShapeError(f"the model takes uint8 (N, {self.height}, {self.width}, 3) batches, got {arr.dtype} {arr.shape}; "
                             "resize with pixlearn.export.runtime.resize_image")
        parts = [self.session.run([output], {self.input_name: np.ascontiguousarray(arr[i:i + self.batch])})[0]
                 for i in range(0, len(arr), self.batch)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, task={self.task!r}, input={self.height}x{self.width}, threads={self.threads})"


class OnnxClassifier(OnnxModel):
    """An exported classifier: ``predict`` gives the rows of :class:`pixlearn.tasks.classify.predict.Classifier`.

    Images of any size are resized to the card's input size (:func:`resize_image`); the graph normalises and
    applies softmax.
    """

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's input, as the service's records give it."""
        return 3, self.height, self.width

    def to_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 images of any size -> the graph's uint8 (N, H, W, 3) input."""
        out = np.empty((len(images), self.height, self.width, 3), np.uint8)
        for i, img in enumerate(images):
            out[i] = resize_image(img, (self.height, self.width))
        return out

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, C) float32 class probabilities of a uint8 (N, H, W, 3) batch already at the input size."""
        return np.asarray(self.run(batch, "probabilities"), np.float32).reshape(len(batch), len(self.classes))

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, C) float32 class probabilities of uint8 images of any size."""
        return self.probabilities(self.to_batch(images))

    def predict(self, images: Sequence[np.ndarray], *, top_k: int = 1) -> list[dict[str, Any]]:
        """``{"label", "score", "top_k"}`` per image (``top_k``: the k best ``(label, probability)`` pairs)."""
        if not len(images):
            return []
        return [self._row(p, top_k) for p in self.predict_proba(images)]

    def _row(self, p: np.ndarray, top_k: int) -> dict[str, Any]:
        classes = self.classes
        k = max(1, min(int(top_k), len(classes)))
        order = np.argsort(-p, kind="stable")[:k]
        return {
            "label": classes[int(order[0])],
            "score": float(p[order[0]]),
            "top_k": [{"label": classes[int(j)], "score": float(p[j])} for j in order],
        }


class OnnxSegmenter(OnnxModel):
    """An exported segmenter: ``predict(image)`` gives the (H, W) class-id mask at the image's size, as
    :class:`pixlearn.tasks.segment.predict.Segmenter` does.

    The image is cut into input-sized tiles (``details.overlap`` of the card, default 0.25 of a tile; padded to a
    multiple of ``details.multiple``, default 32). The tiles' log-probabilities are blended and the mask is their
    argmax: log-softmax differs from the logits by one value per pixel, so this is the argmax of the blended logits
    that the torch segmenter takes. A run with test-time augmentation (``details.tta``: transpose, flip or d4) averages each
    tile's log-probabilities over the same mirrored or transposed views (:func:`pixlearn._core.tta.tta_average`), which for the
    same reason gives the torch segmenter's averaged logits back (sigmoid runs included). A binary segmenter's mask is
    the blended foreground logit above the logit of its decision threshold (``details.threshold``, default 0.5).
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None, batch: int = 8,
                 overlap: float | None = None) -> None:
        super().__init__(path, threads=threads, batch=batch)
        self.overlap = float(self.details.get("overlap", 0.25) if overlap is None else overlap)
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be a fraction of the tile in [0, 1), got {self.overlap}")
        self.multiple = int(self.details.get("multiple", 32))
        self.mask_coding = str(self.details.get("mask_coding") or "index")
        self.binary = bool(self.details.get("binary", False))
        self.threshold = float(self.details.get("threshold", 0.5))
        self._cut = probability_logit(self.threshold)  # a card with a threshold outside (0, 1) fails here, not per image
        self.tta = str(self.details.get("tta") or "none")
        if tta_transposes(self.tta) and self.height != self.width:  # (an unknown mode is a ConfigError here too)
            raise ConfigError(f"{path}: {self.tta} test-time augmentation needs square tiles, this model takes {self.height}x{self.width}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _tile_scores(self, tiles: np.ndarray) -> np.ndarray:
        # tiles go in as uint8 (N, H, W, 3) and come out as (N, K, H, W)
        return tta_average(self._log_probs, tiles, self.tta,
                           flip=lambda a, axes: np.ascontiguousarray(np.flip(a, [1 + i for i in axes])),
                           swap=lambda a: np.ascontiguousarray(np.swapaxes(a, 1, 2)),
                           flip_out=lambda a, axes: np.flip(a, [2 + i for i in axes]), swap_out=lambda a: np.swapaxes(a, 2, 3))

    def _log_probs(self, tiles: np.ndarray) -> np.ndarray:
        p = self.run(tiles, "probabilities").astype(np.float32, copy=False)
        if p.shape[1] == 1:  # a single sigmoid channel: P(background) beside it
            p = np.concatenate([1 - p, p], axis=1)
        return np.log(np.maximum(p, np.finfo(np.float32).tiny))

    def log_scores(self, image: np.ndarray) -> np.ndarray:
        """(K, H, W) blended log-probabilities of one image of any size (their argmax is the mask)."""
        return tiled_run(self._tile_scores, as_rgb(image), tile=(self.height, self.width), overlap=self.overlap,
                         multiple=self.multiple, batch=self.batch)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """(num_classes, H, W) float32 class probabilities of one image."""
        z = self.log_scores(image)
        z = np.exp(z - z.max(axis=0, keepdims=True))
        return (z / z.sum(axis=0, keepdims=True)).astype(np.float32)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """The (H, W) uint8 class-id mask of one image (any size)."""
        z = self.log_scores(image)
        if self.binary:  # log p - log(1 - p) is the blended logit
            return (z[1] - z[0] > self._cut).astype(np.uint8)
        return z.argmax(axis=0).astype(np.uint8)


class OnnxRestorer(OnnxModel):
    """An exported restorer: ``restore(image)`` gives what :class:`pixlearn.tasks.restore.predict.Restorer` gives.

    Any size: input-sized tiles with blended overlaps (``details.overlap`` of the card in pixels, default a quarter
    of the tile, at least 16). A grey model (``details.mode`` ``"L"``) restores a colour image channel by channel; a
    colour model takes a grey image as three equal channels and returns their mean.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None, batch: int = 8,
                 overlap: int | None = None) -> None:
        super().__init__(path, threads=threads, batch=batch)
        self.mode = str(self.details.get("mode", "RGB"))
        if self.mode not in ("L", "RGB"):
            raise ConfigError(f"{self.path}: the card's details.mode is {self.mode!r}; expected 'L' or 'RGB'; export the run again")
        shape = (self.card.get("outputs") or {}).get("restored", {}).get("shape") or []
        out_h = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else self.height
        self.scale = int(self.details.get("scale") or max(1, out_h // self.height))
        default = max(16, min(self.height, self.width) // 4)
        self.overlap = int(self.details.get("overlap", default) if overlap is None else overlap)
        self.overlap = max(0, min(self.overlap, min(self.height, self.width) // 2))
        self.restore_task = str(self.details.get("restore_task", "denoise"))

    def _restored(self, tiles: np.ndarray) -> np.ndarray:
        return self.run(tiles, "restored").transpose(0, 3, 1, 2).astype(np.float32)

    def _restore_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """(3, sH, sW) float restored values (0..255) of an (H, W, 3) uint8 image."""
        return tiled_run(self._restored, rgb, tile=(self.height, self.width), overlap=self.overlap, batch=self.batch,
                         scale=self.scale)

    def restore(self, image: np.ndarray) -> np.ndarray:
        """Restore a uint8 (H, W) or (H, W, 3) image; returns uint8 in the same layout, ``scale`` times larger."""
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
            raise ShapeError(f"restore takes uint8 (H, W) or (H, W, 3) images, got {a.dtype} {a.shape}")
        planes = a.reshape(a.shape[0], a.shape[1], -1)
        if planes.shape[2] == 3:  # a grey model's graph restores each channel on its own
            out = self._restore_rgb(planes).transpose(1, 2, 0)
        elif self.mode == "L":  # a grey image through a grey model: any one of three equal channels
            out = self._restore_rgb(np.repeat(planes, 3, axis=2))[0][..., None]
        else:  # a colour model: three equal channels in, their mean out
            out = self._restore_rgb(np.repeat(planes, 3, axis=2)).mean(axis=0)[..., None]
        res = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        if a.ndim == 2:
            return res[..., 0]
        return res


def _resize_bilinear(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of float (N, h, w) planes to (N, H, W), half-pixel centres, no antialias: torch's
    ``interpolate(mode="bilinear", align_corners=False)``, which the torch detector uses on its masks."""
    n, h, w = a.shape
    H, W = int(size[0]), int(size[1])

    def axis(out_n: int, in_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(out_n, dtype=np.float64) + 0.5) * (in_n / out_n) - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(np.int64), in_n - 1)
        hi = np.minimum(lo + 1, in_n - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, fy = axis(H, h)
    x0, x1, fx = axis(W, w)
    rows = a[:, y0] * (1 - fy)[None, :, None] + a[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]


class OnnxDetector(OnnxModel):
    """An exported detector: ``predict(images, ...)`` gives what the run's :class:`~pixlearn.tasks.detect.model.TorchDetector`
    gives, one :class:`~pixlearn.tasks.detect.detections.Detections` per image, boxes and masks on its own pixels.

    Each image is letterboxed to the card's input size outside the graph (longer side resized with
    :func:`resize_image`, zeros below and right) and sent alone: the graph takes one image (``dynamic_batch`` false
    in the card). The graph gives what survives its baked-in score floor, NMS at ``details.nms_iou`` and at most
    ``details.max_detections`` detections; a higher ``score`` and a lower ``max_detections`` are applied here.
    The torch detector letterboxes in float, this one in uint8: on images that need resizing the pixels may differ
    by one grey level, so boxes may differ slightly; images whose longer side is the input size see equal pixels.

    Carries ``category_ids`` and ``run_tile`` from the card like a run's detector, so
    :func:`pixlearn.tasks.detect.predict.predict_detect_files` gives the same rows and files for both.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None, batch: int = 1) -> None:
        super().__init__(path, threads=threads, batch=1)
        d = self.details
        self.class_names = tuple(self.classes)
        self.name = str(d.get("name") or self.path.parent.name)
        self.size = self.height
        self.score_floor = float(d.get("score_thresh", 0.05))
        self.nms_iou = float(d.get("nms_iou", 0.5))
        self.max_detections = int(d.get("max_detections", 100))
        self.masks = bool(d.get("masks", False))
        ids = d.get("category_ids")
        self.category_ids = (tuple(int(i) for i in ids) if isinstance(ids, list) and len(ids) == len(self.class_names)
                             else tuple(range(1, len(self.class_names) + 1)))
        tile = d.get("tile")
        self.run_tile = (int(tile), float(d.get("tile_overlap") or 0.2)) if tile else None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check(self, score: float, iou: float, max_detections: int) -> None:
        if not (0.0 <= float(score) <= 1.0) or not (0.0 < float(iou) <= 1.0):
            raise ConfigError(f"score must be in [0, 1] and iou in (0, 1], got score={score}, iou={iou}")
        if float(score) < self.score_floor:
            raise ConfigError(f"{self.path}: score {score} is below the floor {self.score_floor} baked into the exported "
                              f"graph, which drops lower scores; use --score {self.score_floor} or more, or predict with the run folder")
        if abs(float(iou) - self.nms_iou) > 1e-9:
            raise ConfigError(f"{self.path}: the exported graph runs NMS at IoU {self.nms_iou} (baked in); iou={iou} needs "
                              f"another NMS: use --iou {self.nms_iou}, or predict with the run folder")
        if not 1 <= int(max_detections) <= self.max_detections:
            raise ConfigError(f"max_detections must be in 1..{self.max_detections} (the exported graph gives at most "
                              f"{self.max_detections} per image), got {max_detections}")

    def raw(self, letterboxed: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs (boxes in input pixels) for one letterboxed uint8 (S, S, 3) image."""
        arr = np.asarray(letterboxed)
        if arr.dtype != np.uint8 or arr.shape != (self.size, self.size, 3):
            raise ShapeError(f"the detector takes one uint8 ({self.size}, {self.size}, 3) letterboxed image, got {arr.dtype} "
                             f"{arr.shape}; use predict() for images of any size")
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(arr[None])})
        return dict(zip(self.output_names, outs))

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """An image as the graph's (S, S, 3) uint8 input and the scale (input pixels per image pixel)."""
        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        out = np.zeros((self.size, self.size, 3), np.uint8)
        out[:nh, :nw] = resize_image(rgb, (nh, nw))
        return out, scale

    def predict(self, images: Sequence[np.ndarray], *, score: float = 0.25, iou: float = 0.5,
                max_detections: int = 100) -> list[Any]:
        """Detect objects in uint8 images; one ``Detections`` per image, sorted by score."""
        from pixlearn.tasks.detect.detections import Detections

        self._check(score, iou, max_detections)
        found = []
        for image in images:
            boxed, scale = self.letterbox(image)
            r = self.raw(boxed)
            h, w = np.asarray(image).shape[:2]
            boxes = np.asarray(r["boxes"], np.float32).reshape(-1, 4) / scale
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            labels = np.asarray(r["labels"], np.int64).reshape(-1)
            scores = np.asarray(r["scores"], np.float32).reshape(-1)
            keep = (labels >= 0) & (labels < len(self.class_names))
            masks = None
            if self.masks and "masks" in r:
                m = np.asarray(r["masks"], np.float32)[keep]
                nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
                m = m[:, 0, :nh, :nw]
                masks = _resize_bilinear(m, (h, w)) > 0.5 if len(m) else np.zeros((0, h, w), bool)
            det = Detections(boxes[keep], scores[keep], labels[keep], self.class_names, masks)
            found.append(det.filter(min_score=float(score), max_detections=int(max_detections)))
        return found


def load_onnx_model(
    path: str | os.PathLike[str], *, threads: int | None = None, batch: int | None = None,
) -> OnnxClassifier | OnnxSegmenter | OnnxRestorer | OnnxDetector:
    """The predictor of an exported ONNX model: its folder (``model.onnx`` + ``model.json``) or its ``.onnx`` file.

    Parameters
    ----------
    path : path
        What ``pixlearn export RUN --format onnx`` wrote (default ``RUN/export/onnx/``), or the ``.onnx`` in it.
    threads : int, optional
        onnxruntime intra-op threads (default: the cores this process may use).
    batch : int, optional
        Most images (classify) or tiles (segment, restore) per session call.

    Returns
    -------
    OnnxClassifier, OnnxSegmenter, OnnxRestorer or OnnxDetector
        By the card's task, with the torch predictor's ``predict`` (``restore``) and rows.

    Raises
    ------
    ConfigError
        No card beside the file, a card of another format or task, a graph that does not match its card, or a file
        onnxruntime cannot open; the message names the file and the fix (``pixlearn export RUN --format onnx``).
    """
    card, _ = read_onnx_card(path)
    kind = {"classify": OnnxClassifier, "segment": OnnxSegmenter, "restore": OnnxRestorer, "detect": OnnxDetector}[card["task"]]
    kwargs: dict[str, Any] = {"threads": threads}
    if batch is not None and kind is not OnnxDetector:  # a detector's graph takes one image per call
        kwargs["batch"] = batch
    return kind(path, **kwargs)


# ---------------------------------------------------------------- files (pixlearn predict MODEL.onnx IMAGES)
def _read_all(paths: Sequence[Path]) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    from pixlearn.io import read_image

    for i, p in enumerate(paths):
        try:
            yield i, read_image(p), None
        except (PixlearnError, OSError) as exc:
            yield i, None, f"{type(exc).__name__}: {exc}"


def predict_files(
    model: OnnxClassifier | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    top_k: int = 1,
    batch_size: int = 64,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Classify image files, folders and globs with an exported classifier: the rows of
    :func:`pixlearn.tasks.classify.predict.predict_files` (``{"path", "label", "score", "top_k", "error"}``)."""
    from pixlearn.engine.progress import progress_bar
    from pixlearn.io import expand_sources

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    clf = model if isinstance(model, OnnxModel) else load_onnx_model(model)
    if not isinstance(clf, OnnxClassifier):
        raise ConfigError(f"{clf.path}: an exported {clf.task} model, not a classifier")
    paths = [p for p, _ in expand_sources(images)]
    rows: list[dict[str, Any]] = [{"path": str(p), "label": None, "score": None, "top_k": [], "error": None} for p in paths]
    bar, task = progress_bar(progress, len(paths), "predicting")
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        probs = clf.predict_proba([img for _, img in pending])
        for (i, _), p in zip(pending, probs):
            rows[i].update(clf._row(p, top_k))
        bar.advance(task, len(pending))
        pending.clear()

    with bar:
        for i, img, error in _read_all(paths):
            if error is not None:
                rows[i]["error"] = error
                bar.advance(task)
                continue
            pending.append((i, img))  # type: ignore[arg-type]
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    return rows


def predict_segment_files(
    model: OnnxSegmenter | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    overlay: bool = False,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Segment image files, folders and globs with an exported segmenter: the rows and files of
    :func:`pixlearn.tasks.segment.predict.predict_segment_files` (``{"path", "width", "height", "mask", "overlay",
    "classes", "error"}``; masks under ``out`` in the training set's value coding)."""
    from pixlearn.engine.progress import track
    from pixlearn.io import expand_sources

    seg = model if isinstance(model, OnnxModel) else load_onnx_model(model)
    if not isinstance(seg, OnnxSegmenter):
        raise ConfigError(f"{seg.path}: an exported {seg.task} model, not a segmenter")
    paths = [Path(p) for p, _ in expand_sources(images)]
    mask_paths = mask_targets(paths, Path(out) if out is not None else None)
    rows: list[dict[str, Any]] = []
    for i, image, error in track(_read_all(paths), total=len(paths), description="segmenting", progress=progress):
        row: dict[str, Any] = {"path": str(paths[i]), "width": None, "height": None, "mask": None, "overlay": None, "classes": {},
                               "error": error}
        if image is not None:
            mask = seg.predict(image)
            row.update(height=int(mask.shape[0]), width=int(mask.shape[1]), classes=class_fractions(mask, seg.classes))
            if mask_paths[i] is not None:
                row["mask"], row["overlay"] = write_mask_files(mask_paths[i], image, mask, seg.mask_coding, overlay=overlay)
        rows.append(row)
    return rows




def restore_files(
    model: OnnxRestorer | str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Restore image files, folders and globs with an exported restorer and write the results: the rows and files
    of :func:`pixlearn.tasks.restore.predict.restore_files` (``out``: a file for one image, else a folder mirroring
    the inputs' sub-folders with ``<name>.png`` files)."""
    from pixlearn.io import expand_sources
    from pixlearn.tasks.restore.files import output_paths, restore_rows

    restorer = model if isinstance(model, OnnxModel) else load_onnx_model(model)
    if not isinstance(restorer, OnnxRestorer):
        raise ConfigError(f"{restorer.path}: an exported {restorer.task} model, not a restorer")
    found = expand_sources(images)
    return restore_rows(restorer, [p for p, _ in found], output_paths(found, out), progress=progress)
