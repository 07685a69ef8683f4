"""A segmentation run's ``report.html``: the verdict against the best classical segmenter, scores per split, per-class
IoU/Dice and the classical baselines, on the engine's shared page head and finish (:mod:`pixlearn.engine.report`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixlearn.tasks.segment.metrics import HEADLINE_SEGMENTATION

__all__ = ["write_segment_report"]


def write_segment_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    scores: Sequence[Mapping[str, Any]],
    splits: Sequence[Mapping[str, Any]] = (),
    details: Mapping[str, Any] | None = None,
    plots: Sequence[tuple[str | os.PathLike[str], str]] = (),
    baselines: Sequence[Mapping[str, Any]] = (),
    notes: Sequence[str] = (),
    verdict: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.html``: details, the provenance of every split, scores per split, per-class IoU/Dice, plots.

    ``scores`` are :func:`~pixlearn.tasks.segment.metrics.scores_from_confusion` dicts with a
    ``"split"`` key; the first gets the per-class table. ``baselines`` are classical segmenters'
    results (:func:`~pixlearn.tasks.segment.classic.evaluate_classic_segmentation` or
    :func:`~pixlearn.tasks.segment.evaluate.classic_baselines`) on the same split; ``verdict``
    (:meth:`~pixlearn.engine.verdict.Verdict.to_dict`) opens the page: the network against the best of them, in words.
    """
    from pixlearn.engine.report import _esc, _fmt, _table, report_finish, report_head

    parts = report_head(title, notes=notes, details=details, splits=splits, verdict=verdict)
    if scores:
        parts.append("<h2>Scores</h2><p>Each column is measured on the split named in its header; IoU and Dice from one confusion matrix over all its pixels.</p>")
        header = ["metric"] + [f"{s.get('split', '?')} ({_fmt(s.get('n'))} images)" for s in scores]
        rows = [[k] + [s.get(k) for s in scores] for k in HEADLINE_SEGMENTATION if any(s.get(k) is not None for s in scores)]
        parts.append(_table(header, rows))
        head = scores[0]
        parts.append("<p class='muted'>" + "; ".join(f"{k} ({_esc(head.get('split'))}) = {_fmt(head.get(k))}" for k in HEADLINE_SEGMENTATION if head.get(k) is not None) + "</p>")
        per = head.get("per_class") or {}
        if per:
            parts.append(f"<h2>Per class ({_esc(head.get('split'))} split)</h2>")
            parts.append(_table(["class", "IoU", "Dice", "precision", "recall", "true pixels", "predicted pixels"],
                                [(str(c), r.get("iou"), r.get("dice"), r.get("precision"), r.get("recall"), r.get("true_pixels"), r.get("predicted_pixels"))
                                 for c, r in per.items()]))
    if baselines:
        parts.append("<h2>Classical baselines on the same images</h2><p>Each is fitted on train images (category -> class map, options) and scored on the split named.</p>")
        parts.append(_table(["method", "split", "mean IoU", "mean Dice", "pixel accuracy", "fit seconds", "options"],
                            [(str(b.get("method")), str(b.get("split")), b.get("mean_iou"), b.get("mean_dice"), b.get("pixel_accuracy"),
                              b.get("fit_seconds"), str(b.get("params"))) for b in baselines]))
    return report_finish(path, parts, plots)
