"""Semantic segmentation as a trainable task: the network, its loss (CE, Dice, focal and their sums) and validation metrics.

The engine (:mod:`pixlearn.engine.module`) calls :meth:`SegmentTask.training_loss` on a batch of
images with (N, H, W) integer masks and logs :meth:`SegmentTask.validation_metrics`. Two modes:

* **binary** -- the network has one output channel (a sigmoid logit for class 1); losses in
  their binary form (BCE, binary Dice / focal);
* **multi-class** -- one channel per class, softmax; cross-entropy, multi-class Dice / focal.

Pixels labelled ``ignore_index`` (255) count in no loss and no metric. Validation images may be
larger than the training crops: :meth:`SegmentTask.infer` runs the network tile by tile
(:func:`~pixlearn.engine.tiling.tiled_apply`) and blends the tiles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixlearn._core.checks import probability_logit
from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.names import check_name

__all__ = ["SegmentTask", "LOSSES", "parse_loss", "SegmentLoss", "confusion_metric_class", "logits_to_mask"]

#: Loss terms and their aliases.
LOSSES = ("ce", "dice", "focal", "lovasz")
_LOSS_ALIASES = {"bce": "ce", "cross_entropy": "ce", "crossentropy": "ce", "xent": "ce", "lovasz_hinge": "lovasz", "lovasz_softmax": "lovasz"}
IGNORE_INDEX = 255


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"ce+dice"``, ``"0.5*focal + dice"`` -> ``[(weight, term), ...]``.

    Examples
    --------
    >>> parse_loss("ce+dice"), parse_loss("0.5*focal + 2 * dice")
    ([(1.0, 'ce'), (1.0, 'dice')], [(0.5, 'focal'), (2.0, 'dice')])
    >>> parse_loss("ce+dcie")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown loss term 'dcie'; did you mean 'dice'? Valid: 'ce', 'dice', 'focal', 'lovasz'
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"loss must be a string such as 'ce', 'dice', 'focal' or a sum 'ce+dice', got {spec!r}")
    terms: list[tuple[float, str]] = []
    for part in spec.replace(" ", "").lower().split("+"):
        m = re.fullmatch(r"(?:([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\*)?([a-z_]+)", part)
        if not m:
            raise ConfigError(f"cannot read loss term {part!r} of {spec!r}; write terms like 'ce', 'dice' or '0.5*focal' joined by '+'")
        weight = float(m.group(1)) if m.group(1) else 1.0
        name = _LOSS_ALIASES.get(m.group(2), m.group(2))
        name = check_name(name, LOSSES, what="loss term")
        if weight <= 0:
            raise ConfigError(f"loss weights must be positive, got {weight} for {name}")
        terms.append((weight, name))
    return terms


class SegmentLoss(nn.Module):
    """A weighted sum of CE / Dice / focal / Lovasz terms for (N, K, H, W) logits and (N, H, W) integer masks.

    ``lovasz`` is the Lovasz extension of the Jaccard loss (Berman et al., CVPR 2018; smp's
    ``LovaszLoss``): a convex surrogate of 1 - IoU, softmax for several classes, hinge for a binary
    model. Like ``dice``, a binary model's term averages both of its classes (the foreground's and the
    background's, with the logit negated), so it optimises what mean IoU scores.

    Parameters
    ----------
    spec : str
        See :func:`parse_loss`.
    binary : bool
        One logit channel (sigmoid, class 1 against class 0) instead of one per class (softmax).
    ignore_index : int, default 255
    class_weights : sequence of float, optional
        Cross-entropy weights, one per class (binary: used as ``pos_weight = w[1] / w[0]``).

    Examples
    --------
    >>> loss = SegmentLoss("ce+dice", binary=False)
    >>> logits = torch.zeros(2, 3, 4, 4); mask = torch.zeros(2, 4, 4, dtype=torch.long)
    >>> round(float(loss(logits, mask)), 4)  # CE ln 3, plus Dice loss 1 - 0.5 for class 0 averaged over 3 classes
    1.2653
    """

    def __init__(self, spec: str = "ce+dice", *, binary: bool, ignore_index: int | None = IGNORE_INDEX,
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        from segmentation_models_pytorch.losses import DiceLoss, FocalLoss, LovaszLoss

        self.spec = spec
        self.terms = parse_loss(spec)
        self.binary = bool(binary)
        self.ignore_index = ignore_index
        mode = "binary" if self.binary else "multiclass"
        self.dice = DiceLoss(mode, from_logits=True, ignore_index=ignore_index)
        self.focal = FocalLoss(mode, ignore_index=ignore_index)
        self.lovasz = LovaszLoss(mode, ignore_index=ignore_index)
        if class_weights is not None:
            w = torch.as_tensor(list(class_weights), dtype=torch.float32)
            if float(w.min()) < 0 or float(w.sum()) <= 0:
                raise ConfigError(f"class_weights must be >= 0 and not all 0, got {list(class_weights)}")
            self.register_buffer("class_weights", w, persistent=False)
        else:
            self.class_weights = None

    def _ce(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.binary:
            return F.cross_entropy(logits, mask, weight=self.class_weights, ignore_index=-100 if self.ignore_index is None else self.ignore_index)
        valid = mask != self.ignore_index if self.ignore_index is not None else torch.ones_like(mask, dtype=torch.bool)
        target = (mask == 1).to(logits.dtype)
        pos_weight = None
        if self.class_weights is not None and len(self.class_weights) == 2 and float(self.class_weights[0]) > 0:
            pos_weight = (self.class_weights[1] / self.class_weights[0]).to(logits.dtype)
        per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="none", pos_weight=pos_weight)
        return (per_pixel * valid).sum() / valid.sum().clamp_min(1)

    def _both_classes(self, fn: Any, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``fn`` averaged over the classes; a binary model's over both of its classes, as the multi-class one's
        and as mean IoU are (smp's binary Dice and Lovasz hinge score the foreground alone, which leaves a thin
        background -- cell membranes -- to the cross-entropy)."""
        if not self.binary:
            return fn(logits, mask)
        flipped = 1 - mask if self.ignore_index is None else torch.where(mask == self.ignore_index, mask, 1 - mask)
        return 0.5 * (fn(logits, mask) + fn(-logits, flipped))

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        total = logits.new_zeros(())
        for weight, name in self.terms:
            if name == "ce":
                term = self._ce(logits, mask)
            elif name == "dice":
                term = self._both_classes(self.dice, logits, mask)
            elif name == "lovasz":
                term = self._both_classes(self.lovasz, logits, mask)
            else:
                term = self.focal(logits, mask)
            total = total + weight * term
        return total


