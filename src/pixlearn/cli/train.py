"""``pixlearn train ...``: train models on a labelled folder (``train classify``, ``train classic``)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._group import new_app
from pixlearn.cli._output import OutputFormat, emit
from pixlearn.cli._options import AllowOutsideRoot

__all__ = ["train_app", "register"]

train_app = new_app("Train a model on a labelled folder; each run writes a run folder.")


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    cv = metrics.get("cv") or {}
    row: dict[str, Any] = {"split": metrics.get("split"), "n": metrics.get("n")}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top5_accuracy", "roc_auc_macro"):
        if key in metrics:
            row[key] = metrics[key]
    if cv.get("folds"):
        row[f"cv_accuracy ({cv['folds']}-fold)"] = f"{cv['accuracy_mean']:.4f} ± {cv['accuracy_std']:.4f}"
        row[f"cv_macro_f1 ({cv['folds']}-fold)"] = f"{cv['macro_f1_mean']:.4f} ± {cv['macro_f1_std']:.4f}"
    row["fit_seconds"] = metrics.get("fit_seconds")
    return row


@train_app.command("classic")
def classic(
    data: Annotated[Path, typer.Option("--data", help="Labelled folder: <class>/ folders, optionally under train/ val/ test/.", show_default=False)],
    features: Annotated[str, typer.Option("--features", help="Feature set: hog, lbp, color_hist or hog+color.")] = "hog",
    model: Annotated[str, typer.Option("--model", help="Classifier: svm, random_forest (rf) or knn.")] = "svm",
    img_size: Annotated[int, typer.Option("--img-size", help="Images are resized to this square size first.")] = 64,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds on the training part (0 skips).")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the hold-out split, folds and forest.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default: runs/classic/<features>-<model>).", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes for features, cross-validation and the forest.")] = 1,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format (json prints the whole metrics.json).")] = OutputFormat.table,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Train HOG / LBP / colour-histogram features + SVM, random forest or k-NN.

    The score printed is measured on the val (else test) split, or on a seeded
    20% hold-out when the folder has no splits; never on training images.
    """
    from pixlearn.classic import train_classic

    if out is not None:
        from pixlearn.cli._output import output_dir

        output_dir(out)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="skipped .* unreadable", category=UserWarning)
        result = train_classic(
            data, features=features, model=model, img_size=img_size, folds=folds, seed=seed,
            out=out, workers=workers,
        )
    if result.skipped:
        sys.stderr.write(f"skipped {len(result.skipped)} unreadable image(s); listed in manifest.json\n")
    if format is OutputFormat.json:
        emit(result.metrics, format)
    else:
        emit(_summary(result.metrics), format)
    sys.stderr.write(f"run folder: {result.run_dir}\n")


def register(app: typer.Typer) -> None:
    from pixlearn.cli import train_classify as _classify

    _classify.register(train_app)
    from pixlearn.cli import train_segment as _segment

    _segment.register(train_app)
    from pixlearn.cli import train_restore as _restore

    _restore.register(train_app)
    app.add_typer(train_app, name="train")
