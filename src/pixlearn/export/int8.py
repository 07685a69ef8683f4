"""Static INT8 quantisation of an exported ONNX model, with its accuracy, speed and size cost measured.

:func:`quantize_int8` takes a folder written by ``pixlearn export RUN --format onnx`` (``model.onnx`` +
``model.json``) and writes ``model.int8.onnx`` beside it, with onnxruntime's own tools:

1. ``onnxruntime.quantization.shape_inference.quant_pre_process`` (shape inference and graph optimisation, the
   step onnxruntime asks for before quantising);
2. ``onnxruntime.quantization.quantize_static`` in the QDQ format, weights int8 per output channel, activations
   uint8 (onnxruntime's advice for x86 CPUs; 7-bit weights, ``reduce_range``, on x86 CPUs without VNNI), ranges
   calibrated (MinMax by default) on up to :data:`MAX_CALIBRATION` images fed through a ``CalibrationDataReader``.
   Only the network body is quantised: the baked-in preprocessing (cast, normalise, transpose) and
   postprocessing (softmax, argmax, clamp and round) stay in float, so probabilities and masks keep their
   precision.

It then measures, on held-out images, what INT8 costs against the fp32 model in the same folder:

* accuracy -- classify: top-1 against labels (or top-1 agreement with fp32 when no labels are given); segment:
  mIoU against masks (or pixel agreement with fp32); restore: PSNR against clean targets. The drop is in
  percentage points (dB of PSNR for restore); without labels the disagreement with fp32 is used, an upper bound
  on any accuracy drop;
* speed -- median batch-1 latency of both models, timed in alternating rounds in one process with the same
  onnxruntime thread settings;
* size -- the two files' bytes.

When the drop exceeds ``max_drop`` it raises :class:`Int8AccuracyError` and writes nothing (the fp32 model and
its card stay as they were); otherwise the report goes into the card's ``int8`` block and reads like
``"top-1 0.871 -> 0.866, 2.4x faster, 3.9x smaller"``.

Quantising needs the ``onnx`` package (onnxruntime's quantisation tools import it); running the INT8 model
needs only onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pixlearn._core.errors import ConfigError, ExportError, PixlearnError, ShapeError

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "DEFAULT_CALIBRATION",
    "MAX_CALIBRATION",
    "MAX_EVAL",
    "INT8_FILE",
    "Int8AccuracyError",
    "Int8Report",
    "quantize_int8",
    "quantize_run_export",
    "check_int8_run",
]

DEFAULT_CALIBRATION = 100
"""Calibration images used when the caller does not say (``calibration_count``)."""
MAX_CALIBRATION = 500
"""The most calibration images :func:`quantize_int8` accepts (MinMax ranges settle long before)."""
MAX_EVAL = 1000
"""The most held-out images the accuracy check runs (the first ones are kept)."""
INT8_FILE = "model.int8.onnx"
"""The INT8 model's file name, beside ``model.onnx``."""

MODEL_FILE = "model.onnx"
CARD_FILE = "model.json"
TASKS = ("classify", "segment", "restore")
CALIBRATE_METHODS = ("minmax", "entropy", "percentile")
CalibrateMethod = Literal["minmax", "entropy", "percentile"]

# Operators the walk from the graph's inputs and outputs stops at: everything between an input and the first
# of these, or between the last of these and an output, is pre- or postprocessing and stays in float.
_BODY_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_CALIBRATION_BATCH = 8
_PSNR_CAP = 100.0


