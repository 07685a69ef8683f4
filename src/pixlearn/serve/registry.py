"""The model registry: which trained classifiers and detectors the service offers, stored in the ``models`` table.

A model is a classification run folder written by :func:`pixlearn.train.train_classifier` (its
``weights/model.json``, ``weights/best.safetensors`` and ``metrics.json``), a detection run folder of
``pixlearn train detect`` (task ``detect``: served by ``/v1/detect`` and the OIP v2 routes), or an exported
classifier or detector (``pixlearn export RUN --format onnx``: ``model.onnx`` + ``model.json``, run by onnxruntime
through the same routes as its run; its record's ``backend`` is ``"onnxruntime"``, ``"torch"`` for the others). Registering reads only those small JSON files;
:meth:`ModelRegistry.load` rebuilds the network (opens the ONNX session) once and caches it.

A record's ``general`` flag (default false) says whether the model labels any photo: ``/v1/analyze``
shows a custom model's labels only when the request names it (``models=``) or the model is general
(``pixlearn serve --general-model RUN_DIR``, or ``register_run(..., general=True)``).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import (
    JSON, Boolean, Column, Engine, String, Table, Text, delete, false, insert, inspect, select, text, update,
)

from pixlearn._core.errors import ConfigError
from pixlearn._core.names import closest
from pixlearn.serve.db import metadata
from pixlearn.serve.errors import ModelNotFound, ModelUnavailable

__all__ = ["ModelRegistry", "models_table", "read_run_card", "safe_name"]

models_table = Table(
    "models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("task", String(32), nullable=False),
    Column("classes", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("created", String(40), nullable=False),
    Column("source", String(16), nullable=False),
    Column("run_dir", Text, nullable=False),
    Column("architecture", String(128), nullable=False),
    Column("input_shape", JSON, nullable=False),
    Column("owned", Boolean, nullable=False, default=False),
    Column("general", Boolean, nullable=False, default=False, server_default=false()),
    Column("backend", String(32), nullable=False, default="torch", server_default="torch"),
)

#: The metrics.json keys copied into a model record (the summary; the run folder has the rest). ``verdict`` is the
#: model against chance and the majority class on its held-out split (pixlearn.engine.verdict), read-only.
_SUMMARY_KEYS = ("split", "n", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top5_accuracy",
                 "roc_auc_macro", "map", "map50", "map75", "mask_map", "mask_map50", "best_epoch", "epochs_run",
                 "stopped_early", "fit_seconds", "verdict")
#: The tasks whose run folders the service registers (``weights/model.json``'s ``task``).
SERVED_TASKS = ("classify", "detect")


def safe_name(name: str) -> str:
    """A model name usable in a URL path: letters, digits, ``.``, ``_``, ``-`` (at most 100).

    Examples
    --------
    >>> safe_name("my cats/dogs v2")
    'my-cats-dogs-v2'
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")[:100]
    return cleaned or "model"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_export_card(path: Path) -> dict[str, Any]:
    """The card of an exported model (its folder or ``.onnx`` file); classifiers and detectors are served."""
    from pixlearn.export.runtime import read_onnx_card

    card, _ = read_onnx_card(path)
    if card["task"] not in SERVED_TASKS:
        raise ConfigError(f"{path}: an exported {card['task']} model; the service serves exported classifiers and "
                          "detectors (pixlearn export RUN --format onnx of a pixlearn train classify or detect run)")
    return card


def read_run_card(run_dir: Path) -> dict[str, Any]:
    """``weights/model.json`` of a classification or detection run folder, or the ``model.json`` card of an exported
    ONNX classifier or detector (its folder or its ``.onnx`` file); ConfigError says what the folder is instead."""
    from pixlearn.export.runtime import is_onnx_model

    if is_onnx_model(run_dir):
        return _read_export_card(run_dir)
    card_path = run_dir / "weights" / "model.json"
    if not card_path.is_file():
        if not run_dir.exists():
            raise ConfigError(f"{run_dir}: no such run folder; pass a folder written by `pixlearn train classify`")
        cfg = run_dir / "config.yaml"
        if cfg.is_file() and "method: classic" in cfg.read_text(encoding="utf-8", errors="replace"):
            raise ConfigError(f"{run_dir}: is a classic (HOG/SVM) run; the service serves deep classifiers only for now "
                              "(train one with `pixlearn train classify`)")
        raise ConfigError(f"{run_dir}: not a classification run folder (no weights/model.json); "
                          "pass the folder `pixlearn train classify` wrote")
    if not (run_dir / "weights" / "best.safetensors").is_file():
        raise ConfigError(f"{run_dir}: has no weights/best.safetensors; the run did not finish an epoch")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{card_path}: unreadable model description ({exc})") from None
    if card.get("task") == "detect" and isinstance(card.get("spec"), dict) and isinstance(card.get("class_names"), list):
        return card
    if card.get("task") != "classify" or not isinstance(card.get("model"), dict):
        raise ConfigError(f"{card_path}: describes task {card.get('task')!r}; the service registers classifiers "
                          "(pixlearn train classify) and detectors (pixlearn train detect)")
    return card


