"""``pixlearn train segment``: train a U-Net / U-Net++ / FPN / DeepLabV3+ on a mask dataset (a run folder per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli.train_options import TaskHelp, TrainOptions, finish, train_command

__all__ = ["segment", "register", "summary_rows"]

_HEADLINE = ("mean_iou", "mean_dice", "pixel_accuracy", "foreground_iou", "foreground_dice")


def summary_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric (headline scores, then per-class IoU) with a column per split."""
    head = metrics.get("split", "val")
    val = metrics.get("val") or {}
    rows: list[dict[str, Any]] = []

    def add(name: str, a: Any, b: Any) -> None:
        row: dict[str, Any] = {"metric": name, f"{head} (n={metrics.get('n')})": a}
        if val:
            row[f"val (n={val.get('n')})"] = b
        rows.append(row)

    for key in _HEADLINE:
        if metrics.get(key) is not None:
            add(key, metrics[key], val.get(key))
    for cls, r in (metrics.get("per_class") or {}).items():
        add(f"iou[{cls}]", r.get("iou"), ((val.get("per_class") or {}).get(cls) or {}).get("iou"))
    tta = (metrics.get("tta") or {}).get("value")
    if tta is not None:  # test-time augmentation (chosen on val): every split's masks used it
        add("tta", tta, tta)
    cut = (metrics.get("threshold") or {}).get("value")
    if cut is not None:  # a binary segmenter's decision threshold (chosen on val): every split's masks used it
        add("threshold", cut, cut)
    return rows


HELP = TaskHelp(
    data=("Mask dataset: images/ + masks/, optionally under train/ val/ test/. Masks holding only 0 and 255 are binary "
          "(0 background, 255 foreground); otherwise pixel value = class id and 255 = ignore (as in 'pixlearn data check')."),
    model="unet (default), unetplusplus, fpn or deeplabv3plus.",
    epochs="Maximum epochs (default 30).",
    img_size="Training crop size (default 256; a multiple of 32; with --minutes and no --epochs, planned from the measured speed).",
    batch="Crops per batch (default 8; planned with the crop size under --minutes).",
    lr="Peak learning rate (default 1e-3 at batch 8 for adamw).",
    weights="Start from a whole network's weights (a run's weights/best.safetensors), or the encoder from a timm classifier's .safetensors file.",
    out="Run folder (default runs/segment/<model>).",
    set_example="data.crops_per_image=4",
)


def segment(
    opts: TrainOptions,
    backbone: Annotated[Optional[str], typer.Option("--backbone", help="The encoder: tu-<timm name> or an smp encoder name (default: tu-tf_efficientnet_lite0, pretrained, when its weights are in the local weights folders; else tu-resnet18 from random weights).", show_default=False)] = None,
    pretrained: Annotated[Optional[bool], typer.Option("--pretrained/--no-pretrained", help="Start the encoder from its weights in the local weights folders ($PIXLEARN_WEIGHTS, then the cache; pixlearn weights add); nothing downloads.", show_default=False)] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="ce, dice, focal, lovasz or a sum: ce+dice (default), 0.5*focal+dice, ce+lovasz.", show_default=False)] = None,
    augment: Annotated[Optional[str], typer.Option("--augment", help="flips (default: random crop + flips), none, or a preset / YAML file applied after them.", show_default=False)] = None,
    encoder_weights: Annotated[Optional[Path], typer.Option("--encoder-weights", help="Local weights file for the backbone (nothing downloads).", show_default=False)] = None,
    binary: Annotated[Optional[bool], typer.Option("--binary/--multiclass", help="One sigmoid output for 2-class masks (default: yes for 2 classes).", show_default=False)] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Share held out for validation without a val/ split (default 0.2).", show_default=False)] = None,
    test_fraction: Annotated[Optional[float], typer.Option("--test-fraction", help="Share held out for the test score without a test/ split (default 0).", show_default=False)] = None,
    keep: Annotated[Optional[str], typer.Option("--keep", help="best (by val mean IoU, default) or last epoch's weights.", show_default=False)] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Early-stopping patience in epochs (0: off; default 10).", min=0, show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="adamw or sgd.", show_default=False)] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="cosine, onecycle, step, plateau or constant.", show_default=False)] = None,
    freeze_epochs: Annotated[Optional[int], typer.Option("--freeze-epochs", help="Train only the decoder for N epochs, then unfreeze the backbone.", min=0, show_default=False)] = None,
    accelerator: Annotated[Optional[str], typer.Option("--accelerator", help="auto, cpu or gpu.", show_default=False)] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="auto (bf16 on GPU, fp32 on CPU), 32, bf16 or 16.", show_default=False)] = None,
    devices: Annotated[Optional[int], typer.Option("--devices", help="Devices (processes) per node.", min=1, show_default=False)] = None,
) -> None:
    """Train a segmentation network; writes runs/segment/<name>/ with weights, metrics, overlays and report.html.

    Training uses random crops of --img-size; scores are measured on whole held-out images (the
    test split when there is one, else val), segmented tile by tile when larger than the crops.
    """
    from pixlearn.tasks.registry import task as get_task

    train_segmenter = get_task("segment").load("train")

    own = {
        "backbone": backbone, "pretrained": pretrained, "loss": loss, "augment": augment, "encoder_weights": str(encoder_weights) if encoder_weights else None,
        "binary": binary, "val_fraction": val_fraction, "test_fraction": test_fraction, "keep": keep, "patience": patience,
        "optimizer": optimizer, "schedule": schedule, "freeze_epochs": freeze_epochs, "accelerator": accelerator, "precision": precision,
        "devices": devices,
    }
    opts.require_data()
    result = train_segmenter(opts.data, config=opts.config, out=opts.out, resume=opts.resume, extend=opts.extend, set=opts.set_ or (),
                             progress=opts.progress, **opts.flat(), **{k: v for k, v in own.items() if v is not None})
    finish(result, opts, summary_rows)


def register(app: typer.Typer) -> None:
    """Add ``segment`` to the ``train`` group."""
    train_command(app, "segment", HELP)(segment)
