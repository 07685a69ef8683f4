"""Tiny YOLOX-shaped ONNX files made inside the tests (no real weights): known objects in known grid cells.

:func:`make_yolox_onnx` exports a small torch module with YOLOX-Nano's I/O (``images`` 1 x 3 x S x S float, ``output``
1 x A x (5 + K), A = the 8/16/32-stride grid cells) whose raw output is fixed by the caller: each :class:`Obj` is
written into the grid cell of its stride that holds its centre, as the YOLOX head would (offset in the cell, log
size over the stride, objectness, class probabilities), so decoding, the letterbox undo and NMS can be checked
against boxes computed by hand. An object may take its objectness from one input pixel (``obj_pixel``), which
checks what the detector feeds the network (channel order, 0-255 values, the grey-114 padding).

Shared by the detection tests and the service tests.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Obj:
    """One object in network pixels: centre ``(cx, cy)``, size ``(w, h)``, class ``label``, score ``obj x cls``.

    ``obj_pixel = (channel, y, x)``: the objectness is the network input's value there / 255 instead of ``obj``.
    """

    cx: float
    cy: float
    w: float
    h: float
    label: int
    obj: float = 0.9
    cls: float = 1.0
    stride: int = 8
    obj_pixel: tuple[int, int, int] | None = None


def cell_index(stride: int, gx: int, gy: int, size: int = 416) -> int:
    """Row of the output that holds grid cell ``(gx, gy)`` of ``stride`` (levels stacked 8, 16, 32, row-major)."""
    start = 0
    for s in STRIDES:
        n = size // s
        if s == stride:
            return start + gy * n + gx
        start += n * n
    raise ValueError(f"stride must be one of {STRIDES}, got {stride}")


def raw_output(objects: list[Obj], *, size: int = 416, num_classes: int = 80) -> np.ndarray:
    """The (A, 5 + K) raw output holding ``objects`` (every other row zero: objectness 0)."""
    cells = sum((size // s) ** 2 for s in STRIDES)
    raw = np.zeros((cells, 5 + num_classes), np.float32)
    for o in objects:
        gx, gy = int(o.cx // o.stride), int(o.cy // o.stride)
        row = cell_index(o.stride, gx, gy, size)
        raw[row, 0] = o.cx / o.stride - gx
        raw[row, 1] = o.cy / o.stride - gy
        raw[row, 2] = math.log(o.w / o.stride)
        raw[row, 3] = math.log(o.h / o.stride)
        raw[row, 4] = 0.0 if o.obj_pixel else o.obj
        raw[row, 5 + o.label] = o.cls
    return raw


def make_yolox_onnx(path: str | Path, objects: list[Obj], *, size: int = 416, num_classes: int = 80,
                    columns: int | None = None, input_name: str = "images", output_name: str = "output") -> Path:
    """Write a YOLOX-shaped ONNX file whose output holds ``objects`` whatever the image (see the module doc).

    ``columns`` overrides the output's width (to make a file that is *not* an 85-column YOLOX detector).
    """
    import torch

    raw = raw_output(objects, size=size, num_classes=num_classes)
    pixel_rows = [(cell_index(o.stride, int(o.cx // o.stride), int(o.cy // o.stride), size), o.obj_pixel)
                  for o in objects if o.obj_pixel]
    if columns is not None:
        raw = raw[:, :columns] if columns <= raw.shape[1] else np.pad(raw, ((0, 0), (0, columns - raw.shape[1])))

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("raw", torch.from_numpy(raw)[None])
            masks = torch.zeros(len(pixel_rows), *raw.shape)
            for k, (row, _) in enumerate(pixel_rows):
                masks[k, row, 4] = 1.0
            self.register_buffer("masks", masks)
            self.pixels = [p for _, p in pixel_rows]

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            out = self.raw + 0.0 * images.mean()
            for k, (c, y, x) in enumerate(self.pixels):
                out = out + self.masks[k][None] * (images[0, c, y, x] / 255.0)
            return out

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Fixed().eval(), torch.zeros(1, 3, size, size), str(path), input_names=[input_name],
                          output_names=[output_name], opset_version=11, dynamo=False)
    return path