def _detect_arch(spec: dict[str, Any]) -> str:
    """``"arch/backbone"`` of a detection run's spec (``"detector"`` when it names neither)."""
    return "/".join(str(spec[k]) for k in ("arch", "backbone") if spec.get(k)) or "detector"


def _export_arch(card: dict[str, Any]) -> str:
    """``"<network> (onnx)"`` of an exported model: the network named by its source run's card when that run is here
    (a classifier's model name, a detector's ``arch/backbone``)."""
    run = (card.get("source") or {}).get("run")
    name = None
    if run:
        try:
            run_card = json.loads((Path(str(run)) / "weights" / "model.json").read_text(encoding="utf-8"))
            name = _detect_arch(run_card["spec"]) if card.get("task") == "detect" else run_card["model"]["name"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            name = None
    return f"{name or 'model'} (onnx)"


def _default_name(run_dir: Path, card: dict[str, Any]) -> str:
    """A new record's name: the run folder's; an exported model's source run's name with ``-onnx``."""
    if card.get("format") == "onnx":
        run = (card.get("source") or {}).get("run")
        base = Path(str(run)).name if run else (run_dir.parent.name if run_dir.is_file() else run_dir.name)
        return f"{base}-onnx"
    return run_dir.name


def _card_fields(card: dict[str, Any]) -> dict[str, Any]:
    """The record fields a run's model card gives: task, classes, architecture, input shape and backend."""
    if card.get("format") == "onnx":  # an exported classifier or detector (read_run_card let only those through)
        inp = card["input"]
        return {"task": str(card["task"]), "classes": [str(c) for c in card["class_names"]],
                "architecture": _export_arch(card), "input_shape": [3, int(inp["height"]), int(inp["width"])],
                "backend": "onnxruntime"}
    if card.get("task") == "detect":
        spec = card["spec"]
        size = int(spec.get("img_size") or 512)
        return {"task": "detect", "classes": [str(c) for c in card["class_names"]], "architecture": _detect_arch(spec),
                "input_shape": [3, size, size], "backend": "torch"}
    spec = card["model"]
    shape = list(spec.get("preprocess", {}).get("input_size") or [spec.get("in_chans", 3), 224, 224])
    return {"task": "classify", "classes": [str(c) for c in card.get("classes", [])],
            "architecture": str(spec.get("name", "unknown")), "input_shape": [int(v) for v in shape], "backend": "torch"}


def _add_missing_columns(engine: Engine) -> None:
    """Add the ``general`` (false) and ``backend`` ("torch") columns to a ``models`` table made by an older pixlearn."""
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("models")}
    except Exception:  # noqa: BLE001 - no such table yet: create_all makes it with the column
        return
    if columns and "general" not in columns:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE models ADD COLUMN general BOOLEAN NOT NULL DEFAULT FALSE"))
    if columns and "backend" not in columns:  # every model of an older pixlearn ran in torch
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE models ADD COLUMN backend VARCHAR(32) NOT NULL DEFAULT 'torch'"))


def _metrics_dir(run_dir: Path, card: dict[str, Any]) -> Path:
    """Where the record's metrics.json lies: the run folder; for an exported model, the run it came from."""
    run = (card.get("source") or {}).get("run") if card.get("format") == "onnx" else None
    return Path(str(run)) if run else run_dir


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    try:
        full = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: full[k] for k in _SUMMARY_KEYS if k in full}


