"""Detection over image files: a trained run (or the COCO YOLOX-Nano) on files, folders and globs; COCO results JSON,
CSV and drawn images.

* :func:`load_detector` -- a ``pixlearn train detect`` run folder, a YOLOX ``.onnx`` file, or None (the COCO
  YOLOX-Nano from the local weights folders), as a :class:`~pixlearn.tasks.detect.detections.Detector`.
* :func:`is_detect_run` -- whether a folder is a detection run (its ``weights/model.json`` says ``task: detect``).
* :func:`predict_detect_files` -- one row per image: its detections (box xyxy, score, class, COCO category id, mask
  RLE), or the reason it could not be read (never fatal); with ``out`` the drawn images and a results file.
  Its pieces serve ``--engine ray`` too: :func:`detect_targets` (image ids and drawn-file names, on the driver),
  :func:`prepare_detector` (once per actor) and :func:`detect_file` (each image).
* :func:`coco_results`, :func:`detection_table` -- the rows as COCO results (``bbox`` xywh) and as one flat row per
  detection (CSV, tables).

A run trained on tiles (its model card records ``tile``) is predicted on windows of that size unless ``tile`` says
otherwise (:class:`~pixlearn.tasks.detect.tiles.TiledDetector`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.detect.detections import Detections, Detector
from pixlearn.tasks.detect.tiles import check_detect_options, check_tiling

__all__ = ["load_detector", "is_detect_run", "predict_detect_files", "detect_targets", "prepare_detector", "detect_file", "coco_results", "detection_table", "write_results",
           "TABLE_COLUMNS", "RESULTS_NAME"]

#: The columns of :func:`detection_table` (CSV and table output: one row per detection).
TABLE_COLUMNS = ("path", "image_id", "class_name", "label", "category_id", "score", "x0", "y0", "x1", "y1", "error")
#: The results file written under ``out`` (``.json`` COCO results or ``.csv``).
RESULTS_NAME = "detections"


def is_detect_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a detection run folder (its ``weights/model.json`` names task ``detect``).

    >>> import tempfile
    >>> is_detect_run(tempfile.mkdtemp())
    False
    """
    from pixlearn.engine.run_card import card_task

    return card_task(Path(path)) == "detect"