def logits_to_mask(logits: torch.Tensor, *, binary: bool, threshold: float = 0.5) -> torch.Tensor:
    """(N, K, H, W) logits -> (N, H, W) int64 class ids (binary: probability > ``threshold``, i.e. logit > its logit).

    Examples
    --------
    >>> z = torch.tensor([[[[-0.5, 0.2, 0.6]]]])  # probabilities 0.38, 0.55, 0.65
    >>> logits_to_mask(z, binary=True).tolist(), logits_to_mask(z, binary=True, threshold=0.6).tolist()
    ([[[0, 1, 1]]], [[[0, 0, 1]]])
    """
    if binary:
        return (logits[:, 0] > probability_logit(threshold)).to(torch.int64)
    return logits.argmax(dim=1)


def confusion_metric_class() -> type:
    """The torchmetrics ``Metric`` behind the validation scores (built on first use: torchmetrics loads lazily)."""
    from torchmetrics import Metric

    class _ConfusionMetric(Metric):
        """A (C, C) confusion matrix summed over batches (and devices); ``compute`` gives one score of it.

        ``kind``: ``"miou"`` (mean IoU over classes with a non-empty union), ``"dice"`` (mean Dice, same
        classes) or ``"pixel_accuracy"``.
        """

        full_state_update = False
        higher_is_better = True

        def __init__(self, num_classes: int, *, kind: str, ignore_index: int | None = IGNORE_INDEX) -> None:
            super().__init__()
            self.num_classes, self.kind, self.ignore_index = int(num_classes), kind, ignore_index
            self.add_state("cm", default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.long), dist_reduce_fx="sum")

        def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
            t, p = true.reshape(-1), pred.reshape(-1)
            if self.ignore_index is not None:
                keep = t != self.ignore_index
                t, p = t[keep], p[keep]
            c = self.num_classes
            self.cm += torch.bincount(t * c + p, minlength=c * c).reshape(c, c)

        def compute(self) -> torch.Tensor:
            cm = self.cm.double()
            tp = cm.diag()
            true_px, pred_px = cm.sum(1), cm.sum(0)
            if self.kind == "pixel_accuracy":
                return (tp.sum() / cm.sum().clamp_min(1)).float()
            union = true_px + pred_px - tp
            defined = union > 0
            if not bool(defined.any()):
                return torch.tensor(float("nan"))
            score = tp / union if self.kind == "miou" else 2 * tp / (true_px + pred_px)
            return score[defined].mean().float()

    return _ConfusionMetric


