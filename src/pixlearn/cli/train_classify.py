"""``pixlearn train classify``: train a deep image classifier on a labelled folder (a run folder per run)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from pixlearn.cli.train_options import TaskHelp, TrainOptions, finish, train_command

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


HELP = TaskHelp(
    data="Labelled folder: <class>/ sub-folders, optionally under train/ val/ test/ (or a CSV).",
    model="pixlearn_smallcnn (default), alexnet, inception_v3 or any timm name.",
    epochs="Maximum epochs (default 30).",
    img_size="Square training size (default: the model's).",
    batch="Batch size per device (default 64).",
    lr="Peak learning rate (default: scaled to the batch).",
    out="Run folder (default runs/classify/<model>).",
    set_example="train.mixup_alpha=0.2",
)


def classify(
    opts: TrainOptions,
    pretrained: Annotated[Optional[bool], typer.Option("--pretrained/--no-pretrained", help="Start from published weights (downloads only when online).", show_default=False)] = None,
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
) -> None:
    """Train an image classifier; writes runs/classify/<name>/ with weights, metrics and report.html.

    Scores are measured on the test split (or a held-out part of train), never on images used
    for training or early stopping; the val split picks the best epoch.
    """
    from pixlearn.tasks.registry import task as get_task

    train_classifier = get_task("classify").load("train")

    own = {
        "pretrained": pretrained, "optimizer": optimizer, "schedule": schedule, "augment": augment, "label_smoothing": label_smoothing,
        "mixup": mixup, "cutmix": cutmix, "balance": balance, "patience": patience, "freeze_epochs": freeze_epochs,
        "devices": devices, "strategy": strategy, "accelerator": accelerator, "precision": precision,
        "num_nodes": num_nodes, "deterministic": deterministic,
    }
    opts.require_data()
    result = train_classifier(
        opts.data, config=opts.config, out=opts.out, resume=opts.resume, extend=opts.extend, set=opts.set_ or (), progress=opts.progress,
        **opts.flat(), **{k: v for k, v in own.items() if v is not None},
    )
    finish(result, opts, _summary)


def register(app: typer.Typer) -> None:
    """Add ``classify`` to the ``train`` group."""
    train_command(app, "classify", HELP)(classify)
