"""The model card of an exported model (``model.json`` beside ``model.onnx``, ``model.pt`` or ``model.pt2``).

The card says everything a caller needs to feed the file and read its outputs without pixlearn's training
code: the task and class names, the input (``images``: uint8, NHWC, a fixed height and width, a dynamic
batch), each output's dtype and shape, where the model came from (the run and its weights' SHA-256), and the
parity check that compared the file with the torch predictor. Reading a card needs no torch and no onnx.

Examples
--------
>>> card = export_card(fmt="onnx", task="classify", class_names=["cat", "dog"], height=32, width=32,
...                    source={"run": "runs/classify/x", "weights_sha256": "0" * 64}, opset=17)
>>> card["input"]["layout"], card["outputs"]["probabilities"]["shape"]
('NHWC', ['batch', 2])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = [
    "CARD_NAME",
    "read_onnx_export",
    "FORMATS",
    "MODEL_FILES",
    "EXPORT_TASKS",
    "ONNX_ONLY_TASKS",
    "INPUT_NAME",
    "export_card",
    "output_specs",
    "read_card",
    "write_card",
    "sha256_file",
]

#: The card's file name, beside the model file.
CARD_NAME = "model.json"
#: The formats ``pixlearn export --format`` writes, in help order.
FORMATS = ("onnx", "torchscript", "exported-program")
#: The model file each format writes in its folder.
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt", "exported-program": "model.pt2"}
#: The tasks whose runs export (a detector to ONNX only: see :data:`ONNX_ONLY_TASKS`).
EXPORT_TASKS = ("classify", "segment", "restore", "detect")
#: Tasks whose runs export to ONNX only (torchvision's detectors trace into ONNX with their NMS; TorchScript and
#: ExportedProgram of the same wrapper are not offered).
ONNX_ONLY_TASKS = ("detect",)
#: The graph input's name.
INPUT_NAME = "images"
#: Keys every card has.
_REQUIRED = ("format", "task", "class_names", "input", "outputs", "source", "parity")


def output_specs(task: str, *, num_classes: int, height: int, width: int, scale: int = 1,
                 masks: bool = False) -> dict[str, dict[str, Any]]:
    """Name -> ``{"dtype", "shape"}`` of the outputs an exported ``task`` model gives ("batch": the dynamic axis).

    classify: ``probabilities`` (batch, C) float32 (softmax inside); segment: ``mask`` (batch, H, W) int64 (argmax
    inside) and ``probabilities`` (batch, C, H, W) float32; restore: ``restored`` (batch, scale*H, scale*W, 3) uint8;
    detect (one image per call, no batch axis; "detections": how many the image gave): ``boxes`` (detections, 4)
    float32 xyxy in input pixels, ``scores`` (detections,) float32, ``labels`` (detections,) int64 (0-based class
    indices) and, with ``masks`` (Mask R-CNN), ``masks`` (detections, 1, H, W) float32 mask probabilities.

    >>> output_specs("detect", num_classes=2, height=64, width=64)["boxes"]
    {'dtype': 'float32', 'shape': ['detections', 4]}

    >>> output_specs("segment", num_classes=3, height=8, width=8)["mask"]
    {'dtype': 'int64', 'shape': ['batch', 8, 8]}
    """
    if task == "classify":
        return {"probabilities": {"dtype": "float32", "shape": ["batch", int(num_classes)]}}
    if task == "segment":
        return {
            "mask": {"dtype": "int64", "shape": ["batch", int(height), int(width)]},
            "probabilities": {"dtype": "float32", "shape": ["batch", int(num_classes), int(height), int(width)]},
        }
    if task == "restore":
        return {"restored": {"dtype": "uint8", "shape": ["batch", int(scale) * int(height), int(scale) * int(width), 3]}}
    if task == "detect":
        out = {"boxes": {"dtype": "float32", "shape": ["detections", 4]}, "scores": {"dtype": "float32", "shape": ["detections"]},
               "labels": {"dtype": "int64", "shape": ["detections"]}}
        if masks:
            out["masks"] = {"dtype": "float32", "shape": ["detections", 1, int(height), int(width)]}
        return out
    raise ConfigError(f"no export outputs for task {task!r}; the tasks that export are {', '.join(EXPORT_TASKS)}")


def export_card(
    *,
    fmt: str,
    task: str,
    class_names: Sequence[str],
    height: int,
    width: int,
    source: Mapping[str, Any],
    opset: int | None = None,
    scale: int = 1,
    resize: str = "bilinear",
    parity: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    dynamic_batch: bool = True,
) -> dict[str, Any]:
    """The card of one exported model (see the module docstring); ``parity`` is filled in after the check.

    ``resize`` tells a caller how the torch predictor brings an image to the input size: ``"bilinear"`` (stretched,
    antialiased: classify) or ``"tile"`` (cut into input-sized tiles: segment, restore). ``details`` holds what the
    task adds (a segmenter's ``binary`` and ``mask_coding``, a restorer's ``mode``, ``scale`` and ``restore_task``,
    a detector's baked-in thresholds). ``dynamic_batch`` False (detectors): the input is ``[1, H, W, 3]``, one image
    per call.
    """
    from pixlearn import __version__

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; the formats are {', '.join(FORMATS)}")
    return {
        "format": fmt,
        "task": task,
        "class_names": [str(c) for c in class_names],
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "height": int(height), "width": int(width),
                  "channels": 3, "dynamic_batch": bool(dynamic_batch), "resize": resize},
        "outputs": output_specs(task, num_classes=len(class_names), height=height, width=width, scale=scale,
                                masks=bool((details or {}).get("masks"))),
        "source": dict(source),
        "opset": opset,
        "parity": dict(parity) if parity is not None else None,
        "int8": None,
        "details": dict(details or {}),
        "pixlearn_version": __version__,
    }


def write_card(folder: str | os.PathLike[str], card: Mapping[str, Any], *, name: str = CARD_NAME) -> Path:
    """Write ``card`` as ``folder/model.json`` (atomically: a reader never sees half a card)."""
    from pixlearn.io.atomic import atomic_write_text

    return atomic_write_text(Path(folder) / name, json.dumps(card, indent=2) + "\n")


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The card of an exported model: ``path`` is its folder, its ``model.json`` or its model file.

    Raises
    ------
    ConfigError
        No card there, unreadable JSON, or a card without the keys every card has.
    """
    p = Path(path)
    card_path = p / CARD_NAME if p.is_dir() else (p if p.suffix == ".json" else p.with_name(CARD_NAME))
    if not card_path.is_file():
        raise ConfigError(f"{p}: no {CARD_NAME} beside it; pixlearn export RUN --format onnx writes the model with its card")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{card_path}: unreadable model card ({exc}); export the run again") from None
    missing = [k for k in _REQUIRED if not isinstance(card, dict) or k not in card]
    if missing:
        raise ConfigError(f"{card_path}: not a pixlearn export card (missing {', '.join(missing)}); export the run again")
    return card


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_onnx_export(folder: str | os.PathLike[str], *, purpose: str) -> dict[str, Any]:
    """The card of the ONNX export in ``folder`` (``model.onnx`` there, its card of format ``onnx``): where INT8
    quantisation and the Triton repository start. ``purpose`` (e.g. "INT8 quantisation") names the step in the errors.

    Raises
    ------
    ConfigError
        No ``model.onnx`` in ``folder``, or a card of another format; the message names the export command.
    """
    folder = Path(folder)
    if not (folder / MODEL_FILES["onnx"]).is_file():
        raise ConfigError(f"{folder}: no {MODEL_FILES['onnx']} there; {purpose} starts from an ONNX export: write one "
                          "with `pixlearn export RUN --format onnx -o DIR` and give that folder")
    card = read_card(folder)
    if card.get("format") != "onnx":
        raise ConfigError(f"{folder / CARD_NAME}: format is {card.get('format')!r}, expected 'onnx'; {purpose} starts "
                          "from an ONNX export (`pixlearn export RUN --format onnx`)")
    return card
