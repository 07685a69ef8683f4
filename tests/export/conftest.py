"""Tiny run folders of every exportable task, made in-process, and one torch thread (a busy 2-core machine).

``classify_run`` is a real (one-epoch) training of the smallest CNN on 12-px colour images, so its manifest and
config are what ``pixlearn train classify`` writes. The segmentation and restoration runs are random-init networks
written the way their trainers write them (``weights/model.json`` + ``weights/best.safetensors``, a manifest that
lists held-out files): export reads nothing else, and they cost no training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pixlearn.io import write_image


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _photos(n: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Smooth colour images with a bright disc: structure a network's outputs differ on."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    out = []
    for _ in range(n):
        img = np.stack([(xx * rng.uniform(1, 4) + yy * rng.uniform(1, 4) + rng.uniform(0, 255)) % 256 for _ in range(3)], -1)
        cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(0.15, 0.3) * min(h, w)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(150, 255, 3)
        out.append(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8))
    return out


def write_run(run: Path, card: dict[str, Any], model: Any, *, manifest: dict[str, Any] | None = None,
              config: dict[str, Any] | None = None) -> Path:
    """A run folder as the trainers write it: weights/model.json, weights/best.safetensors (+ manifest, config)."""
    import yaml

    from pixlearn.models import save_weights

    (run / "weights").mkdir(parents=True, exist_ok=True)
    save_weights(model, run / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(card)})
    (run / "weights" / "model.json").write_text(json.dumps(card), encoding="utf-8")
    if manifest is not None:
        (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if config is not None:
        (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return run


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the smallest CNN on 3 colour classes of 12-px images (8 per class: 2 held out as test)."""
    import torch

    from pixlearn.train import train_classifier
    from tests.classify.helpers import make_dataset

    data = make_dataset(tmp_path_factory.mktemp("data") / "colours", per_class=8)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_classifier(data, epochs=1, model="pixlearn_smallcnn_tiny", img_size=12, batch=8, progress=False,
                                  out=tmp_path_factory.mktemp("runs") / "clf")
    finally:
        torch.set_num_threads(before)
    return Path(result.run_dir)


def _segment_run(root: Path, *, binary: bool, tta: str = "none", threshold: float = 0.5, tile: tuple[int, int] = (32, 32)) -> Path:
    import torch

    from pixlearn.models import create_segmentation_model
    from pixlearn.tasks.segment.predict import segment_model_card

    torch.manual_seed(0)
    classes = ["background", "disc"] if binary else ["background", "disc", "ring"]
    net = create_segmentation_model("unet", encoder="tu-test_efficientnet", num_classes=1 if binary else 3, img_size=32,
                                    decoder_channels=[16, 16, 8, 8, 8])
    card = segment_model_card(net, classes, binary=binary, tile=tile, overlap=0.25, multiple=32,
                              mask_coding="binary255" if binary else "index", tta=tta, threshold=threshold)
    held = []
    for k, img in enumerate(_photos(4, (40, 48), seed=1)):
        held.append(str(write_image(root / "data" / "images" / f"h{k}.png", img)))
    manifest = {"data": {"root": str(root / "data"), "splits": {"counts": {"holdout": 4}, "files": {"val": [], "holdout": held}}}}
    return write_run(root / "run", card, net, manifest=manifest)


@pytest.fixture(scope="session")
def segment_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init 3-class U-Net (timm's test encoder) for 32-px tiles; 4 held-out 40x48 images in its manifest."""
    return _segment_run(tmp_path_factory.mktemp("seg"), binary=False)


@pytest.fixture(scope="session")
def binary_segment_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, binary (one sigmoid output, classes background / disc)."""
    return _segment_run(tmp_path_factory.mktemp("segbin"), binary=True)


def _restore_run(root: Path, *, name: str, in_chans: int, scale: int, options: dict[str, Any]) -> Path:
    import torch

    from pixlearn.models import create_restorer
    from pixlearn.tasks.restore.predict import model_card

    torch.manual_seed(0)
    net = create_restorer(name, in_chans=in_chans, scale=scale, **options)
    card = model_card(net, restore_task="denoise" if scale == 1 else "sr", mode="L" if in_chans == 1 else "RGB", degradation=None)
    paths = [str(write_image(root / "data" / f"c{k}.png", img)) for k, img in enumerate(_photos(5, (32, 32), seed=2))]
    manifest = {"data": {"root": str(root / "data"), "splits": {"train": paths[:2], "val": paths[2:3], "test": paths[3:]}}}
    return write_run(root / "run", card, net, manifest=manifest, config={"train": {"tile": 24}})


@pytest.fixture(scope="session")
def restore_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init grey DnCNN (3 layers, width 4), tile 24; 2 held-out test images in its manifest."""
    return _restore_run(tmp_path_factory.mktemp("dn"), name="dncnn", in_chans=1, scale=1, options={"depth": 3, "width": 4})


@pytest.fixture(scope="session")
def sr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init colour ESPCN x2, tile 24."""
    return _restore_run(tmp_path_factory.mktemp("sr"), name="espcn", in_chans=3, scale=2, options={})
