"""Export a trained run to ONNX (or TorchScript, or a torch.export ExportedProgram), preprocessing and
postprocessing inside the graph, checked against the run's torch predictor before it is kept.

Every exported model takes ``images``: uint8, NHWC, (batch, height, width, 3) with a dynamic batch and the run's
input size; the /255, mean/std normalisation and the NHWC -> NCHW transpose happen inside. Its outputs by task:

* classify: ``probabilities`` float32 (batch, C), softmax inside;
* segment: ``mask`` int64 (batch, H, W), argmax inside (a binary network: probability > 0.5), and
  ``probabilities`` float32 (batch, C, H, W);
* restore: ``restored`` uint8 (batch, scale*H, scale*W, 3), clamped and rounded inside (a grey restorer restores
  each channel, as its predictor does with a colour picture);
* detect (ONNX only): one letterboxed image per call, ``images`` (1, S, S, 3) -- torchvision's detection graphs take
  a list of images, which tracing fixes at one -- so the card says ``dynamic_batch: false``. Normalisation, the
  network, box decoding and class-wise NMS are inside; the outputs are ``boxes`` float32 (N, 4) xyxy in input
  pixels, ``scores`` float32 (N,), ``labels`` int64 (N,) 0-based, and ``masks`` float32 (N, 1, S, S) for Mask R-CNN.
  Baked in: the run's own score floor (its spec's ``score_thresh``, 0.05 by default), NMS at IoU
  :data:`DETECT_NMS_IOU` (the predictor's default) and at most :data:`DETECT_MAX_DETECTIONS` detections; a caller's
  higher score and lower count are applied after (:class:`pixlearn.export.runtime.OnnxDetector`).

``model.json`` beside the file is the card (:mod:`pixlearn.export.card`); the parity check
(:mod:`pixlearn.export.parity`) runs the written file -- in onnxruntime for ONNX, in torch for the other two -- and
the torch predictor on the same images. When they differ beyond the tolerance, nothing usable is left behind: the
file becomes ``model.onnx.failed`` (its card ``model.json.failed``) and :class:`~pixlearn.export.ParityError` says by how much.

The ONNX file comes from torch's TorchScript-based exporter (``dynamo=False``): it exports these convolutional
networks without extra packages (the dynamo exporter needs onnxscript), with a dynamic batch axis.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixlearn._core.checks import probability_logit
from pixlearn._core.errors import ConfigError, ExportError, ParityError
from pixlearn.export.card import CARD_NAME, EXPORT_TASKS, FORMATS, MODEL_FILES, export_card, output_specs, sha256_file, write_card

__all__ = [
    "DEFAULT_OPSET",
    "OPSETS",
    "ClassifyGraph",
    "SegmentGraph",
    "RestoreGraph",
    "DetectGraph",
    "DETECT_NMS_IOU",
    "DETECT_MAX_DETECTIONS",
    "ExportSource",
    "ExportResult",
    "load_source",
    "export_source",
    "export_run",
    "export_onnx",
    "onnx_runner",
    "torch_runner",
]

#: The ONNX opset written unless asked otherwise, and the opsets torch's exporter writes.
DEFAULT_OPSET = 17
OPSETS = range(17, 21)
#: Most images the parity check uses.
MAX_PARITY_IMAGES = 256
#: The detection architectures that export: onnxruntime's run of torchvision's traced FCOS and RetinaNet gives other
#: detections than torch (more than the graph's candidates for FCOS), which parity catches; they are refused up front.
DETECT_EXPORT_ARCHS = ("faster_rcnn", "mask_rcnn", "ssdlite")
#: What an exported detector bakes in: class-wise NMS at the predictor's default IoU, and as many detections per image
#: as ``pixlearn predict --max-detections`` allows (fewer are taken after).
DETECT_NMS_IOU = 0.5
DETECT_MAX_DETECTIONS = 1000


# ---------------------------------------------------------------- graphs: uint8 NHWC in, the task's outputs out
def _nchw_float(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).to(torch.float32)


class ClassifyGraph(nn.Module):
    """uint8 (N, H, W, 3) -> class probabilities (N, C): the classifier's normalisation, network and softmax.

    The arithmetic is the predictor's (:func:`pixlearn.tasks.classify.predict.preprocess_images`):
    ``x * (1 / (255 std)) - mean / std``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        m = torch.as_tensor(mean, dtype=torch.float32).flatten().expand(3).reshape(1, 3, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32).flatten().expand(3).reshape(1, 3, 1, 1)
        self.register_buffer("scale", (1 / (255 * s)).contiguous(), persistent=False)
        self.register_buffer("shift", (-m / s).contiguous(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _nchw_float(images) * self.scale + self.shift
        return torch.softmax(self.model(x).float(), dim=1)


class SegmentGraph(nn.Module):
    """uint8 (N, H, W, 3) -> (mask int64 (N, H, W), probabilities float32 (N, C, H, W)), as the segmenter's
    predictor computes them on one tile (a one-channel network sees the rounded mean of the three channels; a
    binary one's mask is its probability above the run's decision ``threshold``)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], *, channels: int, binary: bool,
                 threshold: float = 0.5) -> None:
        super().__init__()
        self.model, self.channels, self.binary = model, int(channels), bool(binary)
        self.cut = probability_logit(threshold)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _nchw_float(images)
        if self.channels == 1:
            x = x.mean(dim=1, keepdim=True).round()
        x = (x / 255 - self.mean) / self.std
        z = self.model(x).float()
        if self.binary:
            p = torch.sigmoid(z[:, 0])
            return (z[:, 0] > self.cut).to(torch.int64), torch.stack([1 - p, p], dim=1)
        return z.argmax(dim=1), torch.softmax(z, dim=1)


class RestoreGraph(nn.Module):
    """uint8 (N, H, W, 3) -> restored uint8 (N, sH, sW, 3): ``x / 255``, the network, ``round(255 y)`` clamped.

    A grey (one-channel) restorer restores each colour channel on its own, as its predictor does.
    """

    def __init__(self, model: nn.Module, *, channels: int, scale: int, height: int, width: int) -> None:
        super().__init__()
        self.model, self.channels, self.scale = model, int(channels), int(scale)
        self.height, self.width = int(height), int(width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _nchw_float(images) * (1 / 255)
        if self.channels == 1:
            x = x.reshape(-1, 1, self.height, self.width)
        y = self.model(x).float()
        if self.channels == 1:
            y = y.reshape(-1, 3, self.scale * self.height, self.scale * self.width)
        return (y * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class DetectGraph(nn.Module):
    """uint8 (1, S, S, 3) letterboxed image -> (boxes, scores, labels[, masks]) of a torchvision detector.

    The network's own transform normalises (its mean/std) and, the image being S x S already, resizes nothing;
    its postprocessing decodes the boxes and runs class-wise NMS. Labels come out 0-based (torchvision's background
    class 0 is never returned). The thresholds are the network's at trace time: set them before exporting.
    """

    def __init__(self, model: nn.Module, *, masks: bool) -> None:
        super().__init__()
        self.model, self.masks = model, bool(masks)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = images[0].permute(2, 0, 1).to(torch.float32) / 255
        r = self.model([x])[0]
        out = (r["boxes"].float(), r["scores"].float(), r["labels"].to(torch.int64) - 1)
        return (*out, r["masks"].float()) if self.masks else out


# ---------------------------------------------------------------- a run, ready to export
@dataclass
class ExportSource:
    """A run's torch predictor, the graph to export, and what its card says."""

    run: Path
    task: str
    predictor: Any
    graph: nn.Module
    class_names: list[str]
    height: int
    width: int
    weights: Path
    scale: int = 1
    resize: str = "bilinear"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        """The run folder: ``run`` itself, or the run whose weights/ holds the weights file given."""
        if self.run.is_dir():
            return self.run
        return self.run.parent.parent if self.run.parent.name == "weights" else self.run.parent

    @property
    def output_names(self) -> list[str]:
        return list(output_specs(self.task, num_classes=len(self.class_names), height=self.height, width=self.width,
                                 scale=self.scale, masks=bool(self.details.get("masks"))))

    @property
    def dynamic_batch(self) -> bool:
        """Whether the graph takes any batch (detectors take one image per call)."""
        return self.task != "detect"


def _is_classic(run: Path) -> bool:
    cfg = run / "config.yaml"
    return cfg.is_file() and "method: classic" in cfg.read_text(encoding="utf-8", errors="replace")


def _export_task(run: Path) -> str:
    """The run's task, or a typed error naming what exports."""
    from pixlearn.engine.run_card import card_task

    formats = ", ".join(FORMATS)
    name = card_task(run)
    if name is None:
        if not run.exists():
            raise ConfigError(f"{run}: no such run folder; pass a folder that pixlearn train classify|segment|restore wrote")
        if _is_classic(run):
            raise ConfigError(f"{run}: is a classic (HOG/LBP + SVM/forest) run, which does not export; pixlearn export takes "
                              f"runs of train {', '.join(EXPORT_TASKS)} (formats {formats})")
        raise ConfigError(f"{run}: not a run folder (no weights/model.json); pass a folder that pixlearn train "
                          f"{'|'.join(EXPORT_TASKS)} wrote")
    if name not in EXPORT_TASKS:
        raise ConfigError(f"{run}: is a {name!r} run, which does not export; pixlearn export takes {', '.join(EXPORT_TASKS)} "
                          f"runs (formats {formats})")
    return name


def _run_tile(run: Path, default: int = 256) -> int:
    """A restoration run's inference tile (``train.tile`` of its config.yaml), the exported input size."""
    if not (run / "config.yaml").is_file():
        return default
    from pixlearn._core.safe_yaml import load_yaml_file

    cfg = load_yaml_file(run / "config.yaml") or {}
    tile = (cfg.get("train") or {}).get("tile", default) if isinstance(cfg, dict) else default
    return int(tile) if isinstance(tile, int) and not isinstance(tile, bool) and tile >= 8 else default


def load_source(run: str | os.PathLike[str]) -> ExportSource:
    """Load a run's torch predictor on the CPU and build the graph to export.

    Raises
    ------
    ConfigError
        Not a run folder, a classic run, or a task that does not export yet (detect): the message names the
        tasks and formats that do.
    """
    from pixlearn.engine.run_card import read_model_card
    from pixlearn.tasks.registry import task as get_task

    path = Path(run)
    name = _export_task(path)
    _, weights = read_model_card(path, what=name, command=f"pixlearn train {name}")
    load = get_task(name).load("load")
    if name == "classify":
        clf = load(path, device="cpu")
        pre = clf.preprocess
        h, w = pre.img_size
        return ExportSource(path, name, clf, ClassifyGraph(clf.model, pre.mean, pre.std).eval(), list(clf.classes), h, w,
                            weights, resize="bilinear")
    if name == "segment":
        seg = load(path, device="cpu")
        # the graph is the plain network: parity is checked without the run's test-time augmentation, which the
        # runtime applies around the graph as the torch segmenter does around the network (details.tta)
        tta, seg.tta = seg.tta, "none"
        pre = seg.preprocess
        h, w = seg.tile
        graph = SegmentGraph(seg.model, pre.mean, pre.std, channels=pre.input_size[0], binary=seg.binary, threshold=seg.threshold).eval()
        return ExportSource(path, name, seg, graph, list(seg.classes), h, w, weights, resize="tile",
                            details={"binary": seg.binary, "mask_coding": seg.mask_coding, "overlap": seg.overlap, "multiple": seg.multiple,
                                     "tta": tta, "threshold": seg.threshold})
    if name == "detect":
        return _detect_source(path, weights)
    tile = _run_tile(path if path.is_dir() else (path.parent.parent if path.parent.name == "weights" else path.parent))
    res = load(path, device="cpu", tile=tile)
    graph = RestoreGraph(res.model, channels=res.channels, scale=res.scale, height=tile, width=tile).eval()
    return ExportSource(path, name, res, graph, [], tile, tile, weights, scale=res.scale, resize="tile",
                        details={"mode": res.mode, "scale": res.scale, "restore_task": res.restore_task, "overlap": res.overlap})


def _detect_source(path: Path, weights: Path) -> ExportSource:
    """A detection run: its TorchDetector, with the network's thresholds set to what the graph bakes in."""
    import json

    from pixlearn.tasks.detect.model import load_run_detector

    run = path if path.is_dir() else (path.parent.parent if path.parent.name == "weights" else path.parent)
    det = load_run_detector(run, device="cpu")
    spec = det.model.pixlearn_detect_spec
    if spec["arch"] not in DETECT_EXPORT_ARCHS:
        raise ConfigError(f"{run}: a {spec['arch']} detector does not export to ONNX yet: onnxruntime's run of torchvision's "
                          f"traced {spec['arch']} graph gives other detections than torch, so it would fail parity. The "
                          f"architectures that export are {', '.join(DETECT_EXPORT_ARCHS)} (pixlearn train detect --model); "
                          "predict or serve this run from its folder")
    score = float(spec.get("score_thresh", 0.05))
    det._set_thresholds(score, DETECT_NMS_IOU, DETECT_MAX_DETECTIONS)
    try:
        card = json.loads((run / "weights" / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        card = {}
    names = list(det.class_names)
    ids = card.get("category_ids")
    tile = card.get("tile")
    details = {
        "arch": spec["arch"], "backbone": spec["backbone"], "masks": bool(det.masks),
        "score_thresh": score, "nms_iou": DETECT_NMS_IOU, "max_detections": DETECT_MAX_DETECTIONS,
        "category_ids": [int(i) for i in ids] if isinstance(ids, list) and len(ids) == len(names) else list(range(1, len(names) + 1)),
        "tile": int(tile) if tile else None, "tile_overlap": float(card.get("tile_overlap") or 0.2) if tile else None,
        "name": str(card.get("name") or run.name),
    }
    graph = DetectGraph(det.model, masks=det.masks).eval()
    return ExportSource(path, "detect", det, graph, names, det.img_size, det.img_size, weights, resize="letterbox",
                        details=details)


# ---------------------------------------------------------------- writers and runners per format
@contextmanager
def _quiet_export() -> Iterator[None]:
    """torch's exporters warn about their own deprecations and traced shapes; none of it is the user's to act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes traced as constants: the graph has fixed H, W
        yield


def _example(source: ExportSource, batch: int = 2) -> torch.Tensor:
    batch = batch if source.dynamic_batch else 1
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, source.height, source.width, 3), generator=g, dtype=torch.uint8)


def _write_onnx(source: ExportSource, path: Path, *, opset: int) -> None:
    names = source.output_names
    if source.dynamic_batch:
        axes = {n: {0: "batch"} for n in ["images", *names]}
    else:  # one image in; the outputs' first axis is the number of detections
        axes = {n: {0: "detections"} for n in names}
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(
            source.graph, (_example(source),), str(path), dynamo=False, input_names=["images"], output_names=names,
            dynamic_axes=axes, opset_version=int(opset), do_constant_folding=True,
        )


def _write_torchscript(source: ExportSource, path: Path) -> None:
    with _quiet_export(), torch.no_grad():
        traced = torch.jit.trace(source.graph, (_example(source),), check_trace=False)
        torch.jit.save(traced, str(path))


def _write_exported_program(source: ExportSource, path: Path) -> None:
    from torch.export import Dim, export, save

    with _quiet_export(), torch.no_grad():
        program = export(source.graph, (_example(source),), dynamic_shapes={"images": {0: Dim("batch", min=1, max=4096)}})
        save(program, str(path))


def onnx_runner(path: str | os.PathLike[str], *, threads: int | None = None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function that runs an ONNX file in onnxruntime (CPU): uint8 NHWC batch -> outputs by name."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # onnxruntime warns when a detector's output count differs from the traced one
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {input_name: batch})))

    return run


def torch_runner(path: str | os.PathLike[str], fmt: str, output_names: Sequence[str]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function that runs a TorchScript (``model.pt``) or ExportedProgram (``model.pt2``) file in torch."""
    if fmt == "torchscript":
        with _quiet_export():  # torch.jit.load warns that TorchScript is deprecated
            module: Any = torch.jit.load(str(path), map_location="cpu")
    elif fmt == "exported-program":
        from torch.export import load

        with _quiet_export():
            module = load(str(path)).module()
    else:
        raise ConfigError(f"no torch runner for format {fmt!r}; torch runs torchscript and exported-program files")

    @torch.no_grad()
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        out = module(torch.from_numpy(np.ascontiguousarray(batch)))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.detach().cpu().numpy() for n, o in zip(output_names, outs)}

    return run


# ---------------------------------------------------------------- the export
@dataclass
class ExportResult:
    """Where the export went and what its card says."""

    folder: Path
    model: Path
    card_path: Path
    card: dict[str, Any]
    seconds: dict[str, float]


def _check_options(fmt: str, opset: int, tolerance: float | None, parity_images: int) -> str:
    from pixlearn._core.names import check_name

    fmt = check_name(str(fmt), FORMATS, what="export format")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ConfigError(f"opset must be an integer in {OPSETS.start}..{OPSETS.stop - 1} (what torch's ONNX exporter writes), "
                          f"got {opset!r}; the default {DEFAULT_OPSET} loads in every current onnxruntime")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                  or not np.isfinite(tolerance) or not 0 < tolerance <= 255):
        raise ConfigError(f"tolerance must be a number in (0, 255] (probabilities for classify/segment, grey levels for "
                          f"restore), got {tolerance!r}; leave it out for the task's default")
    if isinstance(parity_images, bool) or not isinstance(parity_images, int) or not 1 <= parity_images <= MAX_PARITY_IMAGES:
        raise ConfigError(f"parity_images must be an integer in 1..{MAX_PARITY_IMAGES}, got {parity_images!r}")
    return fmt


def _check_task_format(run: Path, task: str, fmt: str) -> None:
    """Detectors export to ONNX only: a typed error naming it for the other formats."""
    from pixlearn.export.card import ONNX_ONLY_TASKS

    if task in ONNX_ONLY_TASKS and fmt != "onnx":
        raise ConfigError(f"{run}: a {task} run exports to ONNX only (--format onnx, or triton built on it), not {fmt}: "
                          "torchvision's detectors take a list of images and return dicts, which pixlearn traces into "
                          "ONNX with their box decoding and NMS; predict with the run folder to use torch")


def _clear(folder: Path, fmt: str) -> None:
    """Remove what an earlier export of this format left in ``folder`` (a card must never describe another file).

    A ``model.json`` that is not an export card (a run's ``weights/model.json``, say) is never touched: the
    export stops instead, before writing anything.
    """
    import json

    card = folder / CARD_NAME
    if card.is_file():
        try:
            data = json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not (isinstance(data, dict) and data.get("format") in FORMATS and "parity" in data):
            raise ConfigError(f"{folder}: holds a {CARD_NAME} that is not an export card (a run's weights folder?); "
                              "choose another --out folder")
    model = MODEL_FILES[fmt]
    for name in (CARD_NAME, f"{CARD_NAME}.failed", model, f"{model}.failed"):
        p = folder / name
        if p.is_file() or p.is_symlink():
            p.unlink()


def export_source(
    source: ExportSource,
    *,
    format: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    opset: int = DEFAULT_OPSET,
    images: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    parity_images: int = 16,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a loaded :class:`ExportSource` and check it (see :func:`export_run`)."""
    from pixlearn.export.parity import check_parity, describe, parity_images as choose_images

    fmt = _check_options(format, opset, tolerance, parity_images)
    _check_task_format(source.run, source.task, fmt)
    say = log or (lambda _msg: None)
    chosen = choose_images(source.home, source.task, height=source.height, width=source.width, resize=source.resize,
                           images=images, limit=parity_images)  # before any file is written: a bad --images stops here
    folder = Path(out) if out is not None else source.home / "export" / fmt
    folder.mkdir(parents=True, exist_ok=True)
    _clear(folder, fmt)
    model_path = folder / MODEL_FILES[fmt]
    failed = model_path.with_name(model_path.name + ".failed")
    t0 = time.perf_counter()
    try:
        if fmt == "onnx":
            _write_onnx(source, model_path, opset=opset)
        elif fmt == "torchscript":
            _write_torchscript(source, model_path)
        else:
            _write_exported_program(source, model_path)
    except Exception as exc:  # the exporters raise many kinds; the user gets one typed error that names the run
        model_path.unlink(missing_ok=True)
        raise ExportError(f"{source.run}: torch could not export the {source.task} model as {fmt}"
                          f"{f' (opset {opset})' if fmt == 'onnx' else ''}: {type(exc).__name__}: {exc}") from exc
    t_export = time.perf_counter() - t0
    say(f"wrote {model_path} ({model_path.stat().st_size / 1e6:.2f} MB) in {t_export:.1f} s")
    say(f"parity images: {chosen.source}")
    t1 = time.perf_counter()
    try:
        runner = onnx_runner(model_path) if fmt == "onnx" else torch_runner(model_path, fmt, source.output_names)
    except Exception as exc:  # onnxruntime / torch cannot even load what was written
        os.replace(model_path, failed)
        raise ExportError(f"{source.run}: the exported {fmt} file does not load ({type(exc).__name__}: {exc}); it is kept as "
                          f"{failed} for inspection, not as a model") from exc
    try:
        parity = check_parity(source.task, source.predictor, runner, chosen, tolerance=tolerance, details=source.details)
    except ParityError as exc:
        os.replace(model_path, failed)
        raise ParityError(f"{source.run}: {exc}; the {fmt} file is kept as {failed} for inspection, not as a model") from exc
    t_parity = time.perf_counter() - t1
    say(describe(parity))
    card = export_card(
        fmt=fmt, task=source.task, class_names=source.class_names, height=source.height, width=source.width,
        # the run as an absolute path (".." folded, links kept): a server or a script started in another folder finds
        # the run's card and metrics from it
        source={"run": os.path.abspath(source.run), "weights_sha256": sha256_file(source.weights)},
        opset=opset if fmt == "onnx" else None, scale=source.scale, resize=source.resize, parity=parity, details=source.details,
        dynamic_batch=source.dynamic_batch,
    )
    if not parity["passed"]:
        os.replace(model_path, failed)
        write_card(folder, card, name=f"{CARD_NAME}.failed")
        diff = parity["max_abs_diff"]
        if parity.get("unmatched"):
            raise ParityError(
                f"{source.run}: the exported {fmt} detector does not match the torch predictor: {parity['unmatched']} of its "
                f"detections have no counterpart (same label, IoU >= {parity.get('match_iou')}) on {parity['images']} image(s) "
                f"(matched agreement {parity['agreement']}); the file is kept as {failed} for inspection, not as a model "
                "(its card as model.json.failed)")
        raise ParityError(
            f"{source.run}: the exported {fmt} model does not match the torch predictor: max |diff| of {parity['compared']} "
            f"{'not finite' if diff is None else f'{diff:.3g}'} > tolerance {parity['tolerance']:.3g} on {parity['images']} image(s) "
            f"({parity['agreement_metric']} agreement {parity['agreement']}); the file is kept as {failed} for inspection, "
            "not as a model (its card as model.json.failed)."
            + (" Another --opset or --format torchscript may export it" if source.dynamic_batch else " Another --opset may export it")
        )
    card_path = write_card(folder, card)
    return ExportResult(folder, model_path, card_path, card, {"export": round(t_export, 3), "parity": round(t_parity, 3)})


def export_run(
    run: str | os.PathLike[str],
    *,
    format: str = "onnx",
    out: str | os.PathLike[str] | None = None,
    opset: int = DEFAULT_OPSET,
    images: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    parity_images: int = 16,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a run folder's model with its preprocessing and postprocessing inside, and check it.

    Parameters
    ----------
    run : path
        A run folder of ``pixlearn train classify|segment|restore`` (or its weights file).
    format : {"onnx", "torchscript", "exported-program"}
        ``model.onnx`` (checked in onnxruntime), ``model.pt`` (``torch.jit.trace``) or ``model.pt2``
        (``torch.export.save``), the last two checked in torch.
    out : path, optional
        The folder for the model and its ``model.json``; default ``RUN/export/<format>/``.
    opset : int, default 17
        ONNX opset, 17..20.
    images : path, optional
        Check parity on these images instead of the run's held-out split.
    tolerance : float, optional
        Largest absolute difference allowed (default per task: :data:`pixlearn.export.parity.TOLERANCES`).
    parity_images : int, default 16
        Most images the check uses (1..256).
    log : callable, optional
        Receives one line per step (what was written, the parity images, the parity result).

    Returns
    -------
    ExportResult

    Raises
    ------
    ConfigError
        Not an exportable run (the message names the tasks and formats that export), or an option out of range.
    ExportError
        torch could not export the model.
    ParityError
        The file's outputs differ from the torch predictor's beyond the tolerance (the file is left as
        ``<model>.failed``, its card as ``model.json.failed``).
    """
    fmt = _check_options(format, opset, tolerance, parity_images)
    _check_task_format(Path(run), _export_task(Path(run)), fmt)  # before loading the network
    return export_source(load_source(run), format=format, out=out, opset=opset, images=images, tolerance=tolerance,
                         parity_images=parity_images, log=log)


def export_onnx(run: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, **options: Any) -> ExportResult:
    """:func:`export_run` with ``format="onnx"``."""
    return export_run(run, format="onnx", out=out, **options)
