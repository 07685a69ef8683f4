"""Image restoration (denoising, super-resolution, enhancement) as a trainable task: loss and validation metrics.

:class:`RestoreTask` plugs a restorer (:mod:`pixlearn.models.restoration`) into the training
engine: ``training_loss`` is an L1, L2 or Charbonnier distance between the restored batch and
the clean one; ``validation_update`` scores each validation image by MSE, PSNR and SSIM (the
batch functions :func:`batch_mse`, :func:`batch_psnr`, :func:`batch_ssim`, on images in [0, 1])
and also scores the degraded input itself, so every epoch shows what the network adds.

The numpy metrics for uint8 images and whole datasets are in :mod:`pixlearn.tasks.restore.metrics`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from pixlearn._core.errors import ShapeError
from pixlearn._core.names import check_name

__all__ = [
    "LOSSES",
    "PSNR_CAP_DB",
    "RestoreTask",
    "batch_mse",
    "batch_psnr",
    "batch_ssim",
    "charbonnier",
    "restoration_loss",
]

#: Loss names :class:`RestoreTask` takes.
LOSSES = ("l1", "l2", "charbonnier")

#: PSNR given to an image restored exactly (MSE 0) when PSNRs are averaged.
PSNR_CAP_DB = 100.0


def charbonnier(pred: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """Mean of ``sqrt((pred - target)**2 + eps**2)``: a smooth L1 (robust, differentiable at 0).

    Examples
    --------
    >>> round(float(charbonnier(torch.zeros(4), torch.ones(4))), 4)
    1.0
    """
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def restoration_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """``l1`` (mean absolute error), ``l2`` (mean squared error) or ``charbonnier`` between two batches."""
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "charbonnier":
        return charbonnier(pred, target)
    check_name(kind, LOSSES, what="restoration loss")
    raise AssertionError  # pragma: no cover


def _same(pred: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ShapeError(
            f"{what}: the restored batch {tuple(pred.shape)} and the clean batch {tuple(target.shape)} must have the "
            "same (N, C, H, W) shape; for super-resolution the model's scale must match the degradation's"
        )


def batch_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error (N,) of two (N, C, H, W) batches.

    Examples
    --------
    >>> batch_mse(torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)).tolist()
    [0.25, 0.25]
    """
    _same(pred, target, "batch_mse")
    return ((pred.double() - target.double()) ** 2).flatten(1).mean(dim=1)


def batch_psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, cap: float | None = PSNR_CAP_DB) -> torch.Tensor:
    """Per-image PSNR in dB (N,): ``10 log10(data_range**2 / MSE)``.

    Identical images (MSE 0) get ``inf``, or ``cap`` when it is given (the default, so that
    means stay finite).

    Examples
    --------
    >>> x = torch.zeros(1, 1, 4, 4)
    >>> round(float(batch_psnr(x, x + 0.1)[0]), 3), float(batch_psnr(x, x)[0]), float(batch_psnr(x, x, cap=None)[0])
    (20.0, 100.0, inf)
    """
    mse = batch_mse(pred, target)
    psnr = 10.0 * torch.log10(data_range**2 / mse)
    if cap is not None:
        psnr = torch.where(mse == 0, torch.full_like(psnr, cap), psnr.clamp(max=cap))
    return psnr


