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
from pixlearn.cli.train_options import TaskHelp, TrainOptions, finish, train_command

__all__ = ["register", "generic_train_command", "TRAIN_HELP"]

TRAIN_HELP = "Train a model on a labelled folder; each run writes a run folder."


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
    verdict = result.metrics.get("verdict")
    if isinstance(verdict, dict) and verdict.get("sentence"):  # against chance and the majority class, in words
        sys.stderr.write(f"{verdict['sentence']}\n")
    sys.stderr.write(f"run folder: {result.run_dir}\n")


def _generic_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary of a task without its own CLI module: k-fold means, else every number of metrics.json's top level."""
    if metrics.get("kind") == "k-fold":
        cv = metrics["cv"]
        return [{"metric": name, "mean": v["mean"], "std": v["std"], "folds": cv["folds"]} for name, v in cv["metrics"].items()]
    split = metrics.get("split", "test")
    skip = {"fit_seconds", "eval_seconds", "best_epoch", "epochs_run"}
    return [{"metric": k, split: v} for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in skip]


def generic_train_command(app: typer.Typer, spec: Any) -> None:
    """``train NAME`` for a registered task without a ``pixlearn.cli.train_NAME`` module: the shared options only
    (``--set`` reaches every config field)."""
    help = TaskHelp(data=f"The {spec.name} dataset folder.", model=f"The {spec.name} model (see its config).",
                    out=f"Run folder (default runs/{spec.name}/<model>).")

    def command(opts: TrainOptions) -> None:
        opts.require_data()
        result = spec.load("train")(opts.data, config=opts.config, out=opts.out, resume=opts.resume, extend=opts.extend,
                                    set=opts.set_ or (), progress=opts.progress, **opts.flat())
        finish(result, opts, _generic_rows)

    command.__doc__ = f"{spec.summary}\n\nWrites runs/{spec.name}/<name>/ with weights, metrics and report.html."
    train_command(app, spec.name, help)(command)


def register(app: typer.Typer) -> None:
    """One ``train NAME`` per registered task (its ``pixlearn.cli.train_NAME`` module when it has its own options, else
    :func:`generic_train_command`), then ``train classic``."""
    import importlib.util
    from importlib import import_module

    from pixlearn.tasks.registry import tasks

    train_app = new_app(TRAIN_HELP)
    train_app.command("classic")(classic)
    for name, spec in tasks().items():
        module = f"pixlearn.cli.train_{name}"
        if importlib.util.find_spec(module) is not None:
            import_module(module).register(train_app)
        else:
            generic_train_command(train_app, spec)
    app.add_typer(train_app, name="train")