class Int8AccuracyError(ExportError):
    """The INT8 model lost more accuracy than allowed; nothing was written.

    ``report`` holds the measurements (:class:`Int8Report`) that led to the refusal.
    """

    def __init__(self, message: str, report: Int8Report) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Int8Report:
    """What INT8 costs against fp32 on one model: accuracy, latency and size.

    ``drop`` is in ``unit`` ("points": percentage points of ``metric``; "dB": PSNR) and positive when INT8 is
    worse. ``speedup`` is fp32 latency / INT8 latency; ``size_ratio`` fp32 bytes / INT8 bytes.
    """

    task: str
    metric: str
    unit: str
    fp32: float
    int8: float
    drop: float
    max_drop: float
    eval_images: int
    held_out: bool
    labelled: bool
    fp32_ms: float
    int8_ms: float
    speedup: float
    fp32_bytes: int
    int8_bytes: int
    size_ratio: float
    timing_rounds: int
    threads: int
    calibration_images: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the drop is within ``max_drop``."""
        return self.drop <= self.max_drop

    def summary(self) -> str:
        """One line for people, e.g. ``"top-1 0.871 -> 0.866, 2.4x faster, 3.9x smaller"``."""
        if self.unit == "dB":
            accuracy = f"{self.metric} {self.fp32:.2f} -> {self.int8:.2f} dB"
        elif self.labelled:
            accuracy = f"{self.metric} {self.fp32:.3f} -> {self.int8:.3f}"
        else:
            accuracy = f"{self.metric} with fp32 {self.int8:.3f}"
        if self.speedup >= 1.0:
            speed = f"{self.speedup:.1f}x faster"
        else:
            speed = f"{1.0 / max(self.speedup, 1e-9):.1f}x slower"
        if self.size_ratio >= 1.0:
            size = f"{self.size_ratio:.1f}x smaller"
        else:
            size = f"{1.0 / max(self.size_ratio, 1e-9):.1f}x larger"
        return f"{accuracy}, {speed}, {size}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (the card's ``int8`` block adds the file, the settings and the summary)."""
        out = asdict(self)
        out["passed"] = self.passed
        out["summary"] = self.summary()
        return out


