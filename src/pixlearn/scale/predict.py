"""``pixlearn predict --engine ray``: a run's or an exported model's rows and files, computed by model actors on Ray Data.

The driver expands the inputs, names every output file (the local path's names), and streams ``(index, path)``
rows through ``map_batches`` into :class:`ModelActor` s: each loads the model ONCE, then runs the local path's own
file function (:func:`pixlearn.tasks.classify.predict.predict_files`, the segmenter's ``predict_segment_files``, the
restorer's ``restore_files``, or their onnxruntime twins in :mod:`pixlearn.export.runtime`) on each batch of paths. Rows come back as JSON text
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
RAY_KINDS = (("run", "classify"), ("run", "segment"), ("run", "restore"), ("onnx", "classify"), ("onnx", "segment"),
             ("onnx", "restore"))


@dataclass
class PredictJob:
    """What every actor needs (model, task, options) and the driver's rows: ``(index, path, output file or "")``."""

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
                 batch_size: int = 64) -> PredictJob:
    """Check the model kind and options and name every file the local path would write (before Ray starts).

    Raises
    ------
    ConfigError
        A kind of run ``--engine ray`` does not serve yet (the message lists those it does), a bad ``top_k``, or
        ``out`` naming one file for several images.
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
    options = {"top_k": top_k, "overlay": bool(overlay), "batch_size": batch_size}
    rows = [{"index": i, "path": str(p), "target": t} for i, (p, t) in enumerate(zip(paths, targets))]
    return PredictJob(model=str(path), source=source, task=task, options=options, rows=rows)


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
            else:
                from pixlearn.tasks.segment.predict import load_segmenter

                self.model = load_segmenter(job.model, device="cpu")
        type(self).loads += 1

    def predict(self, paths: list[str], targets: list[str]) -> list[dict[str, Any]]:
        """The local path's rows for ``paths`` (and its files at ``targets``)."""
        opts = self.job.options
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
        rows = self.predict(paths, [str(t) for t in batch["target"]])
        return {"index": index, "row": [json.dumps(r) for r in rows], "pid": [os.getpid()] * len(index),
                "loads": [type(self).loads] * len(index)}


def iter_ray_rows(job: PredictJob, *, workers: int = 2, batch_size: int | None = None) -> Iterator[dict[str, Any]]:
    """Stream ``{"index", "row", "pid", "loads"}`` back from the actors as they finish (in no set order); Ray must
    be initialised (:func:`pixlearn.scale.ray_cluster`)."""
    import ray

    check_workers(workers)
    if not job.rows:
        return
    size = batch_size or (job.options["batch_size"] if job.task == "classify" else 4)  # segment/restore: whole images
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
    progress: bool | None = None,
    **task_options: Any,
) -> list[dict[str, Any]]:
    """``pixlearn predict RUN IMAGES --engine ray``: the local path's rows (and files under ``out``) from Ray actors.

    Parameters
    ----------
    run : path
        A classify, segment or restore run folder, or an exported ONNX model of one (what :func:`plan_predict` accepts).
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
    job = plan_predict(run, images, top_k=top_k, out=out, overlay=overlay, batch_size=batch_size)
    if not job.rows:
        return []
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
    return [r for r in results if r is not None]
