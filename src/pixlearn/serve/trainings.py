"""Training jobs of the service: ``/v1/trainings`` and the :class:`JobManager` that runs them.

A job starts as an uploaded zip. :func:`~pixlearn.serve.archive.extract_archive` checks it and
extracts it into the job's folder ``<storage>/trainings/<id>/data`` (or refuses it with every
reason: 400). The job is then ``queued`` in the ``trainings`` table; a background thread runs at
most ``settings.training_workers`` jobs at a time, each in its own process
(``python -m pixlearn.serve.train_worker <job folder>``, in a new session so that a cancel can
signal its whole process group). The worker trains with :func:`pixlearn.train.train_classifier` (a
detection archive: :func:`pixlearn.tasks.detect.train.train_detector`)
into ``<storage>/models/<name>-<id>`` and writes ``progress.json``; on success the manager
registers the run as a model (``source="training"``), usable at once.

Statuses: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``. After a
restart, queued jobs run; a job still marked running is adopted when its worker process is alive,
resumed from its run's ``checkpoints/last.ckpt`` when it is not, and marked failed with the reason
when it never reached a checkpoint -- never left running forever.

Folder of a job (``<storage>/trainings/<id>/``)::

    data/          the extracted archive (the dataset the worker trains on)
    job.json       what the worker is asked to do (data, run folder, options, resume)
    progress.json  written atomically by the worker: epoch, batch fraction, latest metrics
    result.json    the worker's outcome: {"status": "succeeded"} or {"status": "failed", "error"}
    worker.log     the worker's stdout and stderr
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, File, Form, Header, Request, Response, UploadFile
from sqlalchemy import JSON, Column, Engine, Integer, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from pixlearn._core.errors import ConfigError, PixlearnError, UnknownNameError
from pixlearn.serve.archive import ArchiveError, ArchiveLimits, extract_archive
from pixlearn.serve.db import metadata
from pixlearn.serve.errors import ApiError
from pixlearn.serve.registry import safe_name

__all__ = ["JobManager", "JobNotFound", "KeyConflict", "router", "trainings_table", "training_keys_table", "STATUSES",
           "DEFAULT_OPTIONS", "OPTION_RANGES", "AUTO", "MAX_KEY_LENGTH", "check_options"]

log = logging.getLogger("pixlearn.serve.trainings")

#: Every status a job can have; the last three are final.
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
_FINAL = ("succeeded", "failed", "cancelled")

#: Training options a job accepts, with their defaults. ``minutes`` is the primary knob: a wall-clock budget the
#: training plans to; ``architecture="auto"`` lets the classification task choose (a pretrained backbone when its
#: weights are in a local weights folder, else a small CNN). ``epochs`` (a cap under the budget), ``img_size``,
#: ``batch`` and ``lr`` are advanced options; None means the task's default for the chosen model.
DEFAULT_OPTIONS: dict[str, Any] = {"minutes": 3.0, "architecture": "auto", "epochs": None, "img_size": None, "batch": None,
                                   "lr": None, "task": "auto"}

#: What a job trains: ``auto`` tells by the archive (a COCO / YOLO / Pascal VOC zip trains a detector, a folder per
#: class a classifier), or the task named.
TASKS = ("auto", "classify", "detect")
#: The detection architectures a job may name (pixlearn.tasks.detect.model.ARCHS).
DETECT_ARCHS = ("fcos", "retinanet", "ssdlite", "faster_rcnn", "mask_rcnn")

#: The allowed range (inclusive) of each numeric option.
OPTION_RANGES: dict[str, tuple[float, float]] = {"minutes": (0.5, 120.0), "epochs": (1, 1000), "img_size": (8, 1024),
                                                 "batch": (1, 1024), "lr": (1e-7, 10.0)}
_OPTION_MEANING = {"minutes": "the training's time budget in minutes", "epochs": "the most epochs to train",
                   "img_size": "the square training size in pixels", "batch": "images per batch",
                   "lr": "the learning rate"}
_INTEGER_OPTIONS = ("epochs", "img_size", "batch")

#: The architecture name that lets the classification task choose the model.
AUTO = "auto"

#: Why a job that was running when the server stopped could not continue.
NO_CHECKPOINT = "the server stopped while this job was running, before its first checkpoint; submit it again"
NO_EVALUATION = ("the server stopped while this job was scoring its trained model (every epoch had run), so there is "
                 "no final evaluation to resume from; submit it again")

trainings_table = Table(
    "trainings",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("options", JSON, nullable=False),
    Column("dataset", JSON, nullable=False),
    Column("created", String(40), nullable=False),
    Column("started", String(40)),
    Column("finished", String(40)),
    Column("error", Text),
    Column("model", String(128)),
    Column("pid", Integer),
    Column("attempts", Integer, nullable=False, default=0),
    Column("resume", Integer, nullable=False, default=0),
    Column("job_dir", Text, nullable=False),
    Column("run_dir", Text, nullable=False),
    Column("history", JSON),
    Column("final", JSON),
)

#: Idempotency keys of job submissions: the same key gives the same job, never a second one.
training_keys_table = Table(
    "training_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("job_id", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created", String(40), nullable=False),
)

#: Longest ``Idempotency-Key`` accepted.
MAX_KEY_LENGTH = 200


class JobNotFound(UnknownNameError):
    """No training job has this id (404)."""


class KeyConflict(ConfigError):
    """An ``Idempotency-Key`` already names another submission, or a deleted job (422)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _number(text: str) -> Any:
    if text in ("", None):
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.csv`` (one per finished epoch), numbers parsed; ``[]`` when there is none yet.

    Examples
    --------
    >>> read_history(Path("/no/such/run"))
    []
    """
    try:
        text = (Path(run_dir) / "metrics.csv").read_text(encoding="utf-8")
    except OSError:
        return []
    return [{k: _number(v) for k, v in row.items() if k} for row in csv.DictReader(text.splitlines())]


_FINAL_KEYS = ("split", "n", "accuracy", "balanced_accuracy", "macro_f1", "map", "map50", "map75", "mask_map",
               "mask_map50", "best_epoch", "epochs_run", "stopped_early", "stop_reason", "fit_seconds")


def _final_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The run's held-out scores (``split`` names the split, ``n`` its images) and, when the report judged the
    model against its baselines, that judgement in words (``verdict``)."""
    data = _read_json(Path(run_dir) / "metrics.json")
    if not data:
        return None
    final = {k: data[k] for k in _FINAL_KEYS if k in data}
    verdict = data.get("verdict")
    if isinstance(verdict, dict) and isinstance(verdict.get("sentence"), str):
        final["verdict"] = verdict["sentence"]
        final["beats_baselines"] = verdict.get("beats")
    return final