def quantize_int8(
    onnx_dir: str | os.PathLike[str],
    calibration_images: str | os.PathLike[str] | Sequence[np.ndarray],
    *,
    eval_images: str | os.PathLike[str] | Sequence[np.ndarray] | None = None,
    eval_targets: Sequence[Any] | None = None,
    max_drop: float = 1.0,
    calibration_count: int = DEFAULT_CALIBRATION,
    calibrate_method: CalibrateMethod = "minmax",
    per_channel: bool = True,
    reduce_range: bool | None = None,
    threads: int | None = None,
    timing_seconds: float = 3.0,
) -> Int8Report:
    """Quantise an exported ONNX model to INT8 and measure what it costs; refuse when it costs too much.

    Parameters
    ----------
    onnx_dir : path
        A folder written by ``pixlearn export RUN --format onnx``: ``model.onnx`` and its card ``model.json``
        (task classify, segment or restore). ``model.int8.onnx`` is written here and the card's ``int8`` block
        filled in.
    calibration_images : path or sequence of ndarray
        A folder (searched recursively for images) or (H, W, 3) uint8 RGB arrays of any size, brought to the
        model's input size as the parity check does (stretched for classify, the centre tile for segment and
        restore). At most ``calibration_count`` are used, in sorted order. For restore, a folder holding
        ``degraded/`` and ``clean/`` images of the same names gives both the calibration inputs and, every fifth
        pair, the held-out check.
    eval_images : path or sequence of ndarray, optional
        Held-out images for the accuracy check (at most :data:`MAX_EVAL`). When omitted, every fifth calibration
        image is held out of calibration and used instead (with fewer than five images all of them are used for
        both, and the report says ``held_out=False``).
    eval_targets : sequence, optional
        One target per ``eval_images`` entry: classify -- the class index (int); segment -- an (H, W) integer
        mask; restore -- the clean (H, W, 3) uint8 image. Without targets, classify and segment compare INT8
        with fp32 (agreement); restore needs them.
    max_drop : float, default 1.0
        The largest accuracy drop accepted, in percentage points (dB of PSNR for restore), 0 to 100.
    calibration_count : int, default 100
        How many calibration images to use, 1 to :data:`MAX_CALIBRATION`.
    calibrate_method : {"minmax", "entropy", "percentile"}
        onnxruntime's calibration method.
    per_channel : bool, default True
        Per-output-channel weight scales (better accuracy for convolutions at a small speed cost).
    reduce_range : bool, optional
        7-bit weights; default: on for x86 CPUs without VNNI, where 8-bit products can saturate.
    threads : int, optional
        onnxruntime intra-op threads for calibration, evaluation and timing (default: the cores this process may
        use). Both models are timed with the same setting.
    timing_seconds : float, default 3.0
        Wall-clock budget of the latency measurement (0.05 to 60 s; at least 5 rounds run).

    Returns
    -------
    Int8Report
        The measurements, also written into ``model.json``'s ``int8`` block.

    Raises
    ------
    ConfigError
        The folder is not an ONNX export, the task has no INT8 check, an option is out of range, no calibration
        image could be read, restore has no targets, or the ``onnx`` package is missing.
    ShapeError
        An image or target has the wrong shape or dtype.
    Int8AccuracyError
        The drop exceeds ``max_drop``; nothing was written.

    Examples
    --------
    >>> quantize_int8("runs/classify/cats/export/onnx", "data/cats/train")  # doctest: +SKIP
    >>> print(_.summary())  # doctest: +SKIP
    top-1 agreement with fp32 0.995, 2.4x faster, 3.9x smaller
    """
    folder = Path(onnx_dir)
    card = _read_card(folder)
    task = card["task"]
    height, width = int(card["input"]["height"]), int(card["input"]["width"])
    max_drop = _check_range("max_drop", max_drop, 0.0, 100.0, "percentage points (dB of PSNR for restore)")
    timing_seconds = _check_range("timing_seconds", timing_seconds, 0.05, 60.0, "seconds")
    calibration_count = _check_int("calibration_count", calibration_count, 1, MAX_CALIBRATION)
    if calibrate_method not in CALIBRATE_METHODS:
        raise ConfigError(f"calibrate_method={calibrate_method!r} is not one of {', '.join(CALIBRATE_METHODS)}")
    threads = _check_int("threads", threads, 1, 1024) if threads is not None else _usable_cores()
    if reduce_range is None:
        reduce_range = _needs_reduce_range()

    targets: list[Any] | None = None
    pairs = None
    if task == "restore" and eval_images is None and isinstance(calibration_images, (str, os.PathLike)):
        pairs = _load_pairs(Path(calibration_images), calibration_count)
    if pairs is not None:  # restore: degraded/ + clean/ pairs; every fifth pair is held out with its clean image
        (calibration, evaluation), held_out = _hold_out([d for d, _ in pairs])
        _, targets = _hold_out([c for _, c in pairs])[0]
        calibration_source = str(calibration_images)
    else:
        calibration, calibration_source = _load_images(calibration_images, "calibration_images", calibration_count)
        if eval_images is None:
            if eval_targets is not None:
                raise ConfigError("eval_targets were given without eval_images; pass the images they belong to")
            (calibration, evaluation), held_out = _hold_out(calibration)
        else:
            evaluation, _ = _load_images(eval_images, "eval_images", MAX_EVAL)
            held_out = True
            if eval_targets is not None:
                targets = list(eval_targets)[: len(evaluation)]
                if len(targets) != len(evaluation):
                    raise ConfigError(f"eval_targets has {len(targets)} entries for {len(evaluation)} eval_images; "
                                      "give one target per image")
    if task == "restore" and targets is None:
        raise ConfigError("restore's INT8 check compares PSNR against clean images: pass eval_images (degraded "
                          "inputs) with eval_targets (their clean originals), or a calibration folder holding "
                          "degraded/ and clean/ images with the same names")

    from pixlearn.export.parity import fit_image

    resize = str(card["input"].get("resize", "bilinear"))
    calibration_batch = np.stack([fit_image(img, height, width, resize=resize) for img in calibration])
    eval_batch = np.stack([fit_image(img, height, width, resize=resize) for img in evaluation])
    target_size = (height, width)
    if task == "restore":  # a super-resolution model's output (and so its clean target) is larger than its input
        shape = (card.get("outputs") or {}).get("restored", {}).get("shape") or []
        if len(shape) == 4 and all(isinstance(v, int) for v in shape[1:3]):
            target_size = (int(shape[1]), int(shape[2]))
    prepared_targets = _prepare_targets(task, targets, *target_size, resize, len(card.get("class_names") or []),
                                        degraded=[np.asarray(img).shape[:2] for img in evaluation], input_size=(height, width))

    from pixlearn.export.card import sha256_file, write_card

    quantization = _import_quantization()
    fp32_path = folder / MODEL_FILE
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=folder) as tmp:
        tmp_dir = Path(tmp)
        int8_tmp, excluded = _quantize(quantization, fp32_path, tmp_dir, calibration_batch,
                                       method=calibrate_method, per_channel=per_channel, reduce_range=reduce_range)
        fp32_session = _session(fp32_path, threads)
        int8_session = _session(int8_tmp, threads)
        accuracy = _accuracy(task, fp32_session, int8_session, eval_batch, prepared_targets)
        fp32_ms, int8_ms, rounds = _time_interleaved(fp32_session, int8_session, eval_batch[:1], timing_seconds)
        fp32_bytes, int8_bytes = fp32_path.stat().st_size, int8_tmp.stat().st_size
        report = Int8Report(
            task=task, metric=accuracy["metric"], unit=accuracy["unit"], fp32=accuracy["fp32"],
            int8=accuracy["int8"], drop=accuracy["drop"], max_drop=max_drop, eval_images=len(eval_batch),
            held_out=held_out, labelled=prepared_targets is not None, fp32_ms=fp32_ms, int8_ms=int8_ms,
            speedup=fp32_ms / max(int8_ms, 1e-9), fp32_bytes=fp32_bytes, int8_bytes=int8_bytes,
            size_ratio=fp32_bytes / int8_bytes, timing_rounds=rounds, threads=threads,
            calibration_images=len(calibration_batch), extra=accuracy["extra"],
        )
        if not report.passed:
            raise Int8AccuracyError(
                f"{folder}: INT8 loses {report.drop:.2f} {report.unit} of {report.metric} on "
                f"{report.eval_images} {'held-out ' if held_out else ''}images ({report.summary()}), more than "
                f"max_drop={max_drop:g}. "
                f"Nothing was written; {MODEL_FILE} is unchanged. Fix: calibrate on more images that look like "
                "the real inputs (--calibration DIR), allow a larger drop (--max-drop), or ship the fp32 model.",
                report,
            )
        target = folder / INT8_FILE
        os.replace(int8_tmp, target)
    block = report.to_dict()
    block.update({
        "file": INT8_FILE,
        "sha256": sha256_file(target),
        "quantization": {
            "tool": "onnxruntime.quantization.quantize_static",
            "onnxruntime": _ort_version(),
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8",
            "per_channel": per_channel,
            "reduce_range": reduce_range,
            "calibrate_method": calibrate_method,
            "float_nodes": excluded,
        },
        "calibration": {"images": len(calibration_batch), "source": calibration_source},
    })
    card["int8"] = block
    write_card(folder, card)
    return report


