"""End to end: a tiny U-Net trained on synthetic masks writes its run folder; predict and eval work from the folder alone."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn.io import read_image, read_mask, write_image
from pixlearn.tasks.segment.predict import load_segmenter, overlay_mask, predict_segment_files

from .conftest import TINY


def test_run_folder_holds_everything(trained_run):
    run = trained_run.run_dir
    for name in ("config.yaml", "manifest.json", "metrics.csv", "metrics.json", "weights/best.safetensors", "weights/model.json",
                 "checkpoints/last.ckpt", "plots/overlays.png", "plots/curves.png", "report.html"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    assert m["task"] == "segment" and m["split"] == "val" and m["n"] == 2  # 20% of 12 held out, never trained on
    assert set(m["per_class"]) == {"background", "circle", "square", "triangle"} and "threshold" not in m  # softmax: no cut
    for key in ("mean_iou", "mean_dice", "pixel_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 1 and {"val_miou", "val_dice", "val_pixel_accuracy", "train_loss"} <= set(rows[0])
    card = json.loads((run / "weights" / "model.json").read_text())
    assert card["task"] == "segment" and card["model"]["source"] == "smp" and card["inference"]["tile"] == [32, 32]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["data"]["splits"]["files"]["val"]) == 2
    assert "val" in (run / "report.html").read_text()


def test_final_scores_are_those_of_the_saved_weights_on_the_val_images(trained_run):
    """Rebuilt from the folder alone, the network reproduces metrics.json on the val files of the manifest."""
    from pixlearn.tasks.segment.metrics import segmentation_metrics
    from pixlearn.tasks.segment.data import read_segment_dataset

    run = trained_run.run_dir
    seg = load_segmenter(run)
    files = set(json.loads((run / "manifest.json").read_text())["data"]["splits"]["files"]["val"])
    index = read_segment_dataset(trained_run.config.data.path)
    pairs = [(seg.predict(s.image), s.mask) for s in (index.load(i) for i, r in enumerate(index.records) if str(r.path) in files)]
    m = segmentation_metrics([p for p, _ in pairs], [t for _, t in pairs], num_classes=4)
    assert m["mean_iou"] == pytest.approx(trained_run.metrics["mean_iou"], abs=1e-9)


def test_predict_any_size(trained_run, tmp_path, rng):
    seg = load_segmenter(trained_run.run_dir)
    image = rng.integers(0, 255, (70, 100, 3), dtype=np.uint8)
    mask = seg.predict(image)  # larger than the 32-px training crops: 32-px tiles, blended
    assert mask.shape == (70, 100) and mask.dtype == np.uint8 and mask.max() < 4
    assert np.array_equal(seg.predict(image), mask)
    small = image[:20, :27]  # smaller than a tile: one pass, padded by reflection to 32 x 32 and cropped back
    x = seg.to_tensor(small)
    with torch.no_grad():
        from pixlearn.engine.tiling import pad_reflect

        direct = seg.model(pad_reflect(x, 12, 5))[:, :, :20, :27]
        assert torch.allclose(seg.logits(x), direct, atol=1e-5)
    path = write_image(tmp_path / "big.png", image)
    rows = predict_segment_files(trained_run.run_dir, [path, tmp_path / "missing.png"], out=tmp_path / "masks", overlay=True)
    assert rows[0]["error"] is None and rows[1]["error"].startswith("ImageNotFoundError")
    written = read_mask(rows[0]["mask"])  # a palette PNG of class ids (4 classes)
    assert written.shape == (70, 100) and np.array_equal(written, mask)
    assert read_image(rows[0]["overlay"]).shape == (70, 100, 3)
    assert abs(sum(rows[0]["classes"].values()) - 1.0) < 1e-6


def test_tta_is_read_from_the_run_and_can_be_overridden(trained_run, rng):
    run = trained_run.run_dir
    card = json.loads((run / "weights" / "model.json").read_text())
    assert card["inference"]["tta"] == trained_run.metrics["tta"]["value"] in ("none", "transpose")  # chosen on val (test_tta_choice)
    assert load_segmenter(run).tta == card["inference"]["tta"]
    seg = load_segmenter(run, tta="flip")
    x = seg.to_tensor(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))  # one tile: no seams
    with torch.no_grad():
        passes = [seg.model(x), seg.model(x.flip(3)).flip(3), seg.model(x.flip(2)).flip(2), seg.model(x.flip((2, 3))).flip((2, 3))]
    assert torch.allclose(seg.logits(x), sum(passes) / 4, atol=1e-5)
    with pytest.raises(ConfigError, match="tta must be one of"):
        load_segmenter(run, tta="many")


def test_overlay_colours_are_fixed_per_class():
    img = np.zeros((1, 2, 3), np.uint8)
    a = overlay_mask(img, np.array([[2, 2]]), alpha=1.0, outline=False)
    b = overlay_mask(img, np.array([[0, 2]]), alpha=1.0, outline=False)
    assert a[0, 1].tolist() == b[0, 1].tolist() != [0, 0, 0] and b[0, 0].tolist() == [0, 0, 0]


def test_bad_options_fail_before_training(shapes_data, tmp_path):
    from pixlearn.tasks.segment.train import train_segmenter

    with pytest.raises(UnknownNameError, match="encoder"):
        train_segmenter(shapes_data, encodr="tu-resnet18", out=tmp_path / "x")
    with pytest.raises(ConfigError, match="multiples of 32"):
        train_segmenter(shapes_data, encoder=TINY["encoder"], img_size=40, epochs=1, out=tmp_path / "y", progress=False)
    assert not (tmp_path / "y" / "weights").exists()
