"""The task registry: one :class:`TaskSpec` per task package, the way ``train``, ``predict``, ``eval`` and the service
reach a task.

Each package under ``pixlearn/tasks/`` registers itself once, in its ``__init__``, with :func:`register`. A spec
names its entry points as ``"module:attribute"`` strings, so that looking a task up imports nothing heavy: only
:meth:`TaskSpec.load` imports the module that holds the entry point (torch, Lightning...). A new task is one folder
with a ``register(TaskSpec(...))`` call; :func:`tasks` finds it without a list to edit.

A package whose models come ready-made and train nothing (OCR, faces) registers a :class:`ToolSpec` with
:func:`register_tool` instead: only its own entry points (e.g. ``"read"``), reached with :func:`tool`, so that the CLI
and the service import it through the registry too, while ``train``, ``predict RUN`` and ``eval`` never list it.

Examples
--------
>>> from pixlearn.tasks.registry import task, task_names
>>> task_names()
['classify', 'detect', 'restore', 'segment']
>>> task("segment").entry["train"]
'pixlearn.tasks.segment.train:train_segmenter'
>>> task("segmnet")
Traceback (most recent call last):
...
pixlearn._core.errors.UnknownNameError: unknown task 'segmnet'; did you mean 'segment'? Valid: 'classify', 'detect', 'restore', 'segment'
"""

from __future__ import annotations

import os
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from pixlearn._core.names import check_name

__all__ = ["TaskSpec", "ToolSpec", "ENTRY_POINTS", "register", "register_tool", "task", "task_names", "tasks", "task_for_run",
           "tool", "tool_names", "tools"]

#: The entry points every task declares, and what each one is.
ENTRY_POINTS = {
    "train": "the train function: train_x(data, *, config=None, **flat overrides) -> result",
    "config": "the run configuration class (a pixlearn.engine.config.RunConfig)",
    "load": "the predictor loader: load_x(run_folder, *, device=...)",
    "predict": "prediction over files, folders and globs: f(run, images, **options) -> rows",
    "evaluate": "the evaluation of a run folder on a dataset (pixlearn eval RUN --data DIR)",
}


@dataclass(frozen=True)
class TaskSpec:
    """One task: its name, a one-line summary, its entry points and the run folders it serves.

    Attributes
    ----------
    name : str
        The CLI noun (``pixlearn train NAME``) and the key of the registry.
    summary : str
        One line for ``--help`` texts.
    package : str
        The task package (``pixlearn.tasks.NAME``).
    entry : mapping of str to str
        ``"module:attribute"`` of every entry point in :data:`ENTRY_POINTS` (and optional extras, e.g.
        ``"classical"``); :meth:`load` imports one.
    serves : tuple of str
        The ``task`` values of ``weights/model.json`` whose run folders this task predicts and evaluates.
    predicts : str
        What ``pixlearn predict`` gives for this task's runs, for its ``--help`` (default: the summary).
    """

    name: str
    summary: str
    package: str
    entry: Mapping[str, str] = field(default_factory=dict)
    serves: tuple[str, ...] = ()
    predicts: str = ""

    def predict_help(self) -> str:
        """The paragraph ``pixlearn predict --help`` shows for this task: ``NAME (train NAME): what it writes``."""
        return f"{self.name} (train {self.name}): {self.predicts or self.summary}"

    def load(self, what: str) -> Any:
        """Import and return entry point ``what`` (e.g. ``"train"``, ``"load"``, ``"evaluate"``)."""
        return _load_entry(self.entry, what, owner=f"task {self.name!r}")


def _load_entry(entry: Mapping[str, str], what: str, *, owner: str) -> Any:
    target = entry.get(check_name(what, entry, what=f"entry point of {owner}"))
    module, _, attr = str(target).partition(":")
    return getattr(import_module(module), attr)


