"""The run report kit every task shares: one page head (title, notes, details, split provenance), score tables,
the k-fold summary and one finish (inline plots, atomic write); a self-contained HTML page that names the split of
every number."""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


__all__ = ["write_run_report", "report_head", "report_finish", "verdict_html"]

def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return html.escape(str(value))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.plots img{max-width:32rem;margin:.5rem 1rem .5rem 0;border:1px solid #eee}
.muted{color:#666}
"""


_EXTRA_CSS = """
figure{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}
figure img{max-width:34rem;border:1px solid #eee}figcaption{font-size:.85rem;color:#444;max-width:34rem}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .8rem;max-width:60rem}
.verdict{padding:.5rem .8rem;max-width:60rem;font-weight:600}
.verdict.beats{background:#e8f5e9;border-left:4px solid #2e7d32}
.verdict.warning{background:#fdecea;border-left:4px solid #c62828}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v) if not isinstance(v, str) else _esc(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_run_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    scores: Sequence[Mapping[str, Any]],
    splits: Sequence[Mapping[str, Any]] = (),
    details: Mapping[str, Any] | None = None,
    plots: Sequence[tuple[str | os.PathLike[str], str]] = (),
    cv: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    headline: Sequence[str] = (),
    verdict: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.html``: details, where each split came from, scores per split, per-class table, plots.

    Parameters
    ----------
    path : path
        Output file.
    title : str
    scores : sequence of metrics dicts
        :func:`~pixlearn.tasks.classify.metrics.classification_metrics` results, each with a
        ``"split"`` key (and optionally ``"note"``); the first is the headline (the test split)
        and gets the per-class table.
    splits : sequence of dict
        ``{"split", "images", "source", "used_for"}`` rows: the provenance of every number.
    details : mapping, optional
        Key/value rows (model, data, epochs, device...).
    plots : sequence of (path, caption)
        PNG files embedded inline; each caption should name its split.
    cv : mapping, optional
        k-fold summary: ``{"folds": k, "metrics": {name: {"mean", "std", "per_fold"}}, "split": ...}``.
    notes : sequence of str
        Highlighted remarks (e.g. "no test split: scores are on val").
    headline : sequence of str
        The metrics of the score table, in order (a task's headline metrics); by default every numeric entry of
        the first scores dict except ``n``.
    verdict : mapping, optional
        :meth:`pixlearn.engine.verdict.Verdict.to_dict`: the model against its baselines, shown first, in words
        (a warning when it does not beat them) and as a table.

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile
    >>> m = {"accuracy": 2 / 3, "n": 3, "split": "test"}
    >>> p = write_run_report(Path(tempfile.mkdtemp()) / "r.html", title="demo", scores=[m])
    >>> "accuracy (test)" in p.read_text()
    True
    """
    parts = report_head(title, notes=notes, details=details, splits=splits, verdict=verdict)
    if scores and not headline:
        headline = [k for k, v in scores[0].items() if k != "n" and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if scores:
        parts.append("<h2>Scores</h2><p>Each column is measured on the split named in its header.</p>")
        header = ["metric"] + [f"{s.get('split', '?')} ({_fmt(s.get('n'))} images)" for s in scores]
        rows = []
        for key in headline:
            if any(key in s for s in scores):
                rows.append([f"{key}"] + [s.get(key) for s in scores])
        parts.append(_table(header, rows))
        for s in scores:
            if s.get("note"):
                parts.append(f"<p class='muted'>{_esc(s['split'])}: {_esc(s['note'])}</p>")
        head = scores[0]
        split = head.get("split", "?")
        # a compact "metric (split)" list for readers and tools that grep the report
        parts.append("<p class='muted'>" + "; ".join(f"{k} ({_esc(split)}) = {_fmt(head[k])}" for k in headline if k in head) + "</p>")
        per_class = head.get("per_class") or {}
        if per_class:
            parts.append(f"<h2>Per class ({_esc(split)} split)</h2>")
            parts.append(
                _table(
                    ["class", "precision", "recall", "f1", "support"],
                    [(str(c), r.get("precision"), r.get("recall"), r.get("f1"), r.get("support")) for c, r in per_class.items()],
                )
            )
    if cv:
        k = cv.get("folds")
        parts.append(f"<h2>Cross-validation ({_esc(k)} folds, {_esc(cv.get('split', ''))})</h2>")
        rows = []
        for name, v in (cv.get("metrics") or {}).items():
            per = ", ".join(_fmt(x) for x in v.get("per_fold", []))
            rows.append((str(name), f"{_fmt(v.get('mean'))} ± {_fmt(v.get('std'))}", per))
        parts.append(_table(["metric", "mean ± std", "per fold"], rows))
    return report_finish(path, parts, plots)


def verdict_html(verdict: Mapping[str, Any]) -> list[str]:
    """HTML parts of a verdict (:meth:`~pixlearn.engine.verdict.Verdict.to_dict`): its sentence, then the model and
    each baseline on the same split with the model's lead (positive: the model is better).

    Examples
    --------
    >>> from pixlearn.engine.verdict import Verdict
    >>> v = Verdict("accuracy", "test", 0.5, {"the majority class (a)": 0.8}, n=10).to_dict()
    >>> "class='verdict warning'" in "".join(verdict_html(v))
    True
    """
    kind = "beats" if verdict.get("beats") else "warning"
    split, unit, digits = verdict.get("split", "?"), str(verdict.get("unit", "")), int(verdict.get("digits", 3))

    def num(value: Any, sign: str = "") -> str:
        return "-" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:{sign}.{digits}f}{unit}"

    outcome = {"beats": "beaten", "tie": "not clearly beaten (within the margin)", "worse": "not beaten"}
    rows = [("the model", num(verdict.get("model_value")), "", "")]
    rows += [(str(b.get("name")), num(b.get("value")), num(b.get("difference"), "+"), outcome.get(str(b.get("outcome")), str(b.get("outcome"))))
             for b in verdict.get("baselines") or []]
    n = verdict.get("n")
    return [
        f"<p class='verdict {kind}'>{_esc(verdict.get('sentence', ''))}</p>",
        f"<h2>Against the baselines ({_esc(split)} split{f', {_esc(n)} images' if n is not None else ''})</h2>",
        _table([f"{verdict.get('metric', 'score')} ({split})", "value", "model's lead", "baseline"], rows),
    ]


def report_head(
    title: str, *, notes: Sequence[str] = (), details: Mapping[str, Any] | None = None,
    splits: Sequence[Mapping[str, Any]] = (), verdict: Mapping[str, Any] | None = None,
) -> list[str]:
    """The opening HTML parts every run report shares: title, the verdict against the baselines, notes, details and
    where every split came from."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if verdict:
        parts += verdict_html(verdict)
    parts += [f"<p class='note'>{_esc(note)}</p>" for note in notes]
    if details:
        parts.append(_table(["setting", "value"], [(str(k), v if isinstance(v, (int, float)) or v is None else str(v)) for k, v in details.items()]))
    if splits:
        parts.append("<h2>Where every number comes from</h2>")
        parts.append(
            _table(
                ["split", "images", "source", "used for"],
                [(str(s.get("split")), s.get("images"), str(s.get("source", "")), str(s.get("used_for", ""))) for s in splits],
            )
        )
    return parts


def report_finish(path: str | os.PathLike[str], parts: list[str], plots: Sequence[tuple[str | os.PathLike[str], str]] = ()) -> Path:
    """Embed ``plots`` (PNG files, inline), close the page and write it atomically to ``path``."""
    shown = [(Path(p), cap) for p, cap in plots if Path(p).is_file()]
    if shown:
        parts.append("<h2>Plots</h2><div class='plots'>")
        for p, cap in shown:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{_esc(p.stem)}' src='data:image/png;base64,{data}'><figcaption>{_esc(cap)}</figcaption></figure>")
        parts.append("</div>")
    parts.append("<p class='muted'>generated by pixlearn</p></body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, out)
    return out
