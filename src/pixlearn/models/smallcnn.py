"""A small residual CNN for tiny images (8x8 to 64x64), with timm's method set."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixlearn._core.errors import ConfigError

__all__ = ["SmallCNN"]


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability ``p`` while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _Stage(nn.Module):
    """conv3x3-BN-ReLU to ``out`` channels, then a residual conv3x3-BN-ReLU-conv3x3-BN block."""

    def __init__(self, cin: int, cout: int, drop_path: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.branch = nn.Sequential(
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.drop_path = DropPath(drop_path)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.act(x + self.drop_path(self.branch(x)))


class SmallCNN(nn.Module):
    """Residual stages with 2x2 max-pooling between them, global average pooling, dropout, a linear head.

    Built for tiny inputs: with three stages an 8x8 image ends at 2x2, a 32x32 one at 8x8.

    Parameters
    ----------
    num_classes : int
    in_chans : int, default 3
    widths : sequence of int, default (32, 64, 128)
        Channels of each stage.
    drop_rate : float, default 0.0
        Dropout before the classifier.
    drop_path_rate : float, default 0.0
        Stochastic depth of the residual branches, rising linearly to this value in the last stage.

    Examples
    --------
    >>> m = SmallCNN(num_classes=10, widths=(8, 16, 32))
    >>> m(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 10])
    >>> m.forward_features(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 32, 8, 8])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        in_chans: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1 or in_chans < 1 or not widths:
            raise ConfigError(f"SmallCNN needs num_classes >= 1, in_chans >= 1 and widths, got {num_classes}, {in_chans}, {widths}")
        widths = [int(w) for w in widths]
        n = len(widths)
        stages: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            if i:
                stages.append(nn.MaxPool2d(2, ceil_mode=True))
            stages.append(_Stage(cin, w, drop_path_rate * (i + 1) / n))
            cin = w
        self.features = nn.Sequential(*stages)
        self.num_features = cin
        self.drop_rate = float(drop_rate)
        self.head_drop = nn.Dropout(self.drop_rate)
        self.fc = nn.Linear(cin, num_classes)
        self.num_classes = num_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for stage in self.features:
            if isinstance(stage, _Stage):  # start each residual block as the identity
                nn.init.zeros_(stage.branch[-1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) input -> (N, num_features, h, w) feature map."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled features when ``pre_logits``)."""
        x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)