def _tail(path: Path, n_bytes: int = 4096) -> str:
    """The last non-empty line of a log file (what a failed worker said last)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    lines = [ln.strip() for ln in lines if ln.strip()]
    return lines[-1] if lines else ""


def _alive(pid: int | None, job_dir: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) worker process of this job."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return sys.platform != "linux"
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().split(b"\x00")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    args = [a.decode(errors="replace") for a in cmdline]
    return "pixlearn.serve.train_worker" in args and str(job_dir) in args


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class _Worker:
    """A running worker: our child (``popen``) or one adopted after a restart (``pid`` only)."""

    def __init__(self, job_id: str, job_dir: Path, *, popen: subprocess.Popen[bytes] | None = None, pid: int | None = None,
                 log_file: IO[bytes] | None = None) -> None:
        self.job_id, self.job_dir, self.popen, self.log_file = job_id, job_dir, popen, log_file
        self.pid = popen.pid if popen is not None else int(pid or 0)

    def returncode(self) -> int | None:
        """None while running; the exit code (negative: killed by that signal) once it ended (-1000: unknown)."""
        if self.popen is not None:
            return self.popen.poll()
        return None if _alive(self.pid, self.job_dir) else -1000

    def stop(self, *, grace_s: float) -> None:
        """SIGTERM the worker's process group, SIGKILL it after ``grace_s``, and reap it."""
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self.returncode() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.returncode() is None:
            _signal_group(self.pid, signal.SIGKILL)
            if self.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=10)
        _signal_group(self.pid, signal.SIGKILL)  # stray children of the group (loader workers)
        self.close()

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