class ModelRegistry:
    """Registered models (rows of the ``models`` table) and a thread-safe cache of loaded classifiers.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The service database (``metadata.create_all(engine)`` must have run).
    storage : path
        The service's data folder; run folders under it that the service trained are deleted with
        their model, run folders elsewhere never are.

    Examples
    --------
    >>> import tempfile
    >>> from pixlearn.serve.db import make_engine, metadata
    >>> eng = make_engine("sqlite://"); metadata.create_all(eng)
    >>> reg = ModelRegistry(eng, tempfile.mkdtemp())
    >>> reg.list()
    []
    >>> reg.get("cats")
    Traceback (most recent call last):
    ...
    pixlearn.serve.errors.ModelNotFound: no model named 'cats'; no model is registered yet: train one (POST /v1/trainings) or start the server with --model RUN_DIR
    """

    def __init__(self, engine: Engine, storage: str | Path) -> None:
        self.engine = engine
        self.storage = Path(storage)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        self._loading: dict[str, threading.Lock] = {}
        _add_missing_columns(engine)

    # ------------------------------------------------------------ records
    def register_run(self, run_dir: str | Path, *, name: str | None = None,
                     source: Literal["cli", "training"] = "cli", general: bool | None = None) -> dict[str, Any]:
        """Register a classification or detection run folder (or an exported ONNX classifier or detector) and return
        its record.

        ``name`` defaults to the folder's name (an exported model: its source run's name with ``-onnx``); a
        taken name gets ``-2``, ``-3``... The same run folder registered again (e.g. ``--model`` at every
        start) refreshes its record instead.
        Models with ``source="training"`` whose folder lies under the storage folder are owned by
        the service: :meth:`delete` removes their files. ``general`` marks the model as one that
        labels any photo (``/v1/analyze`` uses it without being asked); None keeps a re-registered
        model's flag (false for a new one).
        """
        if source not in ("cli", "training"):
            raise ConfigError(f"source must be 'cli' or 'training', got {source!r}")
        run_dir = Path(run_dir).expanduser().resolve()
        card = read_run_card(run_dir)
        fields = {
            **_card_fields(card),
            "metrics": _read_metrics(_metrics_dir(run_dir, card)),
            "source": source,
            "run_dir": str(run_dir),
            "owned": source == "training" and run_dir.is_relative_to(self.storage.resolve()),
        }
        if general is not None:
            fields["general"] = bool(general)
        with self._lock, self.engine.begin() as conn:
            existing = conn.execute(select(models_table.c.name).where(models_table.c.run_dir == str(run_dir))).first()
            if existing is not None:
                conn.execute(update(models_table).where(models_table.c.name == existing.name).values(**fields))
                self._cache.pop(existing.name, None)
                final = existing.name
            else:
                taken = set(conn.execute(select(models_table.c.name)).scalars())
                final = base = safe_name(name or _default_name(run_dir, card))
                n = 2
                while final in taken:
                    final = f"{base}-{n}"
                    n += 1
                conn.execute(insert(models_table).values(name=final, created=_now(), **fields))
        return self.get(final)

    def set_general(self, name: str, general: bool) -> dict[str, Any]:
        """Mark ``name`` as a general labeller (``/v1/analyze`` uses it without being asked) or not."""
        self.get(name)
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(models_table).where(models_table.c.name == name).values(general=bool(general)))
        return self.get(name)

    def general_names(self) -> list[str]:
        """The classifiers marked general, oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(models_table.c.name).where(models_table.c.general.is_(True))
                                     .where(models_table.c.task == "classify")
                                     .order_by(models_table.c.created, models_table.c.name)).scalars())

    def list(self) -> list[dict[str, Any]]:
        """Every record, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(models_table).order_by(models_table.c.created, models_table.c.name)).mappings().all()
        return [self._record(r) for r in rows]

    def public(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` as the API shows it: ``run_dir`` relative to the storage folder for a model the
        service trained, else the run folder's name; no absolute server path.

        >>> from pixlearn.serve.db import make_engine
        >>> reg = ModelRegistry(make_engine("sqlite://"), "/srv/px")
        >>> reg.public({"name": "a", "run_dir": "/srv/px/models/a-1"})["run_dir"], reg.public({"run_dir": "/data/pets"})["run_dir"]
        ('models/a-1', 'pets')
        """
        return {**record, "run_dir": self._shown(record["run_dir"])}

    def _shown(self, run_dir: str | Path) -> str:
        run = Path(run_dir)
        for storage in (self.storage, self.storage.resolve()):
            if run.is_relative_to(storage):
                return run.relative_to(storage).as_posix()
        return run.name

    def _hide(self, text: str, run_dir: str | Path) -> str:
        from pixlearn.serve.security import hide_paths

        return hide_paths(text, self.storage, extra=[(run_dir, self._shown(run_dir))])

    def names(self, *, task: str | None = None) -> list[str]:
        """Every registered model's name (of ``task`` only, when given), oldest first."""
        query = select(models_table.c.name)
        if task is not None:
            query = query.where(models_table.c.task == task)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(models_table.c.created, models_table.c.name)).scalars())

    def get(self, name: str) -> dict[str, Any]:
        """The record of ``name``; :class:`ModelNotFound` (404) names the closest models."""
        with self.engine.connect() as conn:
            row = conn.execute(select(models_table).where(models_table.c.name == name)).mappings().first()
        if row is None:
            self._not_found(name)
        return self._record(row)

    def delete(self, name: str) -> None:
        """Remove ``name`` from the registry (and its run folder when the service trained it)."""
        record = self.get(name)
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(select(models_table.c.owned).where(models_table.c.name == name)).first()
            conn.execute(delete(models_table).where(models_table.c.name == name))
            self._cache.pop(name, None)
        if row is not None and row.owned:
            run_dir = Path(record["run_dir"])
            if run_dir.is_relative_to(self.storage.resolve()):
                shutil.rmtree(run_dir, ignore_errors=True)

    def input_shape(self, name: str) -> tuple[int, int, int]:
        """The model's input ``(C, H, W)``."""
        c, h, w = self.get(name)["input_shape"]
        return int(c), int(h), int(w)

    # ------------------------------------------------------------ loading
    def load(self, name: str) -> Any:
        """The :class:`~pixlearn.tasks.classify.predict.Classifier` of ``name`` (a detection model's
        :class:`~pixlearn.tasks.detect.detections.Detector`; an exported classifier's
        :class:`~pixlearn.export.runtime.OnnxClassifier`, an exported detector's
        :class:`~pixlearn.export.runtime.OnnxDetector`), built once and cached."""
        with self._lock:
            clf = self._cache.get(name)
            if clf is not None:
                return clf
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            with self._lock:
                clf = self._cache.get(name)
            if clf is not None:
                return clf
            record = self.get(name)
            from pixlearn.tasks.registry import task as get_task

            if record["backend"] == "onnxruntime":  # an exported classifier or detector: no torch
                from pixlearn.export.runtime import load_onnx_model

                def load_classifier(path: str, device: str) -> Any:
                    return load_onnx_model(path)
            elif record["task"] == "detect":
                load_classifier = get_task("detect").load("load_run")
            else:
                load_classifier = get_task("classify").load("load")

            try:
                clf = load_classifier(record["run_dir"], device="cpu")
                _, h, w = record["input_shape"]
                # warm-up: the first request pays no lazy imports (an exported detector: at or above its score floor)
                floor = getattr(clf, "score_floor", None) if record["task"] == "detect" else None
                clf.predict([np.zeros((h, w, 3), np.uint8)], **({} if floor is None else {"score": max(0.25, float(floor))}))
            except ConfigError as exc:  # the messages name the run folder: shown by its name, not its server path
                why = self._hide(str(exc), record["run_dir"])
                raise ModelUnavailable(f"model {name!r} cannot be loaded: {why}; delete it (DELETE /v1/models/{name}) "
                                       "or restore its run folder") from None
            except Exception as exc:  # a damaged weights file may raise anything
                why = self._hide(f"{type(exc).__name__}: {exc}", record["run_dir"])
                raise ModelUnavailable(f"model {name!r} cannot be loaded ({why}); delete it "
                                       f"(DELETE /v1/models/{name}) or restore its run folder") from None
            with self._lock:
                if self.get_or_none(name) is not None:
                    self._cache[name] = clf
            return clf

    def get_or_none(self, name: str) -> dict[str, Any] | None:
        try:
            return self.get(name)
        except ModelNotFound:
            return None

    def loaded(self, name: str) -> bool:
        """Whether ``name`` is in the cache (ready to answer at once)."""
        with self._lock:
            return name in self._cache

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _record(row: Any) -> dict[str, Any]:
        return {
            "name": row["name"],
            "task": row["task"],
            "classes": list(row["classes"]),
            "metrics": dict(row["metrics"] or {}),
            "created": row["created"],
            "source": row["source"],
            "run_dir": row["run_dir"],
            "architecture": row["architecture"],
            "input_shape": list(row["input_shape"]),
            "general": bool(row.get("general") or False),
            "backend": str(row.get("backend") or "torch"),
        }

    def _not_found(self, name: str) -> None:
        names = self.names()
        if not names:
            raise ModelNotFound(f"no model named {name!r}; no model is registered yet: train one (POST /v1/trainings) "
                                "or start the server with --model RUN_DIR")
        hint = closest(str(name), names)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ";"
        raise ModelNotFound(f"no model named {name!r}{suggestion} registered: {', '.join(repr(n) for n in names)}")
