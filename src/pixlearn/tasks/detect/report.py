"""A detection run's ``report.html``: COCO scores per split, per-class AP, the confusion matrix with background, the
worst misses and the highest-scoring false positives, and drawn predictions beside the truth -- on the engine's shared
page head and finish (:mod:`pixlearn.engine.report`), every number with the split it was measured on."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixlearn.tasks.detect.evaluate import DetectEvaluation
from pixlearn.tasks.detect.metrics import HEADLINE_DETECTION, MASK_HEADLINE_DETECTION

__all__ = ["write_detect_report", "detect_plots", "SCORE_LABELS"]

#: How the report names each score (COCO's own wording).
SCORE_LABELS = {
    "map": "AP @[IoU .50:.95]", "map50": "AP50", "map75": "AP75", "map_small": "AP small (< 32² px)",
    "map_medium": "AP medium", "map_large": "AP large (> 96² px)", "mar_1": "AR @1 detection", "mar_10": "AR @10",
    "mar_100": "AR @100", "mar_small": "AR small", "mar_medium": "AR medium", "mar_large": "AR large",
}
_ROWS = (*HEADLINE_DETECTION, "mar_100")
_LISTED = 15


def _label(key: str) -> str:
    if key.startswith("mask_"):
        return "mask " + SCORE_LABELS.get(key[5:], key[5:])
    return "box " + SCORE_LABELS.get(key, key)


def detect_plots(out_dir: str | os.PathLike[str], evaluation: DetectEvaluation) -> list[tuple[Path, str]]:
    """Write the figures of one evaluation under ``out_dir/plots/`` and return ``(path, caption)`` pairs."""
    from pixlearn.tasks.detect.plots import plot_confusion_matrix, plot_crops, plot_examples, plot_per_class_ap, plot_pr_curves

    ev, m, split = evaluation, evaluation.metrics, evaluation.split
    folder = Path(out_dir) / "plots"
    thr = f"score >= {ev.score_threshold:g}"
    shown: list[tuple[Path, str]] = []
    if m.get("pr_curves"):
        shown.append((plot_pr_curves(m, folder / f"pr_curves_{split}.png", split=split),
                      f"{split} split: box precision-recall per class at IoU 0.5 and averaged over IoU 0.5:0.95 (pycocotools' curves)"))
    if ev.masks and m.get("mask_pr_curves"):
        shown.append((plot_pr_curves(m, folder / f"mask_pr_curves_{split}.png", split=split, prefix="mask_"),
                      f"{split} split: mask precision-recall per class"))
    shown.append((plot_per_class_ap(m, folder / f"per_class_ap_{split}.png", split=split), f"{split} split: box AP50 and AP per class"))
    if ev.confusion:
        shown.append((plot_confusion_matrix(ev.confusion, folder / f"confusion_{split}.png", split=split),
                      f"{split} split: detections at {thr} matched to truths at IoU >= {ev.confusion.get('iou_threshold')}; "
                      "background row: spurious detections, background column: missed truths"))
    groups = ((ev.examples, "examples", "first images"), (ev.worst_misses, "worst_misses", "images with the most missed objects"),
              (ev.false_positives, "false_positives", "images with the highest-scoring false positives"))
    for items, stem, what in groups:
        if items:
            shown.append((plot_examples(items, folder / f"{stem}_{split}.png", split=split, title=what),
                          f"{split} split, {what}: truth left (missed objects in white), detections at {thr} right"))
    if any(it.get("miss_boxes") for it in ev.worst_misses):
        shown.append((plot_crops(ev.worst_misses, "miss_boxes", folder / f"missed_objects_{split}.png", split=split, title="missed objects"),
                      f"{split} split: close-ups of missed objects (white), with the detections at {thr} around them"))
    if any(it.get("fp_boxes") for it in ev.false_positives):
        shown.append((plot_crops(ev.false_positives, "fp_boxes", folder / f"false_positive_crops_{split}.png", split=split,
                                 title="highest-scoring false positives"),
                      f"{split} split: close-ups of the highest-scoring false positives (white), with what they hit"))
    return shown


def _scores_table(evaluations: Sequence[DetectEvaluation]) -> list[str]:
    from pixlearn.engine.report import _esc, _fmt, _table

    masks = any(e.masks for e in evaluations)
    keys = list(_ROWS) + ([f"mask_{k}" for k in _ROWS] if masks else [])
    header = ["metric"] + [f"{e.split} ({e.counts.get('images')} images, {e.counts.get('objects')} objects)" for e in evaluations]
    rows = [[_label(k)] + [e.metrics.get(k) for e in evaluations] for k in keys if any(k in e.metrics for e in evaluations)]
    head = evaluations[0]
    parts = [
        "<h2>Scores</h2><p>COCO's metrics as pycocotools computes them; each column is measured on the split named in "
        "its header. '-': nothing to average there (no object of that size in the split: COCO's -1).</p>",
        _table(header, rows),
        "<p class='muted'>" + "; ".join(f"{k} ({_esc(head.split)}) = {_fmt(head.metrics.get(k))}"
                                        for k in (*HEADLINE_DETECTION, *(MASK_HEADLINE_DETECTION if head.masks else ()))) + "</p>",
    ]
    for e in evaluations:
        if e.counts.get("skipped"):
            parts.append(f"<p class='note'>{_esc(e.split)}: {e.counts['skipped']} unreadable image(s) left out of these scores.</p>")
        if e.metrics.get("dropped"):
            parts.append(f"<p class='muted'>{_esc(e.split)}: {e.metrics['dropped']} detection(s) of classes the data does not have were not scored.</p>")
    return parts


def _per_class(ev: DetectEvaluation) -> list[str]:
    from pixlearn.engine.report import _esc, _table

    m = ev.metrics
    per, per50, counts = m.get("per_class") or {}, m.get("per_class50") or {}, m.get("per_class_objects") or {}
    if not per:
        return []
    header = ["class", f"truth objects ({ev.split})", f"box AP ({ev.split})", f"box AP50 ({ev.split})"]
    if ev.masks:
        header += [f"mask AP ({ev.split})", f"mask AP50 ({ev.split})"]
    rows = []
    for name in per:
        row = [str(name), counts.get(name), per.get(name), per50.get(name)]
        if ev.masks:
            row += [(m.get("mask_per_class") or {}).get(name), (m.get("mask_per_class50") or {}).get(name)]
        rows.append(row)
    rows.sort(key=lambda r: -(r[3] if isinstance(r[3], float) else -1.0))
    return [f"<h2>Per class ({_esc(ev.split)} split)</h2>", "<p class='muted'>'-': no truth object of the class in this split.</p>",
            _table(header, rows)]


def _confusion(ev: DetectEvaluation) -> list[str]:
    from pixlearn.engine.report import _esc, _table

    cm = ev.confusion
    labels = cm.get("labels") or []
    if not labels or len(labels) > 16:
        return []
    rows = [[f"true {labels[r]}"] + list(row) for r, row in enumerate(cm.get("matrix") or [])]
    return [f"<h2>Confusion matrix ({_esc(ev.split)} split)</h2>",
            f"<p>Detections scoring at least {cm.get('score_threshold')} matched one to one with truths at IoU ≥ "
            f"{cm.get('iou_threshold')} (same-class pairs first). Background row: detections that match no object; background "
            "column: objects no detection found.</p>",
            _table(["true \\ predicted"] + [str(x) for x in labels], rows)]


def _mistakes(ev: DetectEvaluation) -> list[str]:
    from pixlearn.engine.report import _esc, _table

    misses = [(r["name"], m) for r in ev.records for m in r["misses"]]
    fps = [(r["name"], f) for r in ev.records for f in r["false_positives"]]
    parts: list[str] = []
    thr = f"{ev.score_threshold:g}"
    if misses:
        misses.sort(key=lambda x: -x[1]["area"])
        parts += [f"<h2>Worst misses ({_esc(ev.split)} split: {len(misses)} object(s) not found at score ≥ {thr}, largest first)</h2>",
                  _table(["image", "class", "box (x1, y1, x2, y2)", "area (px)", "why", f"best IoU at score ≥ {thr}",
                          "best score of a same-class detection at IoU ≥ 0.5"],
                         [(name, m["class_name"], str(m["box"]), m["area"],
                           "missed" if m["kind"] == "missed" else f"taken for {m['predicted_as']}", m["best_iou"], m["best_score"])
                          for name, m in misses[:_LISTED]])]
    if fps:
        fps.sort(key=lambda x: -x[1]["score"])
        parts += [f"<h2>Highest-scoring false positives ({_esc(ev.split)} split: {len(fps)} at score ≥ {thr})</h2>",
                  _table(["image", "predicted class", "score", "box (x1, y1, x2, y2)", "what it hit", "best IoU with a truth"],
                         [(name, f["class_name"], f["score"], str(f["box"]),
                           "background" if f["kind"] == "background" else f"a {f['true_class']}", f["iou"])
                          for name, f in fps[:_LISTED]])]
    return parts


def write_detect_report(
    run_dir: str | os.PathLike[str],
    evaluation: DetectEvaluation,
    *,
    title: str | None = None,
    more: Sequence[DetectEvaluation] = (),
    splits: Sequence[Mapping[str, Any]] = (),
    details: Mapping[str, Any] | None = None,
    plots: Sequence[tuple[str | os.PathLike[str], str]] = (),
    notes: Sequence[str] = (),
    verdict: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/report.html`` (and its figures under ``run_dir/plots/``) for a detection evaluation.

    Parameters
    ----------
    run_dir : path
        The run (or ``--out``) folder.
    evaluation : DetectEvaluation
        The headline split (the test split of a run): its per-class table, confusion matrix, mistakes and figures.
    title : str, optional
        Default: ``detection report: <folder name>``.
    more : sequence of DetectEvaluation
        Other splits, shown as further columns of the score table.
    splits : sequence of dict
        ``{"split", "images", "source", "used_for"}``: where every split came from (default: the evaluations' own).
    details : mapping, optional
        Key/value rows (model, data, epochs...).
    plots : sequence of (path, caption)
        Further figures (e.g. training curves), shown after the evaluation's.
    notes, verdict
        As :func:`pixlearn.engine.report.report_head`.

    Returns
    -------
    Path
        The report.
    """
    from pixlearn.engine.report import report_finish, report_head

    out_dir = Path(run_dir)
    evaluations = [evaluation, *more]
    if not splits:
        splits = [{"split": e.split, "images": e.counts.get("images"), "source": e.source, "used_for": "these scores"} for e in evaluations]
    parts = report_head(title or f"detection report: {out_dir.resolve().name}", notes=notes, details=details, splits=splits, verdict=verdict)
    parts += _scores_table(evaluations)
    parts += _per_class(evaluation)
    parts += _confusion(evaluation)
    parts += _mistakes(evaluation)
    shown = detect_plots(out_dir, evaluation) + [(Path(p), c) for p, c in plots]
    return report_finish(out_dir / "report.html", parts, shown)
