"""Write rows as JSON, CSV or an aligned table on stdout (messages go to stderr)."""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["OutputFormat", "emit"]


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