class SegmentTask(nn.Module):
    """A segmentation network with its training loss and validation metrics.

    Parameters
    ----------
    model : nn.Module
        (N, C, H, W) images -> (N, K, H, W) logits; K = 1 for a binary model, else ``num_classes``.
    num_classes : int
        Classes in the masks (2 for a binary model).
    loss : str, default "ce+dice"
        See :func:`parse_loss`.
    ignore_index : int or None, default 255
    class_weights : sequence of float, optional
    tile : int or (height, width), optional
        Validation images larger than this are run tile by tile (the training crop size).
    overlap : float, default 0.25
        Tile overlap (fraction of the tile).
    multiple : int, default 32
        The network's input sizes must be divisible by this (padding by reflection otherwise).
    freeze_encoder_bn : bool, default False
        Keep the encoder's BatchNorm layers in eval mode while training: their running statistics
        stay as loaded (a pretrained encoder's), their scales and shifts still learn. Batches of a
        few crops give noisy batch statistics that would overwrite the pretrained ones.

    Examples
    --------
    >>> from pixlearn.models import create_segmentation_model
    >>> net = create_segmentation_model("unet", encoder="tu-resnet18", num_classes=1, img_size=32)
    >>> task = SegmentTask(net, num_classes=2, tile=32)
    >>> x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 2, (2, 32, 32))
    >>> float(task.training_loss(x, y).detach()) > 0
    True
    >>> _ = task.validation_update(torch.rand(1, 3, 50, 70), torch.randint(0, 2, (1, 50, 70)))
    >>> sorted(task.validation_metrics())
    ['val_dice', 'val_loss', 'val_miou', 'val_pixel_accuracy']
    """

    monitor = "val_miou"
    monitor_mode = "max"

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        loss: str = "ce+dice",
        ignore_index: int | None = IGNORE_INDEX,
        class_weights: Sequence[float] | None = None,
        tile: int | tuple[int, int] | None = None,
        overlap: float = 0.25,
        multiple: int = 32,
        freeze_encoder_bn: bool = False,
    ) -> None:
        super().__init__()
        from torchmetrics import MeanMetric

        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"segmentation needs at least 2 classes (background and one more), got {num_classes!r}")
        out = _out_channels(model)
        if out is not None and (out not in (1, num_classes) or (out == 1 and num_classes != 2)):
            raise ConfigError(
                f"the network has {out} output channel(s) but the masks have {num_classes} classes; "
                "use 1 channel for a binary model (2 classes) or one per class"
            )
        self.model = model
        self.num_classes = int(num_classes)
        self.binary = out == 1
        self.ignore_index = ignore_index
        if class_weights is not None and len(class_weights) != num_classes:
            raise ShapeError(f"class_weights needs one weight per class ({num_classes}), got {len(class_weights)}")
        self.loss = SegmentLoss(loss, binary=self.binary, ignore_index=ignore_index, class_weights=class_weights)
        self.tile = tile
        self.overlap = float(overlap)
        self.multiple = int(multiple)
        self.freeze_encoder_bn = bool(freeze_encoder_bn)
        metric = confusion_metric_class()
        self.val_loss = MeanMetric()
        self.val_miou = metric(num_classes, kind="miou", ignore_index=ignore_index)
        self.val_dice = metric(num_classes, kind="dice", ignore_index=ignore_index)
        self.val_pixel_accuracy = metric(num_classes, kind="pixel_accuracy", ignore_index=ignore_index)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _check(self, images: torch.Tensor, masks: Any) -> torch.Tensor:
        if not isinstance(masks, torch.Tensor) or masks.ndim != 3 or masks.shape[0] != images.shape[0] or masks.shape[1:] != images.shape[2:]:
            raise ShapeError(
                f"segmentation needs one (H, W) integer mask per image; got {type(masks).__name__} "
                f"{tuple(getattr(masks, 'shape', ()))} for images {tuple(images.shape)} (is the dataset a mask folder?)"
            )
        return masks.long()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of whole images of any size: tile by tile when larger than ``tile``, blended."""
        from pixlearn.engine.tiling import tiled_apply

        h, w = images.shape[-2:]
        tile = self.tile if self.tile is not None else (h, w)
        mult = self.multiple
        tile = (tile, tile) if isinstance(tile, int) else tuple(tile)
        tile = (-(-int(tile[0]) // mult) * mult, -(-int(tile[1]) // mult) * mult)
        return tiled_apply(self.model, images, tile=tile, overlap=self.overlap, batch=4, multiple=mult)

    def encoder_norms(self) -> list[nn.Module]:
        """The encoder's BatchNorm layers (those :attr:`freeze_encoder_bn` keeps in eval mode)."""
        encoder = getattr(self.model, "encoder", None)
        if encoder is None:
            return []
        return [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> SegmentTask:
        super().train(mode)
        if mode and self.freeze_encoder_bn:
            for m in self.encoder_norms():
                m.eval()
        return self

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The configured loss of a training batch (crops of the training size)."""
        masks = self._check(images, masks)
        if self.freeze_encoder_bn and self.training:  # however the trainer switched modes, the statistics stay as loaded
            for m in self.encoder_norms():
                if m.training:
                    m.eval()
        return self.loss(self.model(images), masks)

    @torch.no_grad()
    def validation_update(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Score a validation batch (whole images, tiled when large); returns the logits."""
        masks = self._check(images, masks)
        logits = self.infer(images)
        self.val_loss.update(self.loss(logits, masks), weight=images.shape[0])
        pred = logits_to_mask(logits, binary=self.binary)
        for m in (self.val_miou, self.val_dice, self.val_pixel_accuracy):
            m.update(pred, masks)
        return logits

    def validation_metrics(self) -> dict[str, Any]:
        """The metric objects to log at the end of a validation epoch (Lightning computes, syncs and resets them)."""
        return {"val_loss": self.val_loss, "val_miou": self.val_miou, "val_dice": self.val_dice,
                "val_pixel_accuracy": self.val_pixel_accuracy}


def _out_channels(model: nn.Module) -> int | None:
    spec = getattr(model, "pixlearn_spec", None)
    if spec is not None:
        return int(spec.num_classes)
    return None
