"""``pixlearn eval RUN --data DIR``: score a trained run folder on a labelled dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["evaluate", "register"]

_HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top5_accuracy", "roc_auc_macro")


def evaluate(
    run: Annotated[Path, typer.Argument(help="A classification run folder.", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="Labelled dataset to score on (classes matched by name).", show_default=False)],
    split: Annotated[str, typer.Option("--split", help="auto, test, val, train, holdout (the run's own held-out part) or all.")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write metrics.json, plots/ and report.html here.", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output: table, json (every metric) or csv.")] = OutputFormat.table,
    batch: Annotated[int, typer.Option("--batch", help="Images per batch.", min=1)] = 64,
    workers: Annotated[int, typer.Option("--workers", help="Decoding worker processes.", min=0)] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr.", show_default=False)] = None,
) -> None:
    """Score RUN's model on DIR: accuracy, F1, ROC AUC... naming the split the numbers come from.

    With --split auto: DIR's test split if it has one; the run's own held-out images when DIR is
    the data it was trained on; otherwise every image of DIR.
    """
    from pixlearn.eval.classify_eval import evaluate_run

    result = evaluate_run(run, data, split=split, out=out, batch_size=batch, workers=workers, device=device, progress=progress)
    if format is OutputFormat.json:
        emit(result, format)
    else:
        row: list[dict[str, Any]] = [{"metric": k, f"{result['split']} (n={result['n']})": result[k]} for k in _HEADLINE if k in result]
        emit(row, format)
    sys.stderr.write(f"scored on: {result['source']}" + (f"; {result['skipped']} unreadable image(s) left out" if result.get("skipped") else "") + "\n")
    if out is not None:
        sys.stderr.write(f"report: {Path(out) / 'report.html'}\n")


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