RUN_EVAL_IMAGES = 200
"""The most held-out images of a run :func:`quantize_run_export` checks INT8 on."""


def quantize_run_export(
    run: str | os.PathLike[str],
    onnx_dir: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    *,
    max_drop: float = 1.0,
    calibration_count: int = DEFAULT_CALIBRATION,
    threads: int | None = None,
) -> Int8Report:
    """:func:`quantize_int8` for ``pixlearn export RUN --int8``: calibrated on the ``calibration`` folder, checked on
    the run's held-out split when its data is still on this machine.

    classify: the held-out images with their labels when they sit in class-named folders (else agreement with
    fp32); segment: the held-out images, pixel agreement with fp32; restore: the pairs of ``calibration``
    (``degraded/`` + ``clean/``). Without a held-out split, every fifth calibration image is held out instead.
    """
    card = _read_card(Path(onnx_dir))
    task = card["task"]
    eval_images: list[np.ndarray] | None = None
    eval_targets: list[int] | None = None
    if task != "restore":
        from pixlearn.export.parity import heldout_paths
        from pixlearn.io import read_image

        found = heldout_paths(run, task)
        if found is not None:
            paths = found[0]
            if len(paths) > RUN_EVAL_IMAGES:  # spread over the split rather than its first files
                paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, RUN_EVAL_IMAGES).round().astype(int)]
            read: list[tuple[Path, np.ndarray]] = []
            for path in paths:
                try:
                    read.append((path, read_image(path, mode="RGB")))
                except PixlearnError:
                    continue
            if read:
                eval_images = [img for _, img in read]
                names = list(card.get("class_names") or [])
                if task == "classify" and all(p.parent.name in names for p, _ in read):
                    eval_targets = [names.index(p.parent.name) for p, _ in read]
    return quantize_int8(onnx_dir, calibration, eval_images=eval_images, eval_targets=eval_targets,
                         max_drop=max_drop, calibration_count=calibration_count, threads=threads)


