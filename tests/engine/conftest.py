"""Tiny data for every task, and one entry point per task, so each engine feature runs on classify, segment and restore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixlearn.io import write_image


@dataclass
class Task:
    """One task's tiny data, its Python entry point and the options that keep its training to a second or two."""

    name: str
    data: Path
    train: Callable[..., Any]
    kw: dict[str, Any]
    cli: list[str] = field(default_factory=list)

    def run(self, out: Path, **extra: Any) -> Any:
        return self.train(self.data, out=out, progress=False, **{**self.kw, **extra})


def _classify(root: Path) -> Task:
    from pixlearn.tasks.classify.train import train_classifier
    from tests.classify.helpers import make_dataset

    data = make_dataset(root / "colours", per_class=8, classes=("red", "green"), size=12)
    kw = {"model": "pixlearn_smallcnn_tiny", "img_size": 12, "batch": 8}
    cli = ["--model", "pixlearn_smallcnn_tiny", "--img-size", "12", "--batch", "8"]
    return Task("classify", data, train_classifier, kw, cli)


def _segment(root: Path) -> Task:
    from pixlearn.tasks.segment.train import train_segmenter
    from tests.segment.conftest import make_binary_dataset

    data = make_binary_dataset(root / "discs", n=8, size=(32, 32))
    kw = {"model": "unet", "backbone": "tu-test_efficientnet", "set": ["model.decoder_channels=[16,16,8,8,8]"], "img_size": 32, "batch": 4,
          "val_fraction": 0.25}
    cli = ["--model", "unet", "--backbone", "tu-test_efficientnet", "--set", "model.decoder_channels=[16,16,8,8,8]", "--img-size", "32",
           "--batch", "4"]
    return Task("segment", data, train_segmenter, kw, cli)


def _restore(root: Path) -> Task:
    from pixlearn.tasks.restore.train import train_restorer

    rng = np.random.default_rng(0)
    data = root / "grey"
    for k in range(6):
        yy, xx = np.mgrid[:32, :32]
        img = (127 + 60 * np.sin(xx / (3 + k)) + 40 * np.cos(yy / 4) + rng.normal(0, 5, (32, 32))).clip(0, 255).astype(np.uint8)
        write_image(data / f"g{k}.png", img)
    kw = {"depth": 3, "width": 4, "img_size": 16, "patches_per_image": 4, "batch": 8, "val_crop": 16, "eval_methods": [],
          "val_fraction": 0.34}
    cli = ["--depth", "3", "--width", "4", "--img-size", "16", "--patches-per-image", "4", "--batch", "8", "--set", "data.val_crop=16",
           "--set", "train.eval_methods=[]", "--set", "data.val_fraction=0.34"]
    return Task("restore", data, train_restorer, kw, cli)


_MAKERS = {"classify": _classify, "segment": _segment, "restore": _restore}


@pytest.fixture(scope="session")
def _task_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Task]:
    return {name: make(tmp_path_factory.mktemp(name)) for name, make in _MAKERS.items()}


@pytest.fixture(params=list(_MAKERS))
def task(request: pytest.FixtureRequest, _task_data: dict[str, Task]) -> Task:
    """Each of classify, segment and restore in turn."""
    return _task_data[request.param]