class JobManager:
    """Queue, run, watch, cancel and recover training jobs; one row per job in the ``trainings`` table.

    Parameters
    ----------
    settings : ServeSettings
        ``storage``, ``training_workers`` (jobs at a time; 0 queues without running) and the archive
        caps ``max_archive_mb``, ``max_archive_ratio``, ``min_images_per_class``.
    engine : sqlalchemy.Engine
        The service database.
    registry : ModelRegistry
        Where a succeeded job registers its model.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.serve.db import make_engine
    >>> from pixlearn.serve.registry import ModelRegistry
    >>> from pixlearn.serve.settings import ServeSettings
    >>> settings = ServeSettings(storage=tempfile.mkdtemp())
    >>> engine = make_engine("sqlite://"); metadata.create_all(engine)
    >>> jobs = JobManager(settings, engine, ModelRegistry(engine, settings.storage))
    >>> jobs.start(); jobs.list(); jobs.shutdown()
    []
    """

    #: Seconds between two looks at the running workers.
    poll_s = 0.25
    #: Seconds a worker gets to end after SIGTERM before SIGKILL.
    grace_s = 5.0

    def __init__(self, settings: Any, engine: Engine, registry: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.storage = Path(settings.storage)
        self.jobs_dir = self.storage / "trainings"
        self.models_dir = Path(getattr(settings, "models_dir", self.storage / "models"))
        self.max_workers = int(getattr(settings, "training_workers", 1))
        self.limits = ArchiveLimits.from_settings(settings)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._workers: dict[str, _Worker] = {}
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Recover the jobs a previous server left running, then start dispatching queued jobs."""
        metadata.create_all(self.engine, tables=[trainings_table, training_keys_table])
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pixlearn-trainings", daemon=True)
        self._thread.start()

    def shutdown(self, *, stop_jobs: bool = True) -> None:
        """Stop dispatching. With ``stop_jobs`` (the default) running workers are stopped too; their jobs stay
        ``running`` and resume from their last checkpoint at the next :meth:`start`. Without it they keep
        training and the next :meth:`start` adopts them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            if stop_jobs:
                w.stop(grace_s=self.grace_s)
            else:
                w.close()

    # ------------------------------------------------------------ public API
    def submit(self, archive: str | os.PathLike[str] | IO[bytes], *, filename: str | None = None, name: str | None = None,
               idempotency_key: str | None = None, commit: Any = None, **options: Any) -> dict[str, Any]:
        """Check and extract ``archive`` into a new job folder and queue the job.

        Parameters
        ----------
        archive : path or binary file object
            A zip of labelled images.
        filename : str, optional
            The upload's file name (the default model name, and how errors name the archive).
        name : str, optional
            The model name to register on success (made unique by the registry).
        idempotency_key : str, optional
            A client's key for this submission: a key already used returns the job it created (with
            ``"replayed": True``) instead of queueing a second one; the same key with a different archive or
            options raises :class:`ConfigError`.
        commit : callable, optional
            Called right before the job is stored; when it returns False (the request's deadline has passed
            and the client was answered 504) nothing is stored and :class:`ConfigError` is raised.
        **options
            ``minutes``, ``architecture``, ``epochs``, ``img_size``, ``batch``, ``lr`` (see :data:`DEFAULT_OPTIONS`
            and :data:`OPTION_RANGES`).

        Returns
        -------
        dict
            The job (status ``queued``); with ``idempotency_key``, also ``"replayed"``: whether it existed already.

        Raises
        ------
        ArchiveError
            The archive was refused (``reasons`` lists why); nothing is left behind.
        ConfigError
            An invalid option (the message names it and the valid range or names).
        """
        opts = self._check_options(options)
        label = filename or (Path(archive).name if isinstance(archive, (str, os.PathLike)) else "archive.zip")
        model_name = safe_name(name or Path(label).stem or "model")
        fingerprint = ""
        if idempotency_key is not None:
            idempotency_key = _check_key(idempotency_key)
            fingerprint = _fingerprint(archive, {**opts, "name": name})
            existing = self._replay(idempotency_key, fingerprint)
            if existing is not None:
                return existing
        job_id = uuid.uuid4().hex
        job_dir = self.jobs_dir / job_id
        run_dir = self.models_dir / f"{model_name}-{job_id[:8]}"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        job_dir.mkdir()
        try:
            dataset = extract_archive(archive, job_dir / "data", limits=self.limits, name=label, task=opts["task"])
            if opts["architecture"] != AUTO:  # now that the archive has told the task
                check_architecture(opts["architecture"], dataset.task)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        opts = {k: v for k, v in opts.items() if k != "task"}  # the task the archive told is the dataset's "task"
        row = {
            "id": job_id, "name": model_name, "status": "queued", "options": opts,
            "dataset": {**dataset.to_dict(), "root": str(dataset.root), "archive": label},
            "created": _now(), "attempts": 0, "resume": 0, "job_dir": str(job_dir), "run_dir": str(run_dir),
        }
        if commit is not None and not commit():  # the client was answered 504: store nothing
            shutil.rmtree(job_dir, ignore_errors=True)
            raise ConfigError(f"{label}: the request's time limit passed before the job was stored; nothing was "
                              "queued, submit it again")
        try:
            with self.engine.begin() as conn:  # the job and its key in one transaction
                conn.execute(insert(trainings_table).values(**row))
                if idempotency_key is not None:
                    conn.execute(insert(training_keys_table).values(key=idempotency_key, job_id=job_id,
                                                                    fingerprint=fingerprint, created=row["created"]))
        except IntegrityError:
            shutil.rmtree(job_dir, ignore_errors=True)
            existing = self._replay(idempotency_key, fingerprint) if idempotency_key is not None else None
            if existing is None:
                raise
            return existing  # a concurrent request with the same key stored its job first
        log.info("training job %s queued (%s, %d images)", job_id, label, dataset.images)
        self._wake.set()
        job = self.get(job_id)
        if idempotency_key is not None:
            job["replayed"] = False
        return job

    def _replay(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The job an idempotency key created (``replayed``: True), None for a new key."""
        with self.engine.connect() as conn:
            row = conn.execute(select(training_keys_table).where(training_keys_table.c.key == key)).mappings().first()
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise KeyConflict(f"Idempotency-Key {key!r} was used for a different submission (job {row['job_id']}, "
                              "another archive or other options); use a new key for a new job")
        try:
            job = self.get(row["job_id"])
        except JobNotFound:
            raise KeyConflict(f"Idempotency-Key {key!r} belongs to job {row['job_id']}, which has been deleted; use "
                              "a new key to submit again") from None
        job["replayed"] = True
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        """The job ``job_id`` with live progress and metrics; :class:`JobNotFound` when there is none."""
        return self._job(self._row(job_id))

    def list(self) -> list[dict[str, Any]]:
        """Every job, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(trainings_table).order_by(trainings_table.c.created.desc(),
                                                                 trainings_table.c.id)).mappings().all()
        return [self._job(r) for r in rows]

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a queued or running job (its worker's process group gets SIGTERM, then SIGKILL) and return it.

        A job that has already ended is deleted instead (its folder too; a registered model stays):
        returns None.
        """
        row = self._row(job_id)
        if row["status"] in _FINAL:
            self._delete(row)
            return None
        with self._lock:
            if not self._set(job_id, {"status": "cancelled", "finished": _now(), "error": None},
                             where=("queued", "running")):
                return self.get(job_id)  # it ended meanwhile
            worker = self._workers.pop(job_id, None)
        if worker is None and row["pid"] and _alive(row["pid"], Path(row["job_dir"])):
            worker = _Worker(job_id, Path(row["job_dir"]), pid=row["pid"])
        if worker is not None:
            worker.stop(grace_s=self.grace_s)
        self._store_history(job_id)
        self._wake.set()
        log.info("training job %s cancelled", job_id)
        return self.get(job_id)

    def log_text(self, job_id: str, *, max_bytes: int = 65536) -> str:
        """The end of the job's worker log (the server's paths shown as ``<storage>``, ``<python>``)."""
        from pixlearn.serve.security import hide_paths

        path = Path(self._row(job_id)["job_dir"]) / "worker.log"
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return hide_paths(fh.read().decode("utf-8", errors="replace"), self.storage)
        except OSError:
            return ""

    # ------------------------------------------------------------ options
    @staticmethod
    def _check_options(options: dict[str, Any]) -> dict[str, Any]:
        return check_options(options)

    # ------------------------------------------------------------ rows and job dicts
    def _row(self, job_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(trainings_table).where(trainings_table.c.id == str(job_id))).mappings().first()
        if row is None:
            raise JobNotFound(f"no training job {job_id!r}; list the jobs with GET /v1/trainings")
        return row

    def _set(self, job_id: str, values: dict[str, Any], *, where: tuple[str, ...] | None = None) -> bool:
        stmt = update(trainings_table).where(trainings_table.c.id == job_id)
        if where is not None:
            stmt = stmt.where(trainings_table.c.status.in_(where))
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(**values)).rowcount > 0

    def _hide(self, text: str | None) -> str | None:
        """``text`` without server paths: the storage, Python and the weights folders by name."""
        from pixlearn._core.paths import cache_dir, weights_dirs
        from pixlearn.serve.security import hide_paths

        if not text:
            return text
        cache = cache_dir() / "weights"
        names = [(d, "<cache>/weights" if d == cache else "<PIXLEARN_WEIGHTS>") for d in weights_dirs()]
        names += [(os.path.realpath(d), name) for d, name in names]
        return hide_paths(text, self.storage, extra=names)

    def _job(self, row: Any) -> dict[str, Any]:
        opts = dict(row["options"])
        minutes = opts.get("minutes")  # None for jobs stored before budgets
        status = row["status"]
        job_dir, run_dir = Path(row["job_dir"]), Path(row["run_dir"])
        history = row["history"] if row["history"] is not None else read_history(run_dir)
        resuming = status == "queued" and bool(row["resume"])  # stopped (a restart), waiting to continue: keeps its progress
        progress_file = (_read_json(job_dir / "progress.json") or {}) if status != "queued" or resuming else {}
        epochs = int(opts.get("epochs") or 0) or (None if minutes else int(progress_file.get("epochs") or 0) or None)
        done = len(history)
        epoch = max(done, int(progress_file.get("epoch") or 0)) if status == "running" else done
        if status == "succeeded":
            progress = 1.0
        elif status == "queued" and not resuming:
            progress = 0.0
        else:  # under a budget the writer's fraction follows the clock (elapsed / budget, earlier attempts included), else the epochs
            frac = float(progress_file.get("fraction") or 0.0)
            by_epochs = done / epochs if epochs else 0.0
            progress = min(max(frac, by_epochs), 0.99 if status in ("running", "queued") else 1.0)
        return {
            "id": row["id"],
            "name": row["name"],
            "status": status,
            "progress": round(progress, 4),
            "epoch": epoch,
            "epochs": epochs,
            "minutes": minutes,
            "elapsed_s": progress_file.get("elapsed_s") if status == "running" or resuming else None,
            "metrics": history,
            "latest": progress_file.get("latest") if status == "running" else None,
            "stage": progress_file.get("stage") if status == "running" else None,
            "backbone": self._backbone(progress_file.get("backbone"), opts),
            "error": self._hide(row["error"]),
            "model": row["model"],
            "created": row["created"],
            "started": row["started"],
            "finished": row["finished"],
            "options": opts,
            "dataset": {k: v for k, v in dict(row["dataset"]).items() if k != "root"},
            "final": row["final"],
            "resumed": max(int(row["attempts"] or 0) - 1, 0),
        }

    def _backbone(self, chosen: Any, opts: dict[str, Any]) -> dict[str, Any]:
        """What the job trains: ``{"model", "pretrained", "weights", "choice", "reason"}`` -- the run's own account
        once training has started (:func:`~pixlearn.serve.train_worker.describe_model`), else what was asked for."""
        if isinstance(chosen, dict) and chosen.get("model"):
            return {k: self._hide(v) if isinstance(v, str) else v for k, v in chosen.items()}
        arch = opts.get("architecture") or AUTO
        if arch == AUTO:
            return {"model": None, "pretrained": None, "weights": None, "choice": "chosen when the job starts",
                    "reason": "a pretrained backbone when its weights are in a local weights folder, else a small CNN"}
        return {"model": arch, "pretrained": None, "weights": None, "choice": f"{arch} (asked for by name)",
                "reason": "fine-tuned from its local weights when the server has them, else trained from scratch"}

    def _store_history(self, job_id: str) -> None:
        row = self._row(job_id)
        run_dir = Path(row["run_dir"])
        self._set(job_id, {"history": read_history(run_dir), "final": _final_metrics(run_dir)})

    def _delete(self, row: Any) -> None:
        with self._lock:
            with self.engine.begin() as conn:
                conn.execute(delete(trainings_table).where(trainings_table.c.id == row["id"]))
                # its keys stay: a retry with the same key is told the job was deleted, never given a new one
        shutil.rmtree(row["job_dir"], ignore_errors=True)
        run_dir = Path(row["run_dir"])
        registered = row["model"] is not None and self.registry.get_or_none(row["model"]) is not None
        if not registered and run_dir.resolve().is_relative_to(self.models_dir.resolve()):
            shutil.rmtree(run_dir, ignore_errors=True)

    # ------------------------------------------------------------ recovery after a restart
    def _recover(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(select(trainings_table).where(trainings_table.c.status == "running")).mappings().all()
        for row in rows:
            job_id, job_dir, run_dir = row["id"], Path(row["job_dir"]), Path(row["run_dir"])
            if _alive(row["pid"], job_dir):
                log.info("training job %s: its worker (pid %s) is still running; watching it again", job_id, row["pid"])
                with self._lock:
                    self._workers[job_id] = _Worker(job_id, job_dir, pid=row["pid"])
            elif (run_dir / "metrics.json").is_file() and (run_dir / "weights" / "model.json").is_file():
                self._finish(job_id, returncode=0)  # it finished; only the bookkeeping was missed
            elif ((_read_json(job_dir / "progress.json") or {}).get("stage") in ("evaluating", "done")
                  and (run_dir / "checkpoints" / "last.ckpt").is_file()):
                self._set(job_id, {"status": "failed", "error": NO_EVALUATION, "finished": _now(), "pid": None},
                          where=("running",))
                self._store_history(job_id)
            elif (run_dir / "checkpoints" / "last.ckpt").is_file():
                log.info("training job %s: resuming from %s", job_id, run_dir / "checkpoints" / "last.ckpt")
                self._set(job_id, {"status": "queued", "resume": 1, "pid": None}, where=("running",))
            else:
                self._set(job_id, {"status": "failed", "error": NO_CHECKPOINT, "finished": _now(), "pid": None},
                          where=("running",))
                self._store_history(job_id)

    # ------------------------------------------------------------ the dispatcher thread
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                if not self._stop.is_set():
                    self._dispatch()
            except Exception:  # the loop must survive anything (a full disk, a locked database...)
                log.exception("training dispatcher error")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _reap(self) -> None:
        with self._lock:
            ended = [(w, rc) for w in list(self._workers.values()) if (rc := w.returncode()) is not None]
            for w, _ in ended:
                self._workers.pop(w.job_id, None)
        for w, rc in ended:
            w.close()
            self._finish(w.job_id, returncode=rc)

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if len(self._workers) >= self.max_workers:
                    return
                with self.engine.connect() as conn:
                    row = conn.execute(
                        select(trainings_table).where(trainings_table.c.status == "queued")
                        .order_by(trainings_table.c.resume.desc(), trainings_table.c.created, trainings_table.c.id).limit(1)
                    ).mappings().first()
                if row is None:
                    return
                self._launch(row)

    def _launch(self, row: Any) -> None:
        job_id, job_dir, run_dir = row["id"], Path(row["job_dir"]), Path(row["run_dir"])
        resume = bool(row["resume"]) and (run_dir / "checkpoints" / "last.ckpt").is_file()
        options = {**dict(row["options"]), "task": dict(row["dataset"]).get("task") or "classify"}
        spec = {"id": job_id, "data": row["dataset"]["root"], "run_dir": str(run_dir), "options": options,
                "resume": resume}
        from pixlearn.engine.runs import write_json

        (job_dir / "result.json").unlink(missing_ok=True)
        write_json(job_dir / "job.json", spec)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(job_dir / "worker.log", "ab")  # noqa: SIM115 - closed when the worker ends
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "pixlearn.serve.train_worker", str(job_dir)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(job_dir),
                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as exc:
            log_file.close()
            self._set(job_id, {"status": "failed", "error": f"the training process could not start ({exc})",
                               "finished": _now()}, where=("queued",))
            return
        values = {"status": "running", "pid": popen.pid, "attempts": int(row["attempts"] or 0) + 1, "resume": 0}
        if not row["started"]:
            values["started"] = _now()
        if not self._set(job_id, values, where=("queued",)):  # cancelled in between
            _Worker(job_id, job_dir, popen=popen, log_file=log_file).stop(grace_s=self.grace_s)
            return
        self._workers[job_id] = _Worker(job_id, job_dir, popen=popen, log_file=log_file)
        log.info("training job %s %s (pid %d)", job_id, "resumed" if resume else "started", popen.pid)

    def _finish(self, job_id: str, *, returncode: int) -> None:
        with self._lock:  # a cancel waits until the outcome is recorded
            self._finish_locked(job_id, returncode=returncode)

    def _finish_locked(self, job_id: str, *, returncode: int) -> None:
        row = self._row(job_id)
        if row["status"] != "running":
            return  # cancelled meanwhile
        job_dir, run_dir = Path(row["job_dir"]), Path(row["run_dir"])
        result = _read_json(job_dir / "result.json") or {}
        values: dict[str, Any] = {"finished": _now(), "pid": None, "history": read_history(run_dir),
                                  "final": _final_metrics(run_dir)}
        succeeded = result.get("status") == "succeeded" or (
            returncode in (0, -1000) and not result and (run_dir / "metrics.json").is_file()
        )
        if succeeded:
            try:
                record = self.registry.register_run(run_dir, name=row["name"], source="training")
            except PixlearnError as exc:
                values.update(status="failed", error=f"the model could not be registered: {exc}")
            else:
                values.update(status="succeeded", model=record["name"], error=None)
        else:
            values.update(status="failed", error=self._failure(result, job_dir, returncode, row))
        if self._set(job_id, values, where=("running",)):
            log.info("training job %s %s%s", job_id, values["status"], f": {values.get('error')}" if values.get("error") else "")

    @staticmethod
    def _failure(result: dict[str, Any], job_dir: Path, returncode: int, row: Any) -> str:
        error = str(result.get("error") or "")
        if not error:
            last = _tail(job_dir / "worker.log")
            if returncode < 0 and returncode != -1000:
                name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
                error = f"the training process was killed ({name})" + (f"; its last output: {last}" if last else "")
            elif returncode == -1000:  # an adopted worker: its exit code is unknown
                error = "the training process ended without a result" + (f"; its last output: {last}" if last else "")
            else:
                error = last or f"the training process ended with exit code {returncode} and no message"
        root = str(dict(row["dataset"]).get("root", ""))
        return error.replace(root, "the uploaded data") if root else error


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options of a job, defaults filled in, each checked against :data:`OPTION_RANGES` before any work.

    Raises
    ------
    ConfigError
        An unknown option, a value outside its range (the message names the option, the range and the
        value received), or an unknown architecture (with the closest names).

    Examples
    --------
    >>> check_options({"minutes": 5})["architecture"]
    'auto'
    >>> check_options({"minutes": 0})
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: minutes must be between 0.5 and 120 (the training's time budget in minutes), got 0; send e.g. minutes=3
    """
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(DEFAULT_OPTIONS)}")
    opts = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if v is not None}}
    for key, (low, high) in OPTION_RANGES.items():
        value = opts[key]
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
        if ok and key in _INTEGER_OPTIONS and float(value) != int(value):
            ok = False
        if not ok:
            example = DEFAULT_OPTIONS[key] if DEFAULT_OPTIONS[key] is not None else {"epochs": 20, "img_size": 96, "batch": 32,
                                                                                      "lr": 0.001}[key]
            raise ConfigError(f"{key} must be between {low:g} and {high:g} ({_OPTION_MEANING[key]}), got {value!r}; "
                              f"send e.g. {key}={example:g}")
        opts[key] = int(value) if key in _INTEGER_OPTIONS else float(value)
    task = str(opts["task"]).strip().lower() or "auto"
    if task not in TASKS:
        from pixlearn._core.names import check_name

        try:
            check_name(task, TASKS, what="task")
        except UnknownNameError as exc:  # an option, not a resource: 400, with the closest name
            raise ConfigError(f"{exc} (auto: a detector for a COCO / YOLO / VOC zip, else a classifier)") from None
    opts["task"] = task
    arch = str(opts["architecture"]).strip() or AUTO
    opts["architecture"] = AUTO if arch.lower() == AUTO else arch
    if opts["architecture"] != AUTO:
        check_architecture(opts["architecture"], task)
    return opts