# ----------------------------------------------------------------------------------------------- the card

def check_int8_run(run: str | os.PathLike[str]) -> None:
    """Refuse ``--int8`` for a run whose task has no INT8 path (detectors), before anything is exported.

    Raises
    ------
    ConfigError
        A detection run: the message names the formats that do serve it and the tasks INT8 handles.
    """
    from pixlearn.engine.run_card import card_task

    task = card_task(Path(run))
    if task is not None and task not in TASKS:
        raise ConfigError(f"{run}: --int8 is not supported for {task} runs (detectors: their box decoding, RoIAlign and "
                          "NMS have no accuracy check in pixlearn's INT8 path); export the fp32 model with --format onnx "
                          f"or --format triton without --int8. INT8 quantises {', '.join(TASKS)} exports")


def _read_card(folder: Path) -> dict[str, Any]:
    from pixlearn.export.card import read_onnx_export

    card = read_onnx_export(folder, purpose="INT8 quantisation")
    task = card.get("task")
    if task not in TASKS:
        raise ConfigError(f"{folder / CARD_FILE}: INT8 quantisation has no accuracy check for task {task!r}; it "
                          f"handles {', '.join(TASKS)} (ship the fp32 ONNX model for this task)")
    inp = card.get("input")
    if not isinstance(inp, dict) or not all(isinstance(inp.get(k), int) and inp[k] > 0 for k in ("height", "width")):
        raise ConfigError(f"{folder / CARD_FILE}: the card's input has no positive integer height and width; "
                          "export the run again")
    return card


# ----------------------------------------------------------------------------------------------- inputs

