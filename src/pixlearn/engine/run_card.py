"""Read a trained run's model card (``weights/model.json``) and find its weights, for every task.

A run folder written by ``pixlearn train classify|segment|restore`` keeps ``weights/model.json`` (the
task, the architecture spec, classes or degradation...) beside ``weights/best.safetensors``; the same
description also travels inside the safetensors file's metadata, so the file alone rebuilds the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError, PixlearnError

__all__ = ["read_model_card", "card_task"]


def read_model_card(
    path: Path, *, what: str, command: str, explain_missing: Callable[[Path], None] | None = None
) -> tuple[dict[str, Any], Path]:
    """(model card, weights file) of a run folder, its ``weights/`` folder or a ``.safetensors`` file.

    ``what`` names the kind of run in messages ("classification"), ``command`` the command that writes
    it ("pixlearn train classify"). ``explain_missing(path)`` may raise a more specific
    :class:`~pixlearn.ConfigError` when the folder holds no model card.

    Examples
    --------
    >>> import tempfile
    >>> read_model_card(Path(tempfile.mkdtemp()), what="segmentation", command="pixlearn train segment")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: ...: not a segmentation run folder (no weights/model.json); pass the folder pixlearn train segment wrote
    """
    path = Path(path)
    if path.is_file():
        from pixlearn.models import read_weights_metadata

        meta = read_weights_metadata(path)
        if "pixlearn" not in meta:
            raise ConfigError(f"{path}: this weights file carries no pixlearn model description; pass its run folder")
        return json.loads(meta["pixlearn"]), path
    wdir = path / "weights" if (path / "weights").is_dir() else path
    card_path, weights = wdir / "model.json", wdir / "best.safetensors"
    if not card_path.is_file():
        if explain_missing is not None:
            explain_missing(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such run folder")
        raise ConfigError(f"{path}: not a {what} run folder (no weights/model.json); pass the folder {command} wrote")
    if not weights.is_file():
        raise ConfigError(f"{path}: has no weights/best.safetensors; the run did not finish an epoch")
    try:
        return json.loads(card_path.read_text(encoding="utf-8")), weights
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{card_path}: unreadable model description ({exc})") from None


def card_task(run: str | Path) -> str | None:
    """The ``task`` a run folder's (or weights file's) model card names, or None when it has none.

    >>> import tempfile
    >>> card_task(tempfile.mkdtemp()) is None
    True
    """
    path = Path(run)
    wdir = path / "weights" if (path / "weights").is_dir() else path
    try:
        if (wdir / "model.json").is_file():
            card = json.loads((wdir / "model.json").read_text(encoding="utf-8"))
        elif path.is_file() and path.suffix == ".safetensors":
            from pixlearn.models import read_weights_metadata

            card = json.loads(read_weights_metadata(path).get("pixlearn", "{}"))
        else:
            return None
    except (OSError, ValueError, PixlearnError):
        return None
    task = card.get("task") if isinstance(card, dict) else None
    return str(task) if task is not None else None
