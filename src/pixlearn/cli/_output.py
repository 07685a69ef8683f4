"""Where command output goes: rows as JSON, CSV or an aligned table on stdout (messages go to stderr),
and the one rule for output paths given with ``-o``/``--out`` (:func:`output_file`, :func:`output_dir`).

Output paths, checked before any work: a command creates the output folder it was asked for
(``-o runs/x``, ``-o /tmp/x``) and missing folders above an output only inside the current folder.
Elsewhere (``-o /missing/dir/x.png``) it stops with an error that names the first missing folder and
the ``mkdir -p`` to run, so a typo never creates folders at the file system root.
"""

from __future__ import annotations

import csv
import enum
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["OutputFormat", "emit", "output_file", "output_dir"]


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def emit(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any], fmt: OutputFormat | str, *, columns: Sequence[str] | None = None) -> None:
    """Print ``rows`` (a list of dicts, or one dict shown as key/value pairs) in ``fmt``."""
    fmt = OutputFormat(fmt)
    out = sys.stdout
    if isinstance(rows, Mapping):
        if fmt is OutputFormat.json:
            json.dump(rows, out, indent=2, default=str)
            out.write("\n")
            return
        rows = [{"key": k, "value": v} for k, v in _flatten(rows)]
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt is OutputFormat.json:
        json.dump(list(rows), out, indent=2, default=str)
        out.write("\n")
    elif fmt is OutputFormat.csv:
        writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})
    else:
        cells = [[_cell(row.get(c)) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        for r in cells:
            out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            items.extend(_flatten(v, key + "."))
        else:
            items.append((key, v))
    return items


# ---------------------------------------------------------------- output paths
def _first_missing(folder: Path) -> Path | None:
    """The highest missing folder on the way to ``folder`` (``None``: it exists)."""
    missing = None
    for p in (folder, *folder.parents):
        if p.exists():
            break
        missing = p
    return missing


def _inside_cwd(path: Path) -> bool:
    cwd = Path.cwd().resolve()
    try:
        Path(os.path.abspath(path)).resolve().relative_to(cwd)
    except ValueError:
        return False
    return True


def _check(folder: Path, *, option: str, allowed_missing: Path | None) -> None:
    from pixlearn._core.errors import ConfigError

    missing = _first_missing(folder)
    if missing is None:
        if not folder.is_dir():
            raise ConfigError(f"{option} {folder}: exists and is not a folder; choose another path")
        return
    if missing != allowed_missing and not _inside_cwd(missing):
        raise ConfigError(
            f"{option}: the folder {missing} does not exist; create it first (mkdir -p {folder}) -- "
            "pixlearn creates missing folders only inside the current folder"
        )


def output_file(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check a file given with ``-o`` before any work: its folder exists, or lies inside the current
    folder (the writer creates it there).

    Raises :class:`~pixlearn.ConfigError` naming the first missing folder otherwise, or when
    ``path`` is a folder. Nothing is created here.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> output_file(d / "x.png") == d / "x.png"
    True
    """
    from pixlearn._core.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name (e.g. {path / 'out.png'})")
    _check(path.parent, option=option, allowed_missing=None)
    return path


def output_dir(path: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check a folder given with ``-o`` before any work: the command may create the folder itself
    when its parent exists; missing folders above it only inside the current folder.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> output_dir(d / "run") == d / "run"
    True
    >>> output_dir("/no-such-root-folder/run")
    Traceback (most recent call last):
    pixlearn._core.errors.ConfigError: --out: the folder /no-such-root-folder does not exist; create it first (mkdir -p /no-such-root-folder/run) -- pixlearn creates missing folders only inside the current folder
    """
    path = Path(path)
    _check(path, option=option, allowed_missing=path)
    return path