def _check_range(name: str, value: float, low: float, high: float, unit: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise ConfigError(f"{name}={value!r} is out of range: expected a number from {low:g} to {high:g} ({unit})")
    return number


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise ConfigError(f"{name}={value!r} is out of range: expected a whole number from {low} to {high}")
    return int(value)


def _load_images(source: Any, name: str, limit: int) -> tuple[list[np.ndarray], str]:
    if isinstance(source, (str, os.PathLike)):
        from pixlearn.io import expand_sources, read_image

        root = Path(source)
        if not root.exists():
            raise ConfigError(f"{name}: {root} does not exist; pass a folder of images")
        images: list[np.ndarray] = []
        for path, _root in expand_sources(root):
            if len(images) >= limit:
                break
            try:
                images.append(read_image(path, mode="RGB"))
            except PixlearnError:
                continue  # a broken file does not stop calibration; the count is reported
        if not images:
            raise ConfigError(f"{name}: no readable image in {root}; pass a folder of images like the model's inputs")
        return images, str(root)
    if isinstance(source, np.ndarray) and source.ndim == 4:
        source = list(source)
    images = list(source)[:limit]
    if not images:
        raise ConfigError(f"{name} is empty; pass a folder or a list of (H, W, 3) uint8 images")
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ShapeError(f"{name}[{i}] is {got}; expected an (H, W, 3) uint8 RGB image")
    return images, "arrays"


def _hold_out(items: list[Any]) -> tuple[tuple[list[Any], list[Any]], bool]:
    """``((calibration, evaluation), held_out)``: every fifth item held out, or all in both when fewer than five."""
    if len(items) < 5:
        return (list(items), list(items)), False
    return ([x for i, x in enumerate(items) if i % 5 != 4], [x for i, x in enumerate(items) if i % 5 == 4]), True


def _load_pairs(root: Path, limit: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``(degraded, clean)`` images from ``root/degraded`` and ``root/clean`` (matched by path without extension),
    or None when ``root`` is not laid out that way."""
    degraded_dir, clean_dir = root / "degraded", root / "clean"
    if not degraded_dir.is_dir() or not clean_dir.is_dir():
        return None
    from pixlearn.io import expand_sources, read_image

    clean = {p.relative_to(clean_dir).with_suffix(""): p for p, _ in expand_sources(clean_dir)}
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for path, _ in expand_sources(degraded_dir):
        if len(pairs) >= limit:
            break
        match = clean.get(path.relative_to(degraded_dir).with_suffix(""))
        if match is None:
            continue
        try:
            pairs.append((read_image(path, mode="RGB"), read_image(match, mode="RGB")))
        except PixlearnError:
            continue
    if not pairs:
        raise ConfigError(f"{root}: no readable degraded/ image with a clean/ image of the same name; pair them by "
                          "name (degraded/a.png with clean/a.png)")
    return pairs


def _fit_mask(mask: np.ndarray, height: int, width: int, resize: str) -> np.ndarray:
    """A target mask cut or scaled like its image (:func:`pixlearn.export.parity.fit_image`), nearest-neighbour."""
    h, w = mask.shape
    if resize == "tile" and h >= height and w >= width:
        y, x = (h - height) // 2, (w - width) // 2
        return np.ascontiguousarray(mask[y:y + height, x:x + width])
    if (h, w) == (height, width):
        return np.ascontiguousarray(mask)
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.intp)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.intp)
    return np.ascontiguousarray(mask[rows][:, cols])


def _prepare_targets(task: str, targets: list[Any] | None, height: int, width: int, resize: str,
                     num_classes: int, *, degraded: Sequence[tuple[int, int]] | None = None,
                     input_size: tuple[int, int] | None = None) -> np.ndarray | None:
    """The targets as the outputs they are compared with: class indices, masks at the input size, clean images at
    the output size (``height`` x ``width``: scale x the input for an upscaler), cut where their image was cut
    (``degraded``: each evaluation image's (h, w); ``input_size``: the graph's)."""
    if targets is None:
        return None
    if task == "classify":
        labels = np.asarray(targets)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ShapeError(f"eval_targets for classify are class indices; got an array of {labels.dtype} "
                             f"{labels.shape}")
        if num_classes and (labels.min() < 0 or labels.max() >= num_classes):
            raise ConfigError(f"eval_targets hold class {int(labels.max())}, outside 0..{num_classes - 1} (the "
                              "card's class_names)")
        return labels.astype(np.int64)
    out = []
    for i, target in enumerate(targets):
        arr = np.asarray(target)
        if task == "segment":
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
                raise ShapeError(f"eval_targets[{i}] for segment is {arr.dtype} {arr.shape}; expected an (H, W) "
                                 "integer mask")
            out.append(_fit_mask(arr, height, width, resize).astype(np.int64))
        else:
            if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
                raise ShapeError(f"eval_targets[{i}] for restore is {arr.dtype} {arr.shape}; expected the clean "
                                 "(H, W, 3) uint8 image")
            shape = degraded[i] if degraded is not None and i < len(degraded) else None
            out.append(_fit_clean(arr, height, width, resize, shape, input_size))
    return np.stack(out)


def _fit_clean(clean: np.ndarray, height: int, width: int, resize: str, degraded: tuple[int, int] | None,
               input_size: tuple[int, int] | None) -> np.ndarray:
    """A clean image as the target of its restored degraded image: the ``height`` x ``width`` output-sized window.

    With tiles, the degraded image's centre tile is what the model restores; when the clean image is the degraded
    one's size times the model's scale (give or take the rounding of a downscale), its window starts at that tile's
    offset times the scale, so output and target cover the same place (the clean image's own centre may lie a pixel
    off for an upscaler). Otherwise :func:`pixlearn.export.parity.fit_image` at the output size.
    """
    from pixlearn.export.parity import fit_image

    if resize == "tile" and degraded is not None and input_size is not None:
        (h, w), (ih, iw) = degraded, input_size
        sy, sx = height // max(ih, 1), width // max(iw, 1)
        ch, cw = clean.shape[:2]
        if (sy * ih, sx * iw) == (height, width) and h >= ih and w >= iw and 0 <= ch - sy * h < sy and 0 <= cw - sx * w < sx:
            y, x = sy * ((h - ih) // 2), sx * ((w - iw) // 2)
            return np.ascontiguousarray(clean[y:y + height, x:x + width])
    return fit_image(clean, height, width, resize=resize)


# ----------------------------------------------------------------------------------------------- onnxruntime

def _import_quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError as exc:
        raise ConfigError(f"INT8 quantisation needs the onnx package beside onnxruntime ({exc}); install it with "
                          "`pip install onnx`") from exc
    return quantization


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _needs_reduce_range() -> bool:
    """7-bit weights on x86 CPUs without VNNI (onnxruntime's advice), 8-bit elsewhere."""
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686", "x86"}:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    return not any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _float_nodes(model: Any) -> list[str]:
    """Names of the nodes between the graph's inputs/outputs and the first/last body operator (kept in float)."""
    nodes = list(model.graph.node)
    producer = {out: node for node in nodes for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep: dict[str, Any] = {}

    def walk(start: list[Any], step: Any) -> None:
        stack = list(start)
        while stack:
            node = stack.pop()
            if node.op_type in _BODY_OPS or node.name in keep:
                continue
            keep[node.name] = node
            stack.extend(step(node))

    walk([producer[o.name] for o in model.graph.output if o.name in producer],
         lambda node: [producer[i] for i in node.input if i in producer])
    walk([c for i in model.graph.input for c in consumers.get(i.name, [])],
         lambda node: [c for o in node.output for c in consumers.get(o, [])])
    return sorted(keep)


class _Batches:
    """Feeds calibration images to onnxruntime's calibrator in batches (a ``CalibrationDataReader``)."""

    def __init__(self, images: np.ndarray, input_name: str, batch: int = _CALIBRATION_BATCH) -> None:
        self.images = images
        self.input_name = input_name
        self.batch = batch
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.images):
            return None
        batch = self.images[self.position:self.position + self.batch]
        self.position += self.batch
        return {self.input_name: batch}

    def rewind(self) -> None:
        self.position = 0


def _symbolic_shapes(model: Any) -> Any:
    """``model`` with onnxruntime's symbolic shape inference applied, or None when it gives up on the graph (onnx's own
    inference, which quant_pre_process runs next, is enough then).

    This is ``SymbolicShapeInference.infer_shapes`` without its failure branch, which saves the half-inferred model as
    ``sym_shape_infer_temp.onnx`` plus a ``<uuid>.data`` file in the current working directory (an upscaler's
    Resize + DepthToSpace graph is one such case); pixlearn must leave the caller's folder alone. Its steps are not
    public API: when they change, the symbolic step is skipped rather than run in a way that writes there.
    """
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inference = SymbolicShapeInference(2**31 - 1, False, False, 0)
        inference._preprocess(model)
        complete = False
        while inference.run_:
            complete = inference._infer_impl()
        inference._update_output_from_vi()
    except Exception:  # sympy missing, an op it cannot handle, or a changed onnxruntime: onnx's inference will do
        return None
    return inference.out_mp_ if complete else None


def _quantize(quantization: Any, fp32_path: Path, tmp: Path, images: np.ndarray, *, method: str,
              per_channel: bool, reduce_range: bool) -> tuple[Path, int]:
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = tmp / "prepared.onnx"
    shaped = _symbolic_shapes(onnx.load(str(fp32_path)))
    source = fp32_path
    if shaped is not None:
        source = tmp / "shaped.onnx"
        onnx.save(shaped, str(source))
    # the symbolic step is done above (quant_pre_process's own one writes its half-inferred model into the current
    # folder when it gives up); the optimiser and onnx's shape inference still run here, in onnxruntime's temp folder
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    model = onnx.load(str(prepared))
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"pixlearn_node_{i}"
    input_name = model.graph.input[0].name
    excluded = _float_nodes(model)
    named = tmp / "named.onnx"
    onnx.save(model, str(named))

    class Reader(quantization.CalibrationDataReader):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            # the histogram calibrators (entropy, percentile) stack every batch's outputs into one array: batches of
            # one image keep their shapes equal (a shorter last batch made onnxruntime's collector fail)
            self.batches = _Batches(images, input_name, _CALIBRATION_BATCH if method == "minmax" else 1)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self.batches.get_next()

        def rewind(self) -> None:
            self.batches.rewind()

    methods = {"minmax": quantization.CalibrationMethod.MinMax, "entropy": quantization.CalibrationMethod.Entropy,
               "percentile": quantization.CalibrationMethod.Percentile}
    out = tmp / "model.int8.onnx"
    quantization.quantize_static(
        str(named), str(out), Reader(),
        quant_format=quantization.QuantFormat.QDQ,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=methods[method],
        extra_options={"CalibMaxIntermediateOutputs": 8},  # MinMax merges ranges every 8 batches (bounded memory)
    )
    return out, len(excluded)


# ----------------------------------------------------------------------------------------------- measuring

def _run(session: onnxruntime.InferenceSession, images: np.ndarray, output: str) -> np.ndarray:
    name = session.get_inputs()[0].name
    parts = [session.run([output], {name: images[i:i + 16]})[0] for i in range(0, len(images), 16)]
    return np.concatenate(parts)


def _accuracy(task: str, fp32: Any, int8: Any, images: np.ndarray,
              targets: np.ndarray | None) -> dict[str, Any]:
    if task == "classify":
        p32 = _run(fp32, images, "probabilities").argmax(axis=1)
        p8 = _run(int8, images, "probabilities").argmax(axis=1)
        agreement = float(np.mean(p32 == p8))
        if targets is None:
            return {"metric": "top-1 agreement", "unit": "points", "fp32": 1.0, "int8": agreement,
                    "drop": 100.0 * (1.0 - agreement), "extra": {}}
        a32, a8 = float(np.mean(p32 == targets)), float(np.mean(p8 == targets))
        return {"metric": "top-1", "unit": "points", "fp32": a32, "int8": a8, "drop": 100.0 * (a32 - a8),
                "extra": {"top1_agreement": agreement}}
    if task == "segment":
        m32, m8 = _run(fp32, images, "mask"), _run(int8, images, "mask")
        agreement = float(np.mean(m32 == m8))
        if targets is None:
            return {"metric": "pixel agreement", "unit": "points", "fp32": 1.0, "int8": agreement,
                    "drop": 100.0 * (1.0 - agreement), "extra": {}}
        i32, i8 = _miou(m32, targets), _miou(m8, targets)
        return {"metric": "mIoU", "unit": "points", "fp32": i32, "int8": i8, "drop": 100.0 * (i32 - i8),
                "extra": {"pixel_agreement": agreement}}
    r32, r8 = _run(fp32, images, "restored"), _run(int8, images, "restored")
    assert targets is not None  # checked by quantize_int8
    s32, s8 = _psnr(r32, targets), _psnr(r8, targets)
    return {"metric": "PSNR", "unit": "dB", "fp32": s32, "int8": s8, "drop": s32 - s8,
            "extra": {"psnr_int8_vs_fp32": _psnr(r8, r32)}}


def _miou(pred: np.ndarray, truth: np.ndarray) -> float:
    classes = np.union1d(np.unique(pred), np.unique(truth))
    ious = []
    for c in classes:
        p, t = pred == c, truth == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


def _psnr(images: np.ndarray, references: np.ndarray) -> float:
    values = []
    for a, b in zip(images, references, strict=True):
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        values.append(_PSNR_CAP if mse == 0 else min(_PSNR_CAP, 10.0 * math.log10(255.0**2 / mse)))
    return float(np.mean(values))


def _time_interleaved(fp32: Any, int8: Any, batch: np.ndarray, budget: float) -> tuple[float, float, int]:
    """Median latency (ms) of each model, timed in alternating rounds until ``budget`` seconds have passed."""
    feeds = [(s, {s.get_inputs()[0].name: batch}) for s in (fp32, int8)]
    for session, feed in feeds:  # warm-up: first runs allocate and tune
        session.run(None, feed)
        session.run(None, feed)
    times: list[list[float]] = [[], []]
    start = time.perf_counter()
    rounds = 0
    while rounds < 5 or (time.perf_counter() - start < budget and rounds < 500):
        order = (0, 1) if rounds % 2 == 0 else (1, 0)
        for k in order:
            session, feed = feeds[k]
            t0 = time.perf_counter()
            session.run(None, feed)
            times[k].append(time.perf_counter() - t0)
        rounds += 1
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3, rounds
