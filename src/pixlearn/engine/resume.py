"""Resume and extend for any task: the checks that decide whether a run folder can continue, written once.

``--resume RUN`` continues ``RUN/checkpoints/last.ckpt`` with the same batches, schedule and
random draws as if it had never stopped; only hardware options may change. ``--extend N`` trains
N epochs more than the run has done (also after it finished or stopped early; early stopping's
patience starts afresh). :func:`plan_resume` reads the run's config and checkpoint, enforces these
rules with messages that say the fix, and returns the configuration to continue with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = ["HARDWARE_KEYS", "ResumePlan", "plan_resume", "check_new_run_options", "note_resume"]

#: Options a resumed run may change (they do not change the maths, only where and how fast it runs).
HARDWARE_KEYS = ("workers", "devices", "accelerator", "strategy", "precision", "num_nodes", "data", "minutes")


@dataclass
class ResumePlan:
    """What :func:`plan_resume` decided: the config to continue with and the checkpoint to continue from."""

    run_dir: Path
    config: Any
    checkpoint: Path
    epochs_done: int
    extend: int | None
    manifest: dict[str, Any] = field(default_factory=dict)


def check_new_run_options(*, resume: Any, extend: int | None, options: Mapping[str, Any], config: Any, set: Iterable[str]) -> None:
    """The rules of ``--resume``/``--extend`` that need no file: raised before any work starts."""
    if resume is None:
        if extend is not None:
            raise ConfigError("--extend N continues a finished run: give the run folder with --resume RUN")
        return
    if options.get("epochs") is not None:
        raise ConfigError("--epochs cannot change a resumed run; use --extend N to train N more epochs")
    if config is not None or list(set):
        raise ConfigError("--config/--set cannot change a resumed run; start a new run to change its configuration")


def plan_resume(
    run: str | os.PathLike[str],
    *,
    load_config: Callable[[Path], Any],
    with_overrides: Callable[..., Any],
    overrides: Mapping[str, Any],
    extend: int | None,
    hardware_keys: Iterable[str] = HARDWARE_KEYS,
) -> ResumePlan:
    """Check that ``run`` can continue and return its configuration with the allowed ``overrides`` applied.

    Parameters
    ----------
    run : path
        The run folder (``config.yaml`` + ``checkpoints/last.ckpt``).
    load_config : callable
        Reads the task's ``config.yaml``.
    with_overrides : callable
        ``with_overrides(cfg, **flat)``: the task config's ``from_overrides``.
    overrides : mapping
        Flat options given with ``--resume`` (``None`` values are ignored); only ``hardware_keys`` may appear.
    extend : int, optional
        Epochs to add to what the run has done.

    Raises
    ------
    ConfigError
        Not a run folder, a k-fold parent folder, no checkpoint yet, an option that would change
        the maths, or a run that already finished without ``--extend``.
    """
    import torch

    run_dir = Path(run)
    cfg_path, ckpt = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml); --resume takes the folder a training run wrote")
    cfg = load_config(cfg_path)
    train = getattr(cfg, "train", None)
    if getattr(train, "folds", 0) > 1 and not getattr(train, "fold", 0):
        raise ConfigError(f"{run_dir}: is a k-fold run; resume its folds one by one (--resume {run_dir}/fold_N)")
    if not ckpt.is_file():
        raise ConfigError(f"{run_dir}: has no checkpoints/last.ckpt (it stopped before finishing an epoch); start it again")
    given = {k: v for k, v in overrides.items() if v is not None}
    allowed = tuple(hardware_keys)
    bad = sorted(set(given) - set(allowed))
    if bad:
        raise ConfigError(
            f"a resumed run keeps its configuration; cannot change {', '.join(bad)} (only {', '.join(allowed)}). "
            "Start a new run (perhaps --config RUN/config.yaml --weights RUN/weights/best.safetensors) to change them"
        )
    cfg = with_overrides(cfg, **given)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    done = int(state.get("epoch", -1)) + 1
    callbacks = state.get("callbacks") or {}
    es = next((v for k, v in callbacks.items() if "EarlyStopping" in str(k)), {})
    stopped = bool(es.get("stopped_epoch", 0))
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    budget_stop = manifest.get("stop_reason") == "budget"
    if extend is not None:
        if extend < 1:
            raise ConfigError(f"--extend takes a positive number of epochs, got {extend}")
        cfg = with_overrides(cfg, epochs=done + extend)
    elif done >= train.epochs or stopped:
        why = "stopped early" if stopped else f"finished all {train.epochs} epochs"
        raise ConfigError(f"{run_dir}: already {why} ({done} epochs); add --extend N to train N more epochs")
    elif budget_stop and "minutes" not in given:
        raise ConfigError(
            f"{run_dir}: stopped when its time budget ran out; give a new budget (--minutes M) or --extend N epochs to continue it"
        )
    return ResumePlan(run_dir=run_dir, config=cfg, checkpoint=ckpt, epochs_done=done, extend=extend, manifest=manifest)


def note_resume(manifest: dict[str, Any], plan: ResumePlan, *, epochs: int, at: str) -> dict[str, Any]:
    """Record the resumption in ``manifest`` (kept across resumptions) and carry the earlier fit time."""
    manifest.setdefault("resumed", []).append({"from_epoch": plan.epochs_done, "extend": plan.extend, "epochs": epochs, "at": at})
    manifest.setdefault("timings", {})["fit_seconds_before"] = manifest.get("timings", {}).get("fit_seconds", 0.0)
    manifest["status"] = "running"
    return manifest


def check_same_data(manifest: Mapping[str, Any], fingerprint: str, *, data: Any, run_dir: Path) -> None:
    """Refuse to resume on data whose fingerprint differs from the one the run started on."""
    old = (manifest.get("data") or {}).get("fingerprint")
    if old and old != fingerprint:
        raise ConfigError(
            f"{data}: the data changed since {run_dir} started (its fingerprint differs from manifest.json); "
            "resuming would not continue the same run. Start a new run"
        )