def check_architecture(arch: str, task: str) -> None:
    """A named architecture checked against ``task``: a classification model name, or a detection architecture
    (:data:`DETECT_ARCHS`); ``task="auto"`` takes either (checked again once the archive tells the task)."""
    if task in ("detect", "auto") and arch in DETECT_ARCHS:
        return
    if task == "detect":
        from pixlearn._core.names import check_name

        try:
            check_name(arch, DETECT_ARCHS, what="detection architecture")
        except UnknownNameError as exc:
            raise ConfigError(f"architecture: {exc} (or 'auto': the detection recipe's choice)") from None
    from pixlearn.models.registry import check_model_name

    try:
        check_model_name(arch)
    except UnknownNameError as exc:
        from pixlearn._core.names import closest

        near = closest(arch, DETECT_ARCHS) if task == "auto" else []
        if near:
            raise ConfigError(f"architecture: unknown {arch!r}; did you mean {near[0]!r}? Detectors: "
                              f"{', '.join(DETECT_ARCHS)}; or a classification model name, or 'auto'") from None
        extra = f"; a detector: {', '.join(DETECT_ARCHS)}" if task == "auto" else ""
        raise ConfigError(f"architecture: {exc} (or 'auto': a pretrained backbone when local weights exist, "
                          f"else a small CNN{extra})") from None