@dataclass(frozen=True)
class ToolSpec:
    """A task package whose models come ready-made and train nothing (OCR, faces): its name, summary and entry points.

    Attributes
    ----------
    name : str
        The CLI noun (``pixlearn ocr``) and the key among the tools.
    summary : str
        One line for ``--help`` texts.
    package : str
        The task package (``pixlearn.tasks.NAME``).
    entry : mapping of str to str
        ``"module:attribute"`` of each entry point the package offers (e.g. ``{"read": "pixlearn.tasks.ocr.read:read_text"}``);
        :meth:`load` imports one.
    """

    name: str
    summary: str
    package: str
    entry: Mapping[str, str] = field(default_factory=dict)

    def load(self, what: str) -> Any:
        """Import and return entry point ``what`` (e.g. ``"read"``)."""
        return _load_entry(self.entry, what, owner=f"tool {self.name!r}")


_REGISTRY: dict[str, TaskSpec] = {}
_TOOLS: dict[str, ToolSpec] = {}
_DISCOVERED = False


def register(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` (called once by each task package's ``__init__``); a second, different spec of a name is an error."""
    missing = [k for k in ENTRY_POINTS if k not in spec.entry]
    if missing:
        raise ValueError(f"task {spec.name!r} does not declare entry points {missing}; every task declares {list(ENTRY_POINTS)}")
    known = _REGISTRY.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"task {spec.name!r} is registered twice ({known.package} and {spec.package})")
    _REGISTRY[spec.name] = spec
    return spec


def register_tool(spec: ToolSpec) -> ToolSpec:
    """Add a ready-made task's ``spec`` (called once by its package's ``__init__``); a name may not be both a task and a
    tool, and a second, different spec of a name is an error."""
    if not spec.entry:
        raise ValueError(f"tool {spec.name!r} declares no entry points")
    known = _TOOLS.get(spec.name)
    if (known is not None and known != spec) or spec.name in _REGISTRY:
        raise ValueError(f"{spec.name!r} is registered twice ({spec.package})")
    _TOOLS[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every package under ``pixlearn/tasks/`` once (they are light: no torch), so that each registers."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import pixlearn.tasks as tasks_pkg

    for info in sorted(pkgutil.iter_modules(tasks_pkg.__path__), key=lambda i: i.name):
        if info.ispkg:
            import_module(f"pixlearn.tasks.{info.name}")
    _DISCOVERED = True


def tasks() -> dict[str, TaskSpec]:
    """Every registered task, by name (sorted)."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def task_names() -> list[str]:
    """The names of every registered task, sorted."""
    return list(tasks())


def task(name: str) -> TaskSpec:
    """The spec of task ``name``; an unknown name raises :class:`~pixlearn._core.errors.UnknownNameError` with a
    did-you-mean suggestion."""
    registry = tasks()
    return registry[check_name(name, registry, what="task")]


def task_for_run(run: str | os.PathLike[str]) -> TaskSpec | None:
    """The task that serves a run folder (or weights file), read from its ``weights/model.json``; None when the folder
    names no task any registered package serves (an older classification run, a classic run, not a run).

    Only the model card is read: no task module is imported.

    >>> import tempfile
    >>> task_for_run(tempfile.mkdtemp()) is None
    True
    """
    from pixlearn.engine.run_card import card_task

    name = card_task(Path(run))
    if name is None:
        return None
    for spec in tasks().values():
        if name in spec.serves:
            return spec
    return None


def tools() -> dict[str, ToolSpec]:
    """Every registered ready-made task (:class:`ToolSpec`), by name (sorted)."""
    _discover()
    return dict(sorted(_TOOLS.items()))


def tool_names() -> list[str]:
    """The names of every registered ready-made task, sorted."""
    return list(tools())


def tool(name: str) -> ToolSpec:
    """The spec of ready-made task ``name`` (``"ocr"``); an unknown name raises
    :class:`~pixlearn._core.errors.UnknownNameError` with a did-you-mean suggestion."""
    registry = tools()
    return registry[check_name(name, registry, what="tool")]
