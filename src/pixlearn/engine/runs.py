"""The run folder: its name, atomic file writes, the manifest (versions, seed, data, git commit, device)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import uuid
from importlib import metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_FILES",
    "atomic_write_text",
    "write_json",
    "default_run_dir",
    "env_rank",
    "git_commit",
    "package_versions",
    "base_manifest",
    "write_folds_report",
]

#: What a finished single (not k-fold) classification run folder holds.
RUN_FILES = (
    "config.yaml",
    "manifest.json",
    "metrics.csv",
    "metrics.json",
    "weights/best.safetensors",
    "weights/model.json",
    "checkpoints/last.ckpt",
    "report.html",
)

_PACKAGES = ("torch", "torchvision", "lightning", "timm", "torchmetrics", "safetensors", "numpy", "pillow", "scikit-learn", "pydantic")


def temp_path(path: Path) -> Path:
    """A unique temporary name beside ``path`` (created by the caller with the process umask)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def env_rank() -> int:
    """This process's rank as set by a DDP launcher (torchrun, SLURM, Lightning's own): 0 when not launched by one.

    Before a Trainer exists this is the only way to tell: a non-zero rank must not write the run folder.
    """
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


def default_run_dir(task: str, name: str, *, base: Path | None = None) -> Path:
    """``runs/<task>/<name>``, or ``<name>-2``, ``-3``... when taken.

    In a process started by a DDP launcher (rank > 0) this returns the newest existing folder
    of the sequence instead: rank 0 created it before launching the other ranks.
    """
    root = (base or Path("runs")) / task
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "run"
    candidates = [root / safe]
    k = 2
    while candidates[-1].exists():
        candidates.append(root / f"{safe}-{k}")
        k += 1
    if env_rank() > 0 and len(candidates) > 1:
        return candidates[-2]
    return candidates[-1]


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the git checkout holding ``start`` (or the current folder), with ``+dirty`` when modified; None outside git."""
    cwd = str(start or Path.cwd())
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _pixlearn_version() -> str:
    from pixlearn import __version__

    return __version__


def base_manifest(*, seed: int) -> dict[str, Any]:
    """Versions, platform, time, seed and the pixlearn checkout's git commit."""
    return {
        "pixlearn": _pixlearn_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "cwd_git_commit": git_commit(),
        "argv": list(sys.argv),
    }


def write_folds_report(run_dir: Path, metrics: dict[str, Any], *, title: str, details: dict[str, Any],
                       head_rows: Sequence[dict[str, Any]] = ()) -> None:
    """The k-fold summary page: the k-fold verdict against the baselines (``metrics["verdict"]``, when there is one),
    every metric's mean ± std (a table and a line each), the splits (``head_rows`` first), and a link to each fold's
    own report."""
    from pixlearn.engine.report import write_run_report

    cv = metrics["cv"]
    rows = [{"split": f"fold {f['fold']}: its val part", "images": None, "source": f"fold_{f['fold']}/ (full report: fold_{f['fold']}/report.html)",
             "used_for": f"early stopping of fold {f['fold']}; best epoch {f['best_epoch']}; stopped: {f['stop_reason']}"}
            for f in metrics["folds"]]
    notes = [f"{name}: {v['mean']:.4f} ± {v['std']:.4f} over {cv['folds']} folds ({metrics.get('split')} split)" for name, v in cv["metrics"].items()]
    write_run_report(run_dir / "report.html", title=title, scores=[], splits=[*head_rows, *rows], details=details, cv=cv,
                     notes=notes + ["Each fold has its own full report, weights and checkpoint in its fold_N folder."],
                     verdict=metrics.get("verdict"))
