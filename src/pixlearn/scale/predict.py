"""``pixlearn predict --engine ray``: a run's or an exported model's rows and files, computed by model actors on Ray Data.

The driver expands the inputs, names every output file (the local path's names), and streams ``(index, path)``
rows through ``map_batches`` into :class:`ModelActor` s: each loads the model ONCE, then runs the local path's own
file function (:func:`pixlearn.tasks.classify.predict.predict_files`, the segmenter's ``predict_segment_files``, the
restorer's ``restore_files``, or their onnxruntime twins in :mod:`pixlearn.export.runtime`; a detector's
:func:`pixlearn.tasks.detect.predict.detect_file`) on each batch of paths. Rows come back as JSON text
(exact floats, no Arrow re-typing), are put back in input order, and the CLI emits them as it emits local rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.scale.cluster import check_address, check_workers, quiet_ray_data, ray_cluster

__all__ = ["RAY_KINDS", "ModelActor", "PredictJob", "iter_ray_rows", "model_kind", "plan_predict", "ray_predict"]

#: What ``--engine ray`` serves: (source, task) pairs; "run" is a training run folder, "onnx" an exported model.
RAY_KINDS = (("run", "classify"), ("run", "segment"), ("run", "restore"), ("run", "detect"), ("onnx", "classify"),
             ("onnx", "segment"), ("onnx", "restore"), ("onnx", "detect"))


@dataclass
class PredictJob:
    """What every actor needs (model, task, options) and the driver's rows: ``(index, path, output file or "")``, plus
    ``image_id`` for a detector."""

    model: str
    source: str  # "run" or "onnx"
    task: str
    options: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def model_kind(run: Path) -> tuple[str, str]:
    """``(source, task)``: source "onnx" for an exported model, else "run"; task from the card (a run that is not
    a registry task's is "classic")."""
    from pixlearn.export.runtime import is_onnx_model, read_onnx_card

    if is_onnx_model(run):
        card, _ = read_onnx_card(run)
        return "onnx", str(card.get("task"))
    from pixlearn.tasks.registry import task_for_run

    spec = task_for_run(run)
    return "run", spec.name if spec is not None else "classic"


def plan_predict(run: str | os.PathLike[str], images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                 top_k: int = 1, out: str | os.PathLike[str] | None = None, overlay: bool = False,
                 batch_size: int = 64, score: float = 0.25, iou: float = 0.5, max_detections: int = 100,
                 tile: int | None = None, overlap: float = 0.2, fmt: str = "json") -> PredictJob:
    """Check the model kind and options and name every file the local path would write (before Ray starts).

    Raises
    ------
    ConfigError
        A kind of run ``--engine ray`` does not serve yet (the message lists those it does), a bad ``top_k``,
        ``out`` naming one file for several images, or (a detector) ``score``, ``iou``, ``max_detections``, ``tile``
        or ``fmt`` out of range, or outside what an exported graph bakes in: the local path's own checks.
    """
    from pixlearn.io import expand_sources

    path = Path(run)
    source, task = model_kind(path)
    if (source, task) not in RAY_KINDS:
        what = "an exported " + task + " model" if source == "onnx" else "a " + task + " run"
        served = ", ".join(f"{t} {'runs' if s == 'run' else 'exported models (ONNX)'}" for s, t in RAY_KINDS)
        raise ConfigError(f"{path}: is {what}, which --engine ray does not serve yet; it serves {served}. "
                          "Predict it with --engine local")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 4096:
        raise ConfigError(f"batch_size must be an integer in 1..4096, got {batch_size!r}; pass --batch N")
    found = expand_sources(images)
    paths = [p for p, _ in found]
    targets = [""] * len(paths)
    if task == "restore":  # the local path's names: OUT itself for one image, else OUT/<relative path>.png
        if out is None:
            raise ConfigError("a restoration model writes images: give -o out.png for one image, or -o DIR")
        from pixlearn.tasks.restore.files import output_paths

        targets = [str(t) for t in output_paths(found, out)]
    if task == "segment" and out is not None:  # the local path's names
        from pixlearn.tasks.segment.render import mask_targets

        targets = [str(t) for t in mask_targets(paths, Path(out))]
    options: dict[str, Any] = {"top_k": top_k, "overlay": bool(overlay), "batch_size": batch_size}
    image_ids: list[int] = []
    if task == "detect":  # the local path's checks, image ids and drawn-file names
        options.update(_detect_options(path, source, score=score, iou=iou, max_detections=max_detections, tile=tile,
                                       overlap=overlap, fmt=fmt))
        from pixlearn.tasks.detect.predict import detect_targets

        planned = detect_targets(paths, out)
        image_ids = [i for i, _ in planned]
        targets = ["" if d is None else str(d) for _, d in planned]
    rows = [{"index": i, "path": str(p), "target": t} for i, (p, t) in enumerate(zip(paths, targets))]
    for row, image_id in zip(rows, image_ids):
        row["image_id"] = image_id
    return PredictJob(model=str(path), source=source, task=task, options=options, rows=rows)


def _detect_options(path: Path, source: str, *, score: float, iou: float, max_detections: int, tile: int | None,
                    overlap: float, fmt: str) -> dict[str, Any]:
    """A detector's options, checked on the driver as the local path checks them (an exported graph's baked-in
    score floor, NMS IoU and detection cap by its own check, on no image)."""
    from pixlearn.tasks.detect.tiles import check_detect_options, check_tiling

    score, iou, max_detections = check_detect_options(score, iou, max_detections)
    if fmt not in ("json", "csv"):
        raise ConfigError(f"fmt must be 'json' or 'csv', got {fmt!r}")
    if tile is not None:
        tile, overlap = check_tiling(tile, overlap)
    if source == "onnx":
        from pixlearn.export.runtime import load_onnx_model

        load_onnx_model(path, threads=1).predict([], score=score, iou=iou, max_detections=max_detections)
    return {"score": score, "iou": iou, "max_detections": max_detections, "tile": tile, "overlap": overlap, "fmt": fmt}


class ModelActor:
    """One Ray actor: loads the model once (one CPU thread), then predicts batches of ``(index, path, target)`` rows.

    Each output row carries ``pid`` and ``loads`` (models this process loaded so far): a check that every actor
    loaded its model once.
    """

    loads = 0  # per process: one actor per worker process

    def __init__(self, job: PredictJob) -> None:
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:  # pragma: no cover - opencv is a dependency
            pass
        self.job = job
        self.category_ids: tuple[int, ...] = ()
        if job.source == "onnx":
            from pixlearn.export.runtime import load_onnx_model

            self.model: Any = load_onnx_model(job.model, threads=1)
        else:
            import torch

            torch.set_num_threads(1)
            if job.task == "classify":
                from pixlearn.tasks.classify.predict import load_classifier

                self.model = load_classifier(job.model, device="cpu")
            elif job.task == "restore":
                from pixlearn.tasks.restore.predict import load_restorer

                self.model = load_restorer(job.model, device="cpu")
            elif job.task == "detect":
                from pixlearn.tasks.detect.predict import load_detector

                self.model = load_detector(job.model, device="cpu")
            else:
                from pixlearn.tasks.segment.predict import load_segmenter

                self.model = load_segmenter(job.model, device="cpu")
        if job.task == "detect":  # the local path's tiling and category ids, for ONNX and torch alike
            from pixlearn.tasks.detect.predict import prepare_detector

            self.model, self.category_ids = prepare_detector(self.model, tile=job.options["tile"], overlap=job.options["overlap"])
        type(self).loads += 1

    def predict(self, paths: list[str], targets: list[str], image_ids: list[int] | None = None) -> list[dict[str, Any]]:
        """The local path's rows for ``paths`` (and its files at ``targets``; a detector's rows carry ``image_ids``)."""
        opts = self.job.options
        if self.job.task == "detect":
            from pixlearn.tasks.detect.predict import detect_file

            return [detect_file(self.model, p, i, t or None, category_ids=self.category_ids, score=opts["score"],
                                iou=opts["iou"], max_detections=opts["max_detections"])
                    for p, t, i in zip(paths, targets, image_ids or [])]
        if self.job.source == "onnx":
            from pixlearn.export import runtime

            if self.job.task == "classify":
                return runtime.predict_files(self.model, paths, top_k=opts["top_k"], batch_size=opts["batch_size"], progress=False)
            if self.job.task == "restore":
                return [row for p, t in zip(paths, targets) for row in runtime.restore_files(self.model, [p], out=t, progress=False)]
            return [row for p, t in zip(paths, targets)
                    for row in runtime.predict_segment_files(self.model, [p], out=t or None, overlay=opts["overlay"], progress=False)]
        if self.job.task == "classify":
            from pixlearn.tasks.classify.predict import predict_files

            return predict_files(self.model, paths, top_k=opts["top_k"], batch_size=opts["batch_size"], progress=False)
        if self.job.task == "restore":
            from pixlearn.tasks.restore.predict import restore_files

            return [row for p, t in zip(paths, targets) for row in restore_files(self.model, [p], out=t, progress=False)]
        from pixlearn.tasks.segment.predict import predict_segment_files

        return [row for p, t in zip(paths, targets)
                for row in predict_segment_files(self.model, [p], out=t or None, overlay=opts["overlay"], progress=False)]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        index = [int(i) for i in batch["index"]]
        paths = [str(p) for p in batch["path"]]
        image_ids = [int(i) for i in batch["image_id"]] if "image_id" in batch else None
        rows = self.predict(paths, [str(t) for t in batch["target"]], image_ids)
        return {"index": index, "row": [json.dumps(r) for r in rows], "pid": [os.getpid()] * len(index),
                "loads": [type(self).loads] * len(index)}


def iter_ray_rows(job: PredictJob, *, workers: int = 2, batch_size: int | None = None) -> Iterator[dict[str, Any]]:
    """Stream ``{"index", "row", "pid", "loads"}`` back from the actors as they finish (in no set order); Ray must
    be initialised (:func:`pixlearn.scale.ray_cluster`)."""
    import ray

    check_workers(workers)
    if not job.rows:
        return
    size = batch_size or (job.options["batch_size"] if job.task == "classify" else 4)  # segment/restore/detect: whole images
    blocks = max(1, min(len(job.rows), workers * 4, (len(job.rows) + size - 1) // size))
    ds = ray.data.from_items(job.rows, override_num_blocks=blocks)
    actors = min(workers, (len(job.rows) + size - 1) // size)  # no actor that would get no batch
    ds = ds.map_batches(ModelActor, fn_constructor_kwargs={"job": PredictJob(job.model, job.source, job.task, dict(job.options))},
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, batch_size=size, batch_format="numpy")
    with quiet_ray_data():
        for r in ds.iter_rows():
            yield {"index": int(r["index"]), "row": json.loads(str(r["row"])), "pid": int(r["pid"]), "loads": int(r["loads"])}


def ray_predict(
    run: str | os.PathLike[str],
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 64,
    top_k: int = 1,
    out: str | os.PathLike[str] | None = None,
    overlay: bool = False,
    score: float = 0.25,
    iou: float = 0.5,
    max_detections: int = 100,
    tile: int | None = None,
    overlap: float = 0.2,
    fmt: str = "json",
    progress: bool | None = None,
    **task_options: Any,
) -> list[dict[str, Any]]:
    """``pixlearn predict RUN IMAGES --engine ray``: the local path's rows (and files under ``out``) from Ray actors.

    Parameters
    ----------
    run : path
        A classify, segment, restore or detect run folder, or an exported ONNX model of one (what :func:`plan_predict`
        accepts).
    images : path, glob, or a list of them
        Files, folders (recursively) and globs, expanded here on the driver.
    workers : int, default 2
        Model actors, 1..64; each asks Ray for 1 CPU and runs one thread. Without ``address`` a local
        cluster of that many CPUs is started (and stopped at the end).
    address : str, optional
        ``ray://HOST:PORT``, ``HOST:PORT`` or ``auto``: an existing cluster. ``out`` must then be a path every
        node sees (a shared filesystem): the actors write the masks and restored images.
    batch_size : int, default 64
        Images per model call (classify).
    score, iou, max_detections, tile, overlap, fmt
        Detectors: :func:`pixlearn.tasks.detect.predict.predict_detect_files`'s options. With ``out`` a folder, the
        driver writes ``detections.json`` (or ``.csv``) there from the rows, as the local path does.
    progress : bool, optional
        Count of finished images on stderr (default: when stderr is a terminal).

    Returns
    -------
    list of dict
        The rows of the local path, in input order; unreadable files have their error in their row.

    Raises
    ------
    ConfigError
        Bad ``workers``/``address``/options, or a run kind not served on Ray yet.
    RayNotInstalledError, RayConnectionError
        No Ray (``pip install 'pixlearn[ray]'``), or no cluster at ``address``.
    """
    if task_options:
        raise ConfigError(f"--engine ray takes no options {sorted(task_options)} for these runs; drop them or use --engine local")
    check_workers(workers)
    check_address(address)
    job = plan_predict(run, images, top_k=top_k, out=out, overlay=overlay, batch_size=batch_size, score=score, iou=iou,
                       max_detections=max_detections, tile=tile, overlap=overlap, fmt=fmt)
    if not job.rows:
        return _detect_results(job, [], out)
    from pixlearn.engine.progress import progress_bar

    results: list[dict[str, Any] | None] = [None] * len(job.rows)
    with ray_cluster(address, workers):
        bar, task = progress_bar(progress, len(job.rows), "predicting on Ray")
        with bar:
            for r in iter_ray_rows(job, workers=workers):
                results[r["index"]] = r["row"]
                bar.advance(task)
    missing = [job.rows[i]["path"] for i, r in enumerate(results) if r is None]
    if missing:  # pragma: no cover - Ray returns every row or raises
        raise ConfigError(f"Ray returned no row for {len(missing)} file(s), e.g. {missing[0]}")
    return _detect_results(job, [r for r in results if r is not None], out)


def _detect_results(job: PredictJob, rows: list[dict[str, Any]], out: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """``rows``, after writing a detector's results file into the ``out`` folder, as the local path does."""
    if job.task == "detect" and out is not None:
        from pixlearn.io import WRITE_FORMATS
        from pixlearn.tasks.detect.predict import RESULTS_NAME, write_results

        if Path(out).suffix.lower() not in WRITE_FORMATS:
            fmt = "csv" if job.options["fmt"] == "csv" else "json"
            write_results(rows, Path(out) / f"{RESULTS_NAME}.{fmt}", fmt=fmt)
    return rows