def _card(path: Path) -> dict[str, Any]:
    wdir = path / "weights" if (path / "weights").is_dir() else path
    try:
        card = json.loads((wdir / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def load_detector(path: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> Detector:
    """The detector of a detection run folder, of a YOLOX ``.onnx`` file (or a folder holding
    ``yolox_nano_coco80.onnx``), or (``None``) the COCO YOLOX-Nano found in the local weights folders.

    A run's :class:`Detector` carries ``category_ids`` (the dataset's own category id of each class when the run
    recorded them, else 1..K) and ``run_tile`` (the training tile, or None).

    Raises
    ------
    ConfigError
        Not a detection run nor a YOLOX file (the message says which was expected and the command that makes one).
    WeightsNotFoundError
        ``None`` and no ``yolox_nano_coco80.onnx`` in the weights folders.
    """
    from pixlearn.tasks.detect.yolox import load_yolox

    if path is None:
        return load_yolox()
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return load_yolox(p)
    if not p.exists():
        raise ConfigError(f"{p}: no such run folder or .onnx file; give a `pixlearn train detect` run folder or a YOLOX .onnx file")
    if not is_detect_run(p):
        from pixlearn.tasks.detect.yolox import YOLOX_FILE

        if p.is_dir() and (p / YOLOX_FILE).is_file():  # a weights folder holding the COCO detector
            return load_yolox(p / YOLOX_FILE)
        raise ConfigError(f"{p}: not a detection run folder (its weights/model.json does not say task: detect); give a "
                          "`pixlearn train detect` run folder, or a YOLOX .onnx file")
    from pixlearn.tasks.detect.model import load_run_detector

    run = p.parent if p.name == "weights" else p
    detector = load_run_detector(run, device=device)
    card = _card(run)
    ids = card.get("category_ids")
    names = detector.class_names
    detector.category_ids = (tuple(int(i) for i in ids) if isinstance(ids, list) and len(ids) == len(names)
                             else tuple(range(1, len(names) + 1)))
    tile = card.get("tile")
    detector.run_tile = (int(tile), float(card.get("tile_overlap") or 0.2)) if tile else None
    return detector


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _detection_rows(det: Detections, category_ids: Sequence[int]) -> list[dict[str, Any]]:
    rows = det.to_rows()
    for i, row in enumerate(rows):
        row["category_id"] = int(category_ids[row["label"]])
        if det.masks is not None:
            row["segmentation"] = _rle(det.masks[i])
    return rows


def _drawn_path(target: Path, src: Path, used: set[str]) -> Path:
    from pixlearn.io import WRITE_FORMATS, unique_stem

    suffix = src.suffix.lower() if src.suffix.lower() in WRITE_FORMATS else ".png"
    return target / f"{unique_stem(src.stem, used)}{suffix}"


def detect_targets(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None) -> list[tuple[int, Path | None]]:
    """The image id and drawn-image file of each input, in input order: what :func:`predict_detect_files` and
    ``--engine ray`` (whose driver names every file) both use.

    Image ids are 1, 2, ... in input order. Without ``out`` nothing is drawn (None). ``out`` with an image extension
    is the drawn file of the one image; else a folder where each input gets ``<stem><ext>`` (``.png`` for other
    extensions) and inputs that share a stem get ``a.png``, ``a-2.png``... in input order. Every input is named,
    readable or not, so an unreadable file never shifts the names of the files after it.

    Raises
    ------
    ConfigError
        ``out`` names one image file but there are several images.

    >>> [(i, t.name) for i, t in detect_targets(["x/a.png", "y/a.png", "b.tif"], "out")]
    [(1, 'a.png'), (2, 'a-2.png'), (3, 'b.tif')]
    """
    from pixlearn.io import WRITE_FORMATS

    target = Path(out) if out is not None else None
    if target is None:
        return [(i, None) for i in range(1, len(paths) + 1)]
    if target.suffix.lower() in WRITE_FORMATS:
        if len(paths) > 1:
            raise ConfigError(f"--out {target} names one image file but there are {len(paths)} images; give a folder")
        return [(1, target)] if paths else []
    used: set[str] = set()
    return [(i, _drawn_path(target, Path(p), used)) for i, p in enumerate(paths, start=1)]


def prepare_detector(run: Detector | str | os.PathLike[str] | None, *, tile: int | None = None, overlap: float = 0.2,
                     device: str = "cpu") -> tuple[Any, tuple[int, ...]]:
    """The detector :func:`predict_detect_files` runs (``run`` loaded by :func:`load_detector` unless it is one, on
    ``tile`` windows, else on the run's training tile, if any) and its category ids (1..K when it names none)."""
    from pixlearn.tasks.detect.tiles import TiledDetector

    detector: Any = run if run is not None and hasattr(run, "predict") else load_detector(run, device=device)
    category_ids = tuple(getattr(detector, "category_ids", None) or range(1, len(detector.class_names) + 1))
    run_tile = getattr(detector, "run_tile", None)
    if tile is not None:
        detector = TiledDetector(detector, tile=tile, overlap=overlap)
    elif run_tile:
        detector = TiledDetector(detector, tile=run_tile[0], overlap=run_tile[1])
    return detector, category_ids


def detect_file(detector: Any, path: str | os.PathLike[str], image_id: int, drawn: str | os.PathLike[str] | None, *,
                category_ids: Sequence[int], score: float, iou: float, max_detections: int) -> dict[str, Any]:
    """One row of :func:`predict_detect_files`: the detections of the image at ``path`` (drawn to ``drawn`` when
    given), or, when it cannot be read, the reason in ``error``. Options are checked by the caller."""
    from pixlearn._core.errors import PixlearnError
    from pixlearn.io import read_image, write_image
    from pixlearn.tasks.detect.draw import draw_detections

    row: dict[str, Any] = {"path": str(path), "image_id": int(image_id), "width": None, "height": None,
                           "detections": [], "count": 0, "drawn": None, "error": None}
    try:
        image = read_image(path)
    except (PixlearnError, OSError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    det = detector.predict([image], score=score, iou=iou, max_detections=max_detections)[0]
    row.update(height=int(image.shape[0]), width=int(image.shape[1]), count=len(det),
               detections=_detection_rows(det, category_ids))
    if drawn:
        row["drawn"] = str(write_image(Path(drawn), draw_detections(image, det)))
    return row


def predict_detect_files(
    run: Detector | str | os.PathLike[str] | None,
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    score: float = 0.25,
    iou: float = 0.5,
    max_detections: int = 100,
    tile: int | None = None,
    overlap: float = 0.2,
    out: str | os.PathLike[str] | None = None,
    fmt: Literal["json", "csv"] = "json",
    device: str = "cpu",
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Detect objects in image files, folders (recursively) and globs.

    Parameters
    ----------
    run : Detector, path or None
        A detector, a ``pixlearn train detect`` run folder, a YOLOX ``.onnx`` file, or None for the COCO YOLOX-Nano
        (see :func:`load_detector`).
    images : path, glob or list of them
    score : float, default 0.25
        Lowest score kept, in [0, 1].
    iou : float, default 0.5
        Class-wise NMS overlap, in (0, 1].
    max_detections : int, default 100
        Most detections per image, in [1, 1000].
    tile : int, optional
        Detect on ``tile`` x ``tile`` windows (64..4096) and on the whole image, merged
        (:class:`~pixlearn.tasks.detect.tiles.TiledDetector`); default: the run's training tile, if any.
    overlap : float, default 0.2
        Window overlap fraction with ``tile``, in [0, 0.9].
    out : path, optional
        A folder: each image drawn with its detections (``<stem>.<ext>``) and the results file
        ``detections.json`` (COCO results) or ``detections.csv`` (``fmt``). With one image, a file name with an
        image extension gets the drawn image alone.
    fmt : {"json", "csv"}
        The results file's format.

    Returns
    -------
    list of dict
        One row per file: ``path``, ``image_id`` (1, 2, ... in input order), ``width``, ``height``, ``detections``
        (``box`` xyxy, ``score``, ``label``, ``class_name``, ``category_id``, and ``segmentation`` RLE for masks),
        ``count``, ``drawn`` (the written image, or None) and ``error`` (why the file could not be read, else None).

    Examples
    --------
    >>> class Nothing:
    ...     class_names, name = ("cat",), "nothing"
    ...     def predict(self, images, *, score=0.25, iou=0.5, max_detections=100):
    ...         return [Detections.empty(self.class_names) for _ in images]
    >>> [(r["error"][:19], r["count"]) for r in predict_detect_files(Nothing(), ["missing.png"])]
    [('ImageNotFoundError:', 0)]
    """
    from pixlearn.engine.progress import progress_bar
    from pixlearn.io import WRITE_FORMATS, expand_sources

    score, iou, max_detections = check_detect_options(score, iou, max_detections)
    if fmt not in ("json", "csv"):
        raise ConfigError(f"fmt must be 'json' or 'csv', got {fmt!r}")
    if tile is not None:
        tile, overlap = check_tiling(tile, overlap)
    paths = [Path(p) for p, _ in expand_sources(images)]
    targets = detect_targets(paths, out)
    detector, category_ids = prepare_detector(run, tile=tile, overlap=overlap, device=device)
    rows: list[dict[str, Any]] = []
    bar, task = progress_bar(progress, len(paths), "detecting")
    with bar:
        for p, (image_id, drawn) in zip(paths, targets):
            rows.append(detect_file(detector, p, image_id, drawn, category_ids=category_ids, score=score, iou=iou,
                                    max_detections=max_detections))
            bar.advance(task)
    if out is not None and Path(out).suffix.lower() not in WRITE_FORMATS:
        write_results(rows, Path(out) / f"{RESULTS_NAME}.{fmt}", fmt=fmt)
    return rows


def coco_results(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`predict_detect_files` as COCO results: one dict per detection with ``image_id``,
    ``category_id``, ``bbox`` ``[x, y, width, height]``, ``score`` (and ``segmentation`` RLE), plus ``file_name`` and
    ``class_name`` for people reading it (pycocotools' ``loadRes`` ignores them).

    >>> rows = [{"path": "a.jpg", "image_id": 1, "detections": [{"box": [1, 2, 11, 22], "score": 0.9, "label": 0,
    ...          "class_name": "cat", "category_id": 17}]}]
    >>> coco_results(rows)
    [{'image_id': 1, 'file_name': 'a.jpg', 'category_id': 17, 'class_name': 'cat', 'bbox': [1.0, 2.0, 10.0, 20.0], 'score': 0.9}]
    """
    out = []
    for row in rows:
        for d in row.get("detections") or []:
            x0, y0, x1, y1 = (float(v) for v in d["box"])
            item = {"image_id": int(row["image_id"]), "file_name": Path(row["path"]).name, "category_id": int(d["category_id"]),
                    "class_name": d["class_name"], "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)], "score": float(d["score"])}
            if "segmentation" in d:
                item["segmentation"] = d["segmentation"]
            out.append(item)
    return out


def detection_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per detection (:data:`TABLE_COLUMNS`); an image without detections, or unreadable, gets one row
    with empty detection columns (and its ``error``)."""
    out = []
    for row in rows:
        base = {"path": row["path"], "image_id": row.get("image_id"), "error": row.get("error")}
        dets = row.get("detections") or []
        if not dets:
            out.append(dict(base))
        for d in dets:
            x0, y0, x1, y1 = d["box"]
            out.append({**base, "class_name": d["class_name"], "label": d["label"], "category_id": d.get("category_id"),
                        "score": d["score"], "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    return out


def write_results(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, fmt: Literal["json", "csv"] = "json") -> Path:
    """Write the rows' COCO results (``json``) or their :func:`detection_table` (``csv``) to ``path``, atomically."""
    import csv
    import io
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        text = json.dumps(coco_results(rows))
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in detection_table(rows):
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in TABLE_COLUMNS})
        text = buf.getvalue()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
