"""``pixlearn train detect``: train FCOS / RetinaNet / SSDlite / Faster R-CNN / Mask R-CNN on a COCO, YOLO or VOC folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli.train_options import TaskHelp, TrainOptions, finish, train_command

__all__ = ["detect", "register", "summary_rows"]

_HEADLINE = ("map50", "map", "map75", "map_small", "map_medium", "map_large", "mask_map50", "mask_map")


def summary_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per COCO score (then AP50 per class), a column per split; k-fold runs: mean and std per score."""
    if metrics.get("kind") == "k-fold":
        cv = metrics["cv"]
        return [{"metric": name, "mean": v["mean"], "std": v["std"], "folds": cv["folds"]} for name, v in cv["metrics"].items()]
    head = metrics.get("split", "val")
    val = metrics.get("val") or {}
    rows: list[dict[str, Any]] = []

    def add(name: str, a: Any, b: Any) -> None:
        row: dict[str, Any] = {"metric": name, f"{head} (n={metrics.get('n')})": a}
        if val:
            row[f"val (n={val.get('n')})"] = b
        rows.append(row)

    for key in _HEADLINE:
        if key in metrics:
            add(key, metrics[key], val.get(key))
    return rows


HELP = TaskHelp(
    data="A COCO (json), YOLO (images/ + labels/ + data.yaml) or Pascal VOC (Annotations/ + JPEGImages/) folder; its own "
         "train/val/test splits are used when it has them.",
    model="auto (default: mask_rcnn when the objects carry polygons or masks, else faster_rcnn), fcos, retinanet, ssdlite, "
          "faster_rcnn or mask_rcnn.",
    epochs="Maximum epochs (default 30).",
    img_size="Network input side: images are letterboxed to it (default 512; with --minutes and no --epochs, planned from "
             "the measured speed among 320-512).",
    batch="Images per batch (default 4).",
    lr="Peak learning rate (default 2e-4 at batch 4 for adamw; the backbone gets a tenth from pretrained weights).",
    weights="A backbone classifier's .safetensors (loaded strictly into the feature extractor) or a detection run's "
            "weights/best.safetensors (the whole network).",
    out="Run folder (default runs/detect/<arch>).",
    set_example="data.repeat_threshold=0.1",
)


def detect(
    opts: TrainOptions,
    backbone: Annotated[Optional[str], typer.Option("--backbone", help="A timm model (its last 3 stages under an FPN) or resnet18/34/50, mobilenet_v3_large from torchvision (default tf_efficientnet_lite0).", show_default=False)] = None,
    pretrained: Annotated[Optional[bool], typer.Option("--pretrained/--no-pretrained", help="Start the backbone from its ImageNet weights in the local weights folders ($PIXLEARN_WEIGHTS, then the cache; pixlearn weights add); nothing downloads. Default: yes when they are there.", show_default=False)] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Train (and predict) on tiles of N pixels, N >= 64 (0: whole images; default: tiles when the median box is small against large images).", min=0, show_default=False)] = None,
    anchors: Annotated[Optional[str], typer.Option("--anchors", help="fit (default: sizes and aspect ratios from the training boxes) or default (torchvision's, scaled).", show_default=False)] = None,
    augment: Annotated[Optional[str], typer.Option("--augment", help="detect (default: box-keeping zoom crop, flip, colour), none, or a preset / YAML file.", show_default=False)] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Share held out for validation without a val/ split (default 0.2).", show_default=False)] = None,
    test_fraction: Annotated[Optional[float], typer.Option("--test-fraction", help="Share held out for the final scores without a test/ split (default 0).", show_default=False)] = None,
    keep: Annotated[Optional[str], typer.Option("--keep", help="best (by val mAP50, default) or last epoch's weights.", show_default=False)] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Early-stopping patience in epochs (0: off; default 10).", min=0, show_default=False)] = None,
    optimizer: Annotated[Optional[str], typer.Option("--optimizer", help="adamw (default) or sgd.", show_default=False)] = None,
    accelerator: Annotated[Optional[str], typer.Option("--accelerator", help="auto, cpu or gpu.", show_default=False)] = None,
    devices: Annotated[Optional[int], typer.Option("--devices", help="Devices (processes) per node.", min=1, show_default=False)] = None,
) -> None:
    """Train an object detector or instance segmenter; writes runs/detect/<name>/ with weights, metrics and report.html.

    Scores are COCO's (pycocotools): mAP50, mAP50:95, small/medium/large and mask AP, on the test split when there is
    one, else val; every choice (detector, backbone, anchors, tiles, class balance, recipe, budget plan) is printed
    and kept in manifest.json.
    """
    from pixlearn.tasks.registry import task as get_task

    train_detector = get_task("detect").load("train")
    own = {"backbone": backbone, "pretrained": pretrained, "tile": tile, "anchors": anchors, "augment": augment, "val_fraction": val_fraction,
           "test_fraction": test_fraction, "keep": keep, "patience": patience, "optimizer": optimizer, "accelerator": accelerator,
           "devices": devices}
    flat = opts.flat()
    if "model" in flat:  # --model NAME is the architecture
        flat["arch"] = flat.pop("model")
    if isinstance(flat.get("weights"), Path):
        flat["weights"] = str(flat["weights"])
    opts.require_data()
    result = train_detector(opts.data, config=opts.config, out=opts.out, resume=opts.resume, extend=opts.extend, set=opts.set_ or (),
                            progress=opts.progress, **flat, **{k: v for k, v in own.items() if v is not None})
    finish(result, opts, summary_rows)


def register(app: typer.Typer) -> None:
    """Add ``detect`` to the ``train`` group."""
    train_command(app, "detect", HELP)(detect)
