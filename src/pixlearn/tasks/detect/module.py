"""Detection as a trainable engine task: the torchvision network, its summed loss (each part logged) and val mAP.

The engine (:mod:`pixlearn.engine.module`) calls :meth:`DetectTask.training_loss` on a batch of letterboxed images
with torchvision target dicts (1-based labels) and logs :meth:`DetectTask.validation_metrics`: COCO mAP at IoU 0.5
(``val_map50``) and 0.5:0.95 (``val_map``) of the val detections, computed by
:class:`pixlearn.tasks.detect.metrics.DetectionEvaluator` (pycocotools).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pixlearn._core.errors import ShapeError

__all__ = ["DetectTask", "DetectSpecInfo", "head_modules"]


def head_modules(model: nn.Module) -> tuple[str, ...]:
    """The module names outside the backbone's feature extractor: the FPN and every head (what trains at the full LR)."""
    names = [n for n, _ in model.named_children() if n not in ("backbone", "transform")]
    return ("backbone.fpn", *names)


class DetectSpecInfo:
    """What the engine reads from ``model.pixlearn_spec``: the head's module names, and the manifest's model block."""

    def __init__(self, model: nn.Module, extra: dict[str, Any] | None = None) -> None:
        self.head = head_modules(model)
        self.spec = dict(getattr(model, "pixlearn_detect_spec", {}) or {})
        self.extra = dict(extra or {})

    def to_dict(self) -> dict[str, Any]:
        return {"task": "detect", "spec": self.spec, "head": list(self.head), **self.extra}


def _map_metric_class() -> type:
    from torchmetrics import Metric

    class _MapMetric(Metric):
        """COCO mAP of the collected val detections (one value of :class:`DetectionEvaluator`'s ``compute``)."""

        full_state_update = False
        higher_is_better = True

        def __init__(self, class_names: Sequence[str], *, key: str) -> None:
            super().__init__()
            self.class_names, self.key = tuple(class_names), key
            self.add_state("images", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
            self._preds: list[Any] = []
            self._truths: list[Any] = []

        def update(self, preds: list[Any], truths: list[Any]) -> None:  # type: ignore[override]
            self._preds.extend(preds)
            self._truths.extend(truths)
            self.images += len(preds)

        def compute(self) -> torch.Tensor:
            from pixlearn.tasks.detect.metrics import DetectionEvaluator

            ev = DetectionEvaluator(self.class_names)
            ev.update(self._preds, self._truths)
            value = ev.compute().get(self.key)
            return torch.tensor(float("nan") if value is None else float(value))

        def reset(self) -> None:
            super().reset()
            self._preds, self._truths = [], []

    return _MapMetric


class DetectTask(nn.Module):
    """A torchvision detection network with its training loss and validation mAP.

    Parameters
    ----------
    model : nn.Module
        From :func:`pixlearn.tasks.detect.model.build_detector`.
    class_names : sequence of str
    freeze_backbone_bn : bool
        Keep the backbone's BatchNorm statistics as loaded (a pretrained backbone at small batches).
    score, iou : float
        Score threshold and NMS IoU of the val detections.

    Examples
    --------
    >>> from pixlearn.tasks.detect.model import build_detector
    >>> task = DetectTask(build_detector({"arch": "fcos", "backbone": "resnet18", "num_classes": 1, "img_size": 64}), ["cat"])
    >>> x = torch.rand(2, 3, 64, 64)
    >>> y = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2
    >>> float(task.training_loss(x, y).detach()) > 0, sorted(task.validation_metrics())
    (True, ['val_map', 'val_map50'])
    """

    monitor = "val_map50"
    monitor_mode = "max"

    def __init__(self, model: nn.Module, class_names: Sequence[str], *, freeze_backbone_bn: bool = False, score: float = 0.05,
                 iou: float = 0.5) -> None:
        super().__init__()
        self.model = model
        self.class_names = tuple(str(c) for c in class_names)
        self.freeze_backbone_bn = bool(freeze_backbone_bn)
        self.score, self.iou = float(score), float(iou)
        metric = _map_metric_class()
        self.val_map50 = metric(self.class_names, key="map50")
        self.val_map = metric(self.class_names, key="map")
        self.loss_sums: dict[str, float] = {}
        self.loss_steps = 0

    def backbone_norms(self) -> list[nn.Module]:
        body = getattr(getattr(self.model, "backbone", None), "body", None)
        return [] if body is None else [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> DetectTask:
        super().train(mode)
        if mode and self.freeze_backbone_bn:
            for m in self.backbone_norms():
                m.eval()
        return self

    def _check(self, images: torch.Tensor, targets: Any) -> None:
        if not isinstance(targets, list) or len(targets) != images.shape[0] or not all(isinstance(t, dict) and "boxes" in t for t in targets):
            raise ShapeError(f"detection needs one target dict (boxes, labels) per image; got {type(targets).__name__} for images "
                             f"{tuple(images.shape)} (is the dataset a COCO / YOLO / VOC folder?)")

    def reset_loss_parts(self) -> None:
        self.loss_sums, self.loss_steps = {}, 0

    def loss_parts(self) -> dict[str, float]:
        """The mean of each part of torchvision's loss dict since :meth:`reset_loss_parts`."""
        return {k: v / max(self.loss_steps, 1) for k, v in self.loss_sums.items()}

    def training_loss(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The sum of torchvision's loss dict (classification, box regression, objectness, masks...)."""
        self._check(images, targets)
        if self.freeze_backbone_bn and self.training:
            for m in self.backbone_norms():
                if m.training:
                    m.eval()
        parts = self.model(list(images), targets)
        total = sum(parts.values())
        for k, v in parts.items():
            self.loss_sums[k] = self.loss_sums.get(k, 0.0) + float(v.detach())
        self.loss_steps += 1
        return total  # type: ignore[return-value]

    def _set_thresholds(self) -> None:
        m = self.model
        if hasattr(m, "roi_heads"):
            m.roi_heads.score_thresh, m.roi_heads.nms_thresh = self.score, self.iou
        else:
            m.score_thresh, m.nms_thresh = self.score, self.iou

    @torch.no_grad()
    def detect(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """torchvision's raw outputs for a batch of letterboxed images (eval mode kept as the caller had it)."""
        was = self.model.training
        self.model.eval()
        self._set_thresholds()
        try:
            return self.model(list(images))
        finally:
            self.model.train(was)

    @torch.no_grad()
    def validation_update(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> list[Any]:
        """Detect on a val batch and collect the detections with their truth (network pixels, 0-based labels)."""
        from pixlearn.tasks.detect.detections import Detections, GroundTruth

        self._check(images, targets)
        out = self.detect(images)
        size = tuple(int(v) for v in images.shape[-2:])
        preds, truths = [], []
        for r, t in zip(out, targets, strict=True):
            lab = r["labels"].cpu().numpy().astype(np.int64) - 1
            ok = (lab >= 0) & (lab < len(self.class_names))
            preds.append(Detections(r["boxes"].float().cpu().numpy()[ok], r["scores"].float().cpu().numpy()[ok], lab[ok], self.class_names))
            truths.append(GroundTruth(t["boxes"].float().cpu().numpy(), t["labels"].cpu().numpy() - 1, self.class_names, size))
        self.val_map50.update(preds, truths)
        self.val_map.update(preds, truths)
        return preds

    def validation_metrics(self) -> dict[str, Any]:
        """The metric objects to log at the end of a validation epoch (Lightning computes and resets them)."""
        return {"val_map50": self.val_map50, "val_map": self.val_map}