def _gauss_kernel(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def batch_ssim(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, win: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (N,) with the gaussian window of Wang et al. (11 taps, sigma 1.5), channels averaged.

    Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``: the SSIM map is averaged over the positions where the
    window fits inside the image. Images smaller than the window use the largest odd window
    that fits (sigma scaled with it).

    Examples
    --------
    >>> x = torch.rand(2, 3, 16, 16)
    >>> [round(v, 6) for v in batch_ssim(x, x).tolist()]
    [1.0, 1.0]
    """
    _same(pred, target, "batch_ssim")
    n, c, h, w = pred.shape
    size = min(win, h - (1 - h % 2), w - (1 - w % 2))
    if size < 1:
        raise ShapeError(f"batch_ssim needs images of at least 1x1, got {w}x{h}")
    s = sigma * size / win
    g = _gauss_kernel(size, s, pred.device)
    x, y = pred.double().reshape(n * c, 1, h, w), target.double().reshape(n * c, 1, h, w)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ssim_map.flatten(1).mean(dim=1).view(n, c).mean(dim=1)


def _input_baseline(images: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """The degraded input brought to the target's size (bicubic for super-resolution), or None if impossible."""
    if images.shape == shape:
        return images
    if images.ndim == 4 and images.shape[:2] == shape[:2]:
        return F.interpolate(images, size=tuple(shape[-2:]), mode="bicubic", align_corners=False)
    return None


class RestoreTask(nn.Module):
    """A restorer with its training loss and validation metrics.

    Parameters
    ----------
    model : nn.Module
        Maps degraded (N, C, h, w) images in [0, 1] to restored (N, C, H, W) ones.
    loss : {"l1", "l2", "charbonnier"}, default "l2"

    Validation logs ``val_loss`` (the training loss), ``val_mse``, ``val_psnr``, ``val_ssim``
    (means over images; outputs clamped to [0, 1]) and ``val_input_psnr`` / ``val_input_ssim``,
    the same scores of the degraded input (bicubic-upscaled for super-resolution).

    Examples
    --------
    >>> from pixlearn.models import create_restorer
    >>> task = RestoreTask(create_restorer("dncnn", depth=3, width=4), loss="l1")
    >>> x = torch.rand(2, 1, 16, 16)
    >>> float(task.training_loss(x, x).detach()) >= 0
    True
    >>> _ = task.validation_update(x, x)
    >>> sorted(task.validation_metrics())
    ['val_input_psnr', 'val_input_ssim', 'val_loss', 'val_mse', 'val_psnr', 'val_ssim']
    """

    monitor = "val_psnr"
    monitor_mode = "max"

    def __init__(self, model: nn.Module, *, loss: Literal["l1", "l2", "charbonnier"] = "l2") -> None:
        super().__init__()
        from torchmetrics import MeanMetric

        self.model = model
        self.loss = check_name(loss, LOSSES, what="restoration loss")
        self.val_loss = MeanMetric()
        self.val_mse = MeanMetric()
        self.val_psnr = MeanMetric()
        self.val_ssim = MeanMetric()
        self.val_input_psnr = MeanMetric()
        self.val_input_ssim = MeanMetric()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _check(self, images: Any, targets: Any) -> None:
        if not isinstance(targets, torch.Tensor) or targets.ndim != 4 or targets.shape[0] != images.shape[0]:
            raise ShapeError(
                f"restoration needs one clean image per degraded image; got {type(targets).__name__} "
                f"{tuple(getattr(targets, 'shape', ()))} for {tuple(images.shape)} inputs (is the dataset paired or clean?)"
            )

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The configured distance between ``model(images)`` and the clean ``targets``."""
        self._check(images, targets)
        pred = self.model(images).float()
        _same(pred, targets, "RestoreTask")
        return restoration_loss(pred, targets.float(), self.loss)

    @torch.no_grad()
    def validation_update(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Score a validation batch; returns the restored images (clamped to [0, 1])."""
        self._check(images, targets)
        raw = self.model(images).float()
        _same(raw, targets, "RestoreTask")
        targets = targets.float()
        self.val_loss.update(restoration_loss(raw, targets, self.loss), weight=images.shape[0])
        pred = raw.clamp(0.0, 1.0)
        self.val_mse.update(batch_mse(pred, targets).float())
        self.val_psnr.update(batch_psnr(pred, targets).float())
        self.val_ssim.update(batch_ssim(pred, targets).float())
        base = _input_baseline(images.float(), targets.shape)
        if base is not None:
            base = base.clamp(0.0, 1.0)
            self.val_input_psnr.update(batch_psnr(base, targets).float())
            self.val_input_ssim.update(batch_ssim(base, targets).float())
        return pred

    def validation_metrics(self) -> dict[str, Any]:
        """The metric objects the engine logs at the end of a validation epoch."""
        return {
            "val_loss": self.val_loss, "val_mse": self.val_mse, "val_psnr": self.val_psnr, "val_ssim": self.val_ssim,
            "val_input_psnr": self.val_input_psnr, "val_input_ssim": self.val_input_ssim,
        }


def psnr_from_mse(mse: float, *, data_range: float = 1.0) -> float:
    """``10 log10(data_range**2 / mse)``; ``inf`` for 0.

    Examples
    --------
    >>> psnr_from_mse(0.01), psnr_from_mse(0.0)
    (20.0, inf)
    """
    return math.inf if mse <= 0 else 10.0 * math.log10(data_range**2 / mse)
