"""``pixlearn train classify``: train a deep image classifier on a labelled folder (a run folder per run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["classify", "register"]

_HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top5_accuracy", "roc_auc_macro")


def _summary(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric with a column per split (the split every number comes from)."""
    if metrics.get("kind") == "k-fold":
        cv = metrics["cv"]
        return [{"metric": name, "mean": v["mean"], "std": v["std"], "folds": cv["folds"]} for name, v in cv["metrics"].items()]
    head = metrics.get("split", "test")
    val = metrics.get("val") or {}
    rows = []
    for key in _HEADLINE:
        if key in metrics:
            row: dict[str, Any] = {"metric": key, f"{head} (n={metrics.get('n')})": metrics[key]}
            if val:
                row[f"val (n={val.get('n')}, chose the epoch)"] = val.get(key)
            rows.append(row)
    return rows


def classify(
    data: Annotated[Optional[Path], typer.Option("--data", help="Labelled folder: <class>/ sub-folders, optionally under train/ val/ test/ (or a CSV).", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="pixlearn_smallcnn (default), alexnet, inception_v3 or any timm name.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs (default 30).", min=1, show_default=False)] = None,
    img_size: Annotated[Optional[int], typer.Option("--img-size", help="Square training size (default: the model's).", min=4, show_default=False)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Batch size per device (default 64).", min=1, show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (default: scaled to the batch).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (sections data, model, optim, schedule, train); flags override it.", show_default=False)] = None,
    folds: Annotated[Optional[int], typer.Option("--folds", help="k-fold cross-validation: report mean ± std per metric.", min=0, show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/classify/<model>).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the split, initialisation, order and augmentation (default 0).", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Data-loading worker processes (default 0).", min=0, show_default=False)] = None,
    pretrained: Annotated[Optional[bool], typer.Option("--pretrained/--no-pretrained", help="Start from published weights (downloads only when online).", show_default=False)] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Start from a local .safetensors / .pt file.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue RUN from its checkpoints/last.ckpt.", show_default=False)] = None,
    extend: Annotated[Optional[int], typer.Option("--extend", help="With --resume: train N more epochs.", min=1, show_default=False)] = None,
    find_lr: Annotated[Optional[bool], typer.Option("--find-lr/--no-find-lr", help="Run the LR finder first and train with its suggestion.", show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="adamw or sgd.", show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="cosine, onecycle, step, plateau or constant.", show_default=False)] = None,
    augment: Annotated[Optional[str], typer.Option("--augment", help="none, light, standard, strong, or a YAML file.", show_default=False)] = None,
    label_smoothing: Annotated[Optional[float], typer.Option("--label-smoothing", help="Label smoothing (default 0.1).", show_default=False)] = None,
    mixup: Annotated[Optional[float], typer.Option("--mixup", help="Mixup alpha (0: off).", show_default=False)] = None,
    cutmix: Annotated[Optional[float], typer.Option("--cutmix", help="CutMix alpha (0: off).", show_default=False)] = None,
    balance: Annotated[Optional[str], typer.Option("--balance", help="Imbalance: none, loss (class weights) or sampler.", show_default=False)] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Early-stopping patience in epochs (0: off; default 10).", min=0, show_default=False)] = None,
    freeze_epochs: Annotated[Optional[int], typer.Option("--freeze-epochs", help="Train only the head for N epochs, then unfreeze.", min=0, show_default=False)] = None,
    devices: Annotated[Optional[int], typer.Option("--devices", help="Devices (processes) per node.", min=1, show_default=False)] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="auto or ddp (one process per device; the default with --devices > 1).", show_default=False)] = None,
    accelerator: Annotated[Optional[str], typer.Option("--accelerator", help="auto, cpu or gpu.", show_default=False)] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="auto (bf16 on GPU, fp32 on CPU), 32, bf16 or 16.", show_default=False)] = None,
    num_nodes: Annotated[Optional[int], typer.Option("--num-nodes", help="Nodes for multi-node DDP.", min=1, show_default=False)] = None,
    deterministic: Annotated[Optional[bool], typer.Option("--deterministic/--no-deterministic", help="Deterministic algorithms.", show_default=False)] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config field: --set train.mixup_alpha=0.2 (repeatable).", show_default=False)] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output: table, json (the whole metrics.json) or csv.")] = OutputFormat.table,
) -> None:
    """Train an image classifier; writes runs/classify/<name>/ with weights, metrics and report.html.

    Scores are measured on the test split (or a held-out part of train), never on images used
    for training or early stopping; the val split picks the best epoch.
    """
    from pixlearn.train.classify import train_classifier

    options = {
        "model": model, "epochs": epochs, "img_size": img_size, "batch": batch, "lr": lr, "folds": folds, "seed": seed,
        "workers": workers, "pretrained": pretrained, "weights": str(weights) if weights else None, "find_lr": find_lr,
        "optimizer": optimizer, "schedule": schedule, "augment": augment, "label_smoothing": label_smoothing,
        "mixup": mixup, "cutmix": cutmix, "balance": balance, "patience": patience, "freeze_epochs": freeze_epochs,
        "devices": devices, "strategy": strategy, "accelerator": accelerator, "precision": precision,
        "num_nodes": num_nodes, "deterministic": deterministic,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if data is None and config is None and resume is None:
        raise typer.BadParameter("give --data DIR (or --config FILE naming data.path, or --resume RUN)", param_hint="--data")
    result = train_classifier(
        data, config=config, out=out, resume=resume, extend=extend, set=set_ or (), progress=progress, **options,
    )
    if result.metrics is None:  # a DDP process other than rank 0
        return
    if format is OutputFormat.json:
        emit(result.metrics, format)
    else:
        emit(_summary(result.metrics), format)
    extra = f" (stopped early at epoch {result.epochs_run})" if result.stopped_early else ""
    sys.stderr.write(f"run folder: {result.run_dir}{extra}; report: {result.run_dir / 'report.html'}\n")


def register(app: typer.Typer) -> None:
    """Add ``classify`` to the ``train`` group."""
    app.command("classify")(classify)
