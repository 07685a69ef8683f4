"""The COCO YOLOX-Nano: 80 everyday object classes out of the box, no training, through onnxruntime.

:func:`load_yolox` finds ``yolox_nano_coco80.onnx`` in the local weights folders (``$PIXLEARN_WEIGHTS``, then
``<cache>/weights``, the folders the ImageNet labeller searches) or takes a path, checks that the file is a YOLOX
detector (one ``N x 3 x H x W`` image input, one ``1 x A x 85`` output whose ``A`` rows are the 8/16/32-stride grid
cells) and returns a :class:`YoloxDetector`, a :class:`~pixlearn.tasks.detect.detections.Detector`.

Preprocessing and decoding are those of the YOLOX demo (``demo/ONNXRuntime/onnx_inference.py``):

* letterbox: resize by ``r = min(H / h, W / w)`` (bilinear), paste top-left on a canvas of grey 114, BGR channel
  order, float 0-255 (no normalisation);
* decode: for each stride ``s`` and grid cell ``(gx, gy)``, centre ``((dx + gx) s, (dy + gy) s)``, size
  ``(exp(tw) s, exp(th) s)``; score = objectness x class probability of the best class;
* class-wise NMS, then boxes divided by ``r`` and clipped to the caller's image.

onnxruntime runs the session with as many intra-op threads as this process may use (its CPU affinity), unless
``threads`` says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError, WeightsNotFoundError
from pixlearn.tasks.detect.detections import Detections
from pixlearn.tasks.detect.tiles import check_detect_options

__all__ = ["YOLOX_FILE", "COCO_CLASSES", "COCO_CATEGORY_IDS", "STRIDES", "YoloxDetector", "YoloxUnavailable",
           "load_yolox", "find_yolox", "yolox_search_dirs", "usable_cores", "nms_classwise"]

#: The file name looked for in the weights folders.
YOLOX_FILE = "yolox_nano_coco80.onnx"
#: The strides of YOLOX's three output levels.
STRIDES = (8, 16, 32)
#: The 80 COCO object classes, in the order of the detector's class columns.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
#: COCO's own category ids of those classes (1..90 with gaps), for COCO results files.
COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)
_PAD = 114


class YoloxUnavailable(WeightsNotFoundError):
    """The YOLOX ONNX file is in none of the weights folders."""


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def yolox_search_dirs() -> list[Path]:
    """The folders :func:`find_yolox` looks in: :func:`pixlearn._core.paths.weights_dirs` (``$PIXLEARN_WEIGHTS``,
    then ``<cache>/weights``)."""
    from pixlearn._core.paths import weights_dirs

    return weights_dirs()


def find_yolox(dirs: Sequence[Path] | None = None) -> Path | None:
    """The first ``yolox_nano_coco80.onnx`` in ``dirs`` (default :func:`yolox_search_dirs`), or None.

    >>> find_yolox([Path("/no/such/folder")]) is None
    True
    """
    for folder in yolox_search_dirs() if dirs is None else dirs:
        path = Path(folder) / YOLOX_FILE
        if path.is_file():
            return path
    return None


def _unavailable(dirs: Sequence[Path]) -> YoloxUnavailable:
    folders = ", ".join(str(d) for d in dirs) or "(none)"
    first = dirs[0] if dirs else Path("~/.cache/pixlearn/weights")
    return YoloxUnavailable(
        f"the COCO detector's weights file {YOLOX_FILE} is in none of the weights folders searched ({folders}); "
        f"give its path with --weights FILE (load_yolox(path) in Python), set PIXLEARN_WEIGHTS to the folder that "
        f"holds it, or copy it into {first}")


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    grids, strides = [], []
    for s in STRIDES:
        hs, ws = size[0] // s, size[1] // s
        xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((hs * ws, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def nms_classwise(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS within each class, best score first (a box is dropped when its IoU with a kept box
    of its class exceeds ``iou``, as :func:`torchvision.ops.batched_nms` does).

    >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    >>> nms_classwise(b, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5).tolist()
    [0, 2]
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    offset = (labels.astype(np.float64) * (float(np.abs(boxes).max()) + 1.0))[:, None]
    b = boxes.astype(np.float64) + offset
    x1, y1, x2, y2 = b.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[overlap <= iou]
    return np.asarray(keep, np.int64)


def _as_rgb(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ShapeError(f"detectors take RGB uint8 (H, W, 3) images, got {arr.dtype} {arr.shape}; "
                         "decode files with pixlearn.io.read_image")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"image is empty (shape {arr.shape})")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return arr[..., :3]


class YoloxDetector:
    """A YOLOX ONNX detector (80 COCO classes by default) as a :class:`~pixlearn.tasks.detect.detections.Detector`.

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    class_names : sequence of str, optional
        The classes of the output's class columns (default the 80 COCO names; the file must then have 85 columns).
    threads : int, optional
        onnxruntime intra-op threads (default: :func:`usable_cores`).
    name : str, optional
        What the detector calls itself (default the file's stem).

    Raises
    ------
    ConfigError
        The file is not an ONNX model onnxruntime can open, or not a YOLOX detector (the message shows the input and
        output shapes found and those expected).
    """

    def __init__(self, path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None,
                 threads: int | None = None, name: str | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise YoloxUnavailable(f"{self.path}: no such file; give the path of {YOLOX_FILE} (--weights FILE)")
        self.class_names = tuple(COCO_CLASSES if class_names is None else (str(c) for c in class_names))
        self.category_ids = COCO_CATEGORY_IDS if class_names is None else tuple(range(1, len(self.class_names) + 1))
        self.name = str(name or self.path.stem)
        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) if threads else usable_cores()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ConfigError(f"{self.path}: onnxruntime cannot open this file as an ONNX model "
                              f"({type(exc).__name__}: {str(exc)[:200]}); give the YOLOX detector {YOLOX_FILE}") from None
        self.threads = int(opts.intra_op_num_threads)
        self.input_name, self.size = self._check_io()
        self.grids, self.strides = _grid(self.size)

    def _check_io(self) -> tuple[str, tuple[int, int]]:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shapes = (f"inputs {[(i.name, i.shape) for i in inputs]}, outputs {[(o.name, o.shape) for o in outputs]}")
        columns = 5 + len(self.class_names)
        expected = (f"expected one image input 1 x 3 x H x W (H and W fixed multiples of 32, e.g. 'images' 1 x 3 x 416 x 416) "
                    f"and one output 1 x A x {columns} (A = the grid cells of strides 8, 16, 32, e.g. 3549 for 416 px)")
        bad = ConfigError(f"{self.path}: not a YOLOX detector with {len(self.class_names)} classes: {shapes}; {expected}")
        if len(inputs) != 1 or len(outputs) != 1:
            raise bad
        ishape, oshape = list(inputs[0].shape), list(outputs[0].shape)
        if len(ishape) != 4 or ishape[1] != 3 or not all(isinstance(v, int) and v > 0 and v % 32 == 0 for v in ishape[2:]):
            raise bad
        if "float" not in str(inputs[0].type):
            raise bad
        size = (int(ishape[2]), int(ishape[3]))
        cells = sum((size[0] // s) * (size[1] // s) for s in STRIDES)
        if len(oshape) != 3 or oshape[2] != columns or (isinstance(oshape[1], int) and oshape[1] != cells):
            raise bad
        return str(inputs[0].name), size

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The network input of one RGB image: (1, 3, H, W) float32 BGR 0-255 on a 114-grey canvas, and the ratio."""
        import cv2

        rgb = _as_rgb(image)
        h, w = rgb.shape[:2]
        r = min(self.size[0] / h, self.size[1] / w)
        nw, nh = max(1, int(w * r)), max(1, int(h * r))
        resized = cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (nw, nh), interpolation=cv2.INTER_LINEAR)
        canvas = np.full((*self.size, 3), _PAD, np.uint8)
        canvas[:nh, :nw] = resized.reshape(nh, nw, 3)
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), r

    def decode(self, raw: np.ndarray, ratio: float, image_hw: tuple[int, int], *, score: float, iou: float,
               max_detections: int) -> Detections:
        """The :class:`Detections` of one raw ``(A, 5 + K)`` output on an image of ``image_hw`` letterboxed by ``ratio``."""
        cls = raw[:, 5:] * raw[:, 4:5]
        labels = cls.argmax(1)
        scores = cls[np.arange(len(cls)), labels]
        keep = np.flatnonzero(scores >= score) if score > 0 else np.flatnonzero(scores > 0)
        xy = (raw[keep, :2] + self.grids[keep]) * self.strides[keep]
        wh = np.exp(np.minimum(raw[keep, 2:4], 20.0)) * self.strides[keep]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / ratio
        h, w = image_hw
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        scores, labels = scores[keep], labels[keep]
        idx = nms_classwise(boxes, scores, labels, iou)[:max_detections]
        return Detections(boxes[idx], scores[idx], labels[idx], self.class_names)

    def predict(self, images: Sequence[np.ndarray], *, score: float = 0.25, iou: float = 0.5,
                max_detections: int = 100) -> list[Detections]:
        """Detect COCO objects in RGB uint8 (H, W, 3) images (grey and RGBA are accepted too).

        ``score`` in [0, 1] (objectness x class probability), ``iou`` in (0, 1] (class-wise NMS),
        ``max_detections`` in [1, 1000]; boxes are xyxy on each image's own pixels.
        """
        score, iou, max_detections = check_detect_options(score, iou, max_detections)
        out = []
        for image in images:
            blob, r = self.letterbox(image)
            raw = self.session.run(None, {self.input_name: blob})[0]
            raw = np.asarray(raw, np.float32).reshape(-1, raw.shape[-1])
            out.append(self.decode(raw, r, np.asarray(image).shape[:2], score=score, iou=iou, max_detections=max_detections))
        return out


def load_yolox(path: str | os.PathLike[str] | None = None, *, threads: int | None = None) -> YoloxDetector:
    """The COCO YOLOX-Nano detector from ``path``, else from the first weights folder holding ``yolox_nano_coco80.onnx``.

    Raises
    ------
    YoloxUnavailable
        No path given and the file is in none of the weights folders: the message names the file, every folder
        searched, and the fixes (``--weights FILE``, ``PIXLEARN_WEIGHTS``, copying the file into the cache folder).
    ConfigError
        The file is not a YOLOX detector.

    """
    if path is None:
        dirs = yolox_search_dirs()
        found = find_yolox(dirs)
        if found is None:
            raise _unavailable(dirs)
        path = found
    return YoloxDetector(path, threads=threads)