def _check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise ConfigError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, got "
                          f"{len(key)} characters; send e.g. a UUID")
    return key


def _fingerprint(archive: str | os.PathLike[str] | IO[bytes], options: dict[str, Any]) -> str:
    """SHA-256 of the archive's bytes and the options: what makes two submissions the same."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    if isinstance(archive, (str, os.PathLike)):
        with open(archive, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        start = archive.tell()
        for block in iter(lambda: archive.read(1 << 20), b""):
            digest.update(block)
        archive.seek(start)
    return digest.hexdigest()


# ---------------------------------------------------------------- routes
router = APIRouter(tags=["trainings"])


def _jobs(request: Request) -> JobManager:
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise ApiError("training jobs are not available: the server has not finished starting", status=503)
    return jobs


@router.post("/v1/trainings", status_code=202, summary="Train a classifier or a detector from a zip of labelled images",
             responses={200: {"description": "The job an earlier request with the same Idempotency-Key created"}})
def create_training(
    request: Request,
    response: Response,
    archive: UploadFile = File(..., description="A zip: one folder of images per class (optionally under train/ val/), "
                                                  "or a CSV path,label with its images (a classifier); or a COCO, YOLO "
                                                  "or Pascal VOC dataset with boxes (a detector; with polygons, an "
                                                  "instance-segmentation model)."),
    name: str | None = Form(None, description="Model name to register (default: from the file name)."),
    minutes: float | None = Form(None, description="The time budget in minutes, 0.5 to 120 (default 3): the training "
                                                    "plans its work to finish inside it."),
    architecture: str = Form(AUTO, description="'auto' (default): a pretrained backbone when its weights are in a "
                                               "local weights folder (PIXLEARN_WEIGHTS or the cache), else a small "
                                               "CNN. Or a model name: pixlearn_smallcnn, resnet18, ... (advanced)."),
    epochs: int | None = Form(None, description="Advanced: the most epochs, 1 to 1000 (default: as many as the "
                                                "budget allows)."),
    img_size: int | None = Form(None, description="Advanced: square training size in pixels, 8 to 1024 (default: "
                                                  "the model's)."),
    batch: int | None = Form(None, description="Advanced: images per batch, 1 to 1024."),
    lr: float | None = Form(None, description="Advanced: learning rate (default: the recipe's)."),
    task: str = Form("auto", description="'auto' (default): a detector for a COCO / YOLO / VOC zip, else a "
                                         "classifier; or 'classify', 'detect'."),
    idempotency_key: str | None = Header(None, description="Any unique string (e.g. a UUID): a retry with the same "
                                                           "key answers 200 with the job the first request created "
                                                           "instead of queueing a second one."),
) -> dict[str, Any]:
    """Check the archive (400 with ``reasons`` when refused), extract it and queue the job: 202 with the job.

    Then poll ``GET /v1/trainings/{id}``: ``status``, ``progress`` (0..1; under the time budget it follows
    the clock), ``epoch``/``epochs``, ``minutes``/``elapsed_s``, ``backbone`` (the model trained and why:
    a pretrained backbone from local weights, or a small CNN), ``metrics`` (one row per finished epoch:
    train_loss, val_loss, val_accuracy, ...) and, once succeeded, ``final`` (the held-out scores with
    their ``split`` and ``n``) and ``model`` (the registered model's name, usable at once in /v1/classify).

    Once the job is stored the request's time limit no longer applies: it is never answered 504 for a job
    that exists. A 504 before that means nothing was queued. With ``Idempotency-Key``, a retry is safe
    either way: the same key gives the same job (200), never a second one; the same key with another
    archive or other options is a 422.
    """
    from pixlearn.serve.limits import current_deadline

    jobs = _jobs(request)
    deadline = current_deadline.get()
    try:
        job = jobs.submit(archive.file, filename=archive.filename or "archive.zip", name=name or None,
                          idempotency_key=idempotency_key, commit=deadline.commit if deadline is not None else None,
                          minutes=minutes, architecture=architecture, epochs=epochs, img_size=img_size, batch=batch,
                          lr=lr, task=task)
    except KeyConflict as exc:
        raise ApiError(str(exc), status=422) from None
    except ArchiveError as exc:
        raise ApiError(f"{exc.archive}: the archive was refused: " + "; ".join(exc.reasons), status=400,
                       extra={"reasons": exc.reasons}) from None
    if job.pop("replayed", False):
        response.status_code = 200
    return job


@router.get("/v1/trainings", summary="List training jobs, newest first")
def list_trainings(request: Request) -> dict[str, Any]:
    """``{"trainings": [job, ...]}``."""
    return {"trainings": _jobs(request).list()}


@router.get("/v1/trainings/{job_id}", summary="Status, progress and live metrics of a training job")
def get_training(job_id: str, request: Request) -> dict[str, Any]:
    """The job: ``{"id", "name", "status", "progress", "epoch", "epochs", "metrics", "error", "model", "created",
    "started", "finished", "options", ...}``."""
    return _jobs(request).get(job_id)


@router.get("/v1/trainings/{job_id}/log", summary="The end of a training job's worker log", response_class=Response)
def get_training_log(job_id: str, request: Request) -> Response:
    """Plain text: the last 64 KiB the training process wrote."""
    return Response(_jobs(request).log_text(job_id), media_type="text/plain; charset=utf-8")


@router.delete("/v1/trainings/{job_id}", summary="Cancel a training job, or delete a finished one",
               responses={200: {"description": "The cancelled job"}, 204: {"description": "A finished job was deleted"}})
def delete_training(job_id: str, request: Request) -> Any:
    """A queued or running job is cancelled: 200 with the job (status ``cancelled``). A finished job is removed
    from the list with its folder (its registered model stays): 204."""
    job = _jobs(request).cancel(job_id)
    if job is None:
        return Response(status_code=204)
    return job
