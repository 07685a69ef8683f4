"""Image classification as a trainable task: the model, its loss (label smoothing, class weights,
mixup / CutMix) and its validation metrics.

The training engine (:mod:`pixlearn.engine`) knows nothing about classes or labels: it calls
:meth:`ClassifyTask.training_loss` on a batch and logs what :meth:`ClassifyTask.validation_metrics`
returns. Another task plugs into the same engine by offering the same methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError

__all__ = ["ClassifyTask", "inverse_frequency_weights", "mix_batch"]


def inverse_frequency_weights(counts: Sequence[int]) -> list[float]:
    """Class weights ``n / (C * n_c)`` (1.0 for every class when balanced; 0 for absent classes).

    Examples
    --------
    >>> inverse_frequency_weights([30, 10])
    [0.6666666666666666, 2.0]
    """
    total = float(sum(counts))
    present = sum(1 for c in counts if c > 0)
    return [total / (present * c) if c > 0 else 0.0 for c in counts]


def _cutmix_box(h: int, w: int, lam: float) -> tuple[int, int, int, int]:
    ratio = math.sqrt(1.0 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(0, h, (1,)))
    cx = int(torch.randint(0, w, (1,)))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    return y0, y1, x0, x1


def mix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup or CutMix of a batch with a shuffled copy of itself (one of them, 50/50 when both are on).

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W)
    targets : Tensor of shape (N, K)
        Soft targets (one-hot or smoothed).
    mixup_alpha, cutmix_alpha : float
        Beta(alpha, alpha) parameters; 0 turns that kind off.

    Returns
    -------
    images, targets, lam
        The mixed batch, its mixed targets and the share of the original images.

    Draws come from torch's default generators, which the engine reseeds every epoch.
    """
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or float(torch.rand(1)) < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0:
        return images, targets, 1.0
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0]).to(images.device)
    if use_cutmix:
        h, w = images.shape[-2:]
        y0, y1, x0, x1 = _cutmix_box(h, w, lam)
        images = images.clone()
        images[:, :, y0:y1, x0:x1] = images[perm, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    else:
        images = images * lam + images[perm] * (1.0 - lam)
    return images, targets * lam + targets[perm] * (1.0 - lam), lam


class ClassifyTask(nn.Module):
    """A classifier with its training loss and validation metrics.

    Parameters
    ----------
    model : nn.Module
        Maps (N, C, H, W) float images to (N, num_classes) logits.
    num_classes : int
    label_smoothing : float, default 0.0
    class_weights : sequence of float, optional
        Per-class loss weights (imbalanced data).
    mixup_alpha, cutmix_alpha : float, default 0.0
    mix_prob : float, default 1.0
        Share of training batches that are mixed.

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> task = ClassifyTask(create_model("pixlearn_smallcnn_tiny", num_classes=3), num_classes=3)
    >>> x, y = torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    >>> float(task.training_loss(x, y).detach()) > 0
    True
    >>> _ = task.validation_update(x, y)
    >>> sorted(task.validation_metrics())
    ['val_accuracy', 'val_loss', 'val_macro_f1']
    """

    #: The metric the engine monitors by default, and whether larger is better.
    monitor = "val_accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
    ) -> None:
        super().__init__()
        from torchmetrics import MeanMetric
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

        if num_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.model = model
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.mix_prob = float(mix_prob)
        if class_weights is not None:
            w = torch.as_tensor(list(class_weights), dtype=torch.float32)
            if w.shape != (num_classes,):
                raise ShapeError(f"class_weights needs one weight per class ({num_classes}), got {len(w)}")
            if float(w.sum()) <= 0:
                raise ConfigError("class_weights must not all be 0")
            self.register_buffer("class_weights", w, persistent=False)
        else:
            self.class_weights = None
        self.val_loss = MeanMetric()
        self.val_accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_macro_f1 = MulticlassF1Score(num_classes=num_classes, average="macro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _check(self, images: torch.Tensor, labels: Any) -> torch.Tensor:
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ShapeError(
                f"classification needs one integer label per image; got {type(labels).__name__} "
                f"{tuple(getattr(labels, 'shape', ()))} for {images.shape[0]} images (is the dataset labelled?)"
            )
        return labels

    def soft_targets(self, labels: torch.Tensor) -> torch.Tensor:
        t = F.one_hot(labels, self.num_classes).to(torch.float32)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        return t

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of a training batch, with smoothing, class weights and (maybe) mixup/CutMix."""
        labels = self._check(images, labels)
        mixing = (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and (self.mix_prob >= 1.0 or float(torch.rand(1)) < self.mix_prob)
        if not mixing:
            logits = self.model(images)
            return F.cross_entropy(logits.float(), labels, weight=self.class_weights, label_smoothing=self.label_smoothing)
        images, targets, _ = mix_batch(images, self.soft_targets(labels), mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha)
        logits = self.model(images).float()
        per_sample = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
        if self.class_weights is None:
            return per_sample.mean()
        w = (targets * self.class_weights).sum(dim=1)
        return (per_sample * w).sum() / w.sum().clamp_min(1e-12)

    @torch.no_grad()
    def validation_update(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Score a validation batch (plain cross-entropy, no smoothing or weights); returns the logits."""
        labels = self._check(images, labels)
        logits = self.model(images).float()
        self.val_loss.update(F.cross_entropy(logits, labels, reduction="none"))
        self.val_accuracy.update(logits, labels)
        self.val_macro_f1.update(logits, labels)
        return logits

    def validation_metrics(self) -> dict[str, Any]:
        """The metric objects to log at the end of a validation epoch (Lightning computes, syncs and resets them)."""
        return {"val_loss": self.val_loss, "val_accuracy": self.val_accuracy, "val_macro_f1": self.val_macro_f1}
