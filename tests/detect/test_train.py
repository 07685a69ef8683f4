"""pixlearn train detect: a run folder that predicts, the defaults it chooses (arch for polygons, tiles, class balance),
the --minutes plan under a fake clock, resume, and typed errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.types import Task

TINY = {"backbone": "resnet18", "pretrained": False, "img_size": 64, "batch": 2, "fpn_channels": 64, "progress": False}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _voc(root: Path, *, n: int = 4, size: tuple[int, int] = (80, 96), boxes: bool = True, labels: list[int] | None = None) -> Path:
    """A Pascal VOC folder of ``n`` images with a red and a blue rectangle each (or no objects at all)."""
    import pixlearn
    from pixlearn.data.index import DatasetIndex, Record
    from pixlearn.data.writers import write_voc

    rng = np.random.default_rng(0)
    src = root / "src"
    src.mkdir(parents=True)
    records = []
    h, w = size
    for i in range(n):
        img = np.full((h, w, 3), 200, np.uint8)
        bs, ls = [], []
        for k, colour in enumerate(((220, 30, 30), (30, 30, 220))):
            if labels is not None and k not in (labels[i % len(labels)],):
                continue
            x0, y0 = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
            bw, bh = int(rng.integers(12, 28)), int(rng.integers(12, 28))
            img[y0:y0 + bh, x0:x0 + bw] = colour
            bs.append([x0, y0, x0 + bw, y0 + bh])
            ls.append(k)
        path = pixlearn.write_image(src / f"im{i}.png", img)
        records.append(Record(path, boxes=np.array(bs, np.float32).reshape(-1, 4) if boxes else np.zeros((0, 4), np.float32),
                              box_labels=np.array(ls if boxes else [], np.int64)))
    write_voc(DatasetIndex(src, "voc", Task.DETECT, ["red", "blue"], records), root / "voc")
    return root / "voc"


def test_train_detect_from_the_cli_makes_a_run_folder_that_predicts(tmp_path):
    from typer.testing import CliRunner

    from pixlearn.cli.app import app
    from pixlearn.tasks.detect.model import load_run_detector

    data = _voc(tmp_path)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "detect", "--data", str(data), "--out", str(run), "--epochs", "1", "--model", "faster_rcnn",
                                      "--backbone", "resnet18", "--no-pretrained", "--img-size", "64", "--batch", "2",
                                      "--set", "model.fpn_channels=64", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {"config.yaml", "manifest.json", "metrics.csv", "metrics.json", "report.html"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "detect" and metrics["split"] == "val" and metrics["n"] == 1 and 0.0 <= metrics["map50"] <= 1.0
    assert metrics["steps"] >= 1 and "from random weights (--no-pretrained)" in result.output
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "val_map50", "val_map"} <= set(header)
    card = json.loads((run / "weights" / "model.json").read_text())
    assert card["task"] == "detect" and card["class_names"] == ["red", "blue"] and card["spec"]["arch"] == "faster_rcnn"
    assert len(card["spec"]["anchor_sizes"]) == 4  # fitted to the training boxes, one size per level
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["anchors"]["fitted"] and manifest["model"]["spec"]["arch"] == "faster_rcnn"
    detector = load_run_detector(run)
    (dets,) = detector.predict([np.zeros((40, 70, 3), np.uint8)], score=0.0)
    assert dets.class_names == ("red", "blue") and (len(dets) == 0 or dets.boxes[:, 2].max() <= 70)


def test_auto_picks_mask_rcnn_for_polygons_and_the_default_for_boxes(tmp_path):
    from pixlearn.data.samples import write_sample
    from pixlearn.tasks.detect.config import DEFAULT_ARCH, DetectConfig
    from pixlearn.tasks.detect.train import DetectHooks

    write_sample("shapes", tmp_path / "coco", n=4, task="detect", size=64)  # COCO with polygon segmentations
    hooks = DetectHooks(progress=False)
    cfg = DetectConfig.from_overrides(data=str(tmp_path / "coco"), backbone="resnet18", pretrained=False)
    hooks.read_data(cfg)
    assert hooks.resolve(cfg).model.arch == "mask_rcnn" and "instance masks" in hooks.notes.lines[0]
    hooks = DetectHooks(progress=False)
    cfg = DetectConfig.from_overrides(data=str(_voc(tmp_path / "b")), backbone="resnet18", pretrained=False)
    hooks.read_data(cfg)
    assert hooks.resolve(cfg).model.arch == DEFAULT_ARCH


def test_mask_rcnn_trains_on_polygons_and_predicts_masks(tmp_path):
    from pixlearn.data.samples import write_sample
    from pixlearn.tasks.detect.model import load_run_detector
    from pixlearn.tasks.detect.train import train_detector

    write_sample("shapes", tmp_path / "coco", n=4, task="detect", size=64)
    train_detector(tmp_path / "coco", out=tmp_path / "run", epochs=1, **TINY)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["arch"] == "mask_rcnn" and "mask_map50" in metrics
    (dets,) = load_run_detector(tmp_path / "run").predict([np.zeros((48, 64, 3), np.uint8)], score=0.0)
    assert dets.masks is not None and dets.masks.shape[1:] == (48, 64)


def test_the_minutes_plan_chooses_the_input_size_from_timed_steps(tmp_path, monkeypatch):
    import pixlearn.engine.budget as budget
    import pixlearn.tasks.detect.recipe as recipe
    from pixlearn.tasks.detect.train import train_detector
    from tests.engine.clock import FakeClock, Tick

    cost = {64: 0.05, 96: 0.3, 128: 5.0}  # seconds per step the probe "measures" at each size
    now, size = [0.0], [64]
    resize = recipe._resize_transform

    def fake_resize(model, s):
        size[0] = s
        resize(model, s)

    def probe_clock() -> float:  # each reading advances by two steps at the current size: probes of 2 steps read it twice
        now[0] += 2 * cost[size[0]]
        return now[0]

    monkeypatch.setattr(recipe, "IMG_SIZES", (64, 96, 128))
    monkeypatch.setattr(recipe, "_resize_transform", fake_resize)
    monkeypatch.setattr(recipe, "probe_clock", probe_clock)
    clock = FakeClock(30.0)  # the fit: 30 s of budget clock per training step
    monkeypatch.setattr(budget, "monotonic", clock)
    opts = {k: v for k, v in TINY.items() if k not in ("img_size", "batch")}
    res = train_detector(_voc(tmp_path), out=tmp_path / "run", minutes=2, arch="fcos", callbacks=[Tick(clock)], **opts)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    plan = manifest["plan"]
    # 2 min less the 12 % reserve = 105.6 s: 128 px gives 21 steps (< 300 wanted), 96 px gives 352 -> 96 px
    assert plan["choice"] == {"img_size": 96, "batch": 4} and [p["choice"]["img_size"] for p in plan["probed"]] == [128, 96]
    assert "img_size 128, batch 4 would give 21 epochs" in plan["text"]
    assert res.config.data.img_size == 96 and res.stop_reason == "budget"
    assert "img_size: 96" in (tmp_path / "run" / "config.yaml").read_text()


def test_resume_extends_a_run_even_when_the_backbone_file_is_gone(tmp_path, monkeypatch):
    import torchvision
    from safetensors.torch import save_file

    from pixlearn.tasks.detect.train import train_detector

    folder = tmp_path / "weights"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in torchvision.models.resnet18(weights=None).state_dict().items()}, str(folder / "resnet18.safetensors"))
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    data = _voc(tmp_path)
    first = train_detector(data, out=tmp_path / "run", epochs=1, arch="ssdlite", **{**TINY, "pretrained": True})
    (folder / "resnet18.safetensors").unlink()  # the checkpoint holds the backbone: resuming needs no weights file
    more = train_detector(resume=tmp_path / "run", extend=1, progress=False)
    assert more.epochs_run == 2 and more.history[0]["train_loss"] == first.history[0]["train_loss"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["resumed"][-1]["extend"] == 1 and manifest["epochs_completed"] == 2


def test_tiles_cut_large_images_and_drop_boxes_mostly_cut_away(tmp_path):
    from pixlearn.data.readers import read_dataset
    from pixlearn.tasks.detect.data import DetectDataset, auto_tile, tile_items

    data = _voc(tmp_path, n=2, size=(150, 300))
    index = read_dataset(data)
    items = tile_items(index, [0, 1], tile=128, overlap=0.2)
    assert len(items) == 2 * 6 and all(w is not None and w[2] - w[0] <= 128 and w[3] - w[1] <= 128 for _, w in items)
    ds = DetectDataset(index, items, img_size=64, augment=None)
    rec = index.records[0]
    for k, (i, (x0, y0, x1, y1)) in enumerate(items[:6]):
        item = ds[k]
        assert tuple(item.image.shape) == (3, 64, 64)
        boxes = np.asarray(rec.boxes)
        inter_w = np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
        inter_h = np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None)
        kept = (inter_w * inter_h) >= 0.5 * (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert len(item.targets["boxes"]) == int(kept.sum())  # clipped to the window; boxes with < half their area left dropped
        assert bool((item.targets["boxes"] <= 64).all()) and bool((item.targets["labels"] >= 1).all())
    tile, why = auto_tile(index, [0, 1], img_size=64)
    assert tile == 64 and "tiles of 64 px" in why  # median box ~20 px of a 300-px image -> ~4 px at 64 px


def test_repeat_factor_sampling_when_one_class_is_rare(tmp_path):
    from pixlearn.data.readers import read_dataset
    from pixlearn.tasks.detect.data import expand_repeats, repeat_factors

    index = read_dataset(_voc(tmp_path, n=10, labels=[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))  # blue in 1 image of 10
    factors, info = repeat_factors(index, range(10), threshold=None)
    blue = [i for i, r in enumerate(index.records) if 1 in np.asarray(r.box_labels).tolist()]
    assert info["on"] and info["threshold"] == pytest.approx(0.9 / 4)
    assert factors[blue[0]] == pytest.approx(np.sqrt(0.225 / 0.1)) and all(f == 1.0 for i, f in enumerate(factors) if i not in blue)
    assert len(expand_repeats(list(range(10)), factors, seed=0)) in (10, 11)
    _, even = repeat_factors(read_dataset(_voc(tmp_path / "even", n=4)), range(4), threshold=None)
    assert not even["on"]


def test_bad_input_gives_typed_errors_naming_the_fix(tmp_path):
    from pixlearn.tasks.detect.train import train_detector

    with pytest.raises(ConfigError, match="no image has a box"):
        train_detector(_voc(tmp_path / "empty", boxes=False), out=tmp_path / "r1", epochs=1, **TINY)
    data = _voc(tmp_path / "ok")
    with pytest.raises(ConfigError, match="model.arch: .*unknown detector architecture 'yolo' Valid: 'auto', 'faster_rcnn'"):
        train_detector(data, out=tmp_path / "r2", epochs=1, arch="yolo", **TINY)
    with pytest.raises(ConfigError, match="tile must be 0 \\(off\\) or at least 64 pixels, got 16; use --tile 64"):
        train_detector(data, out=tmp_path / "r3", epochs=1, tile=16, **TINY)
    with pytest.raises(UnknownNameError, match="did you mean 'arch'"):
        train_detector(data, out=tmp_path / "r4", arhc="fcos", **TINY)
    with pytest.raises(ConfigError, match="no such folder"):
        train_detector(tmp_path / "nothing", out=tmp_path / "r5", **TINY)


def test_pretrained_backbone_comes_from_the_local_weights_folder(tmp_path, monkeypatch):
    import torchvision
    from safetensors.torch import save_file

    from pixlearn.models.weights import WeightsNotFoundError
    from pixlearn.tasks.detect.config import DetectConfig
    from pixlearn.tasks.detect.train import DetectHooks

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    data = _voc(tmp_path)
    cfg = DetectConfig.from_overrides(data=str(data), backbone="resnet18", img_size=64, batch=2, fpn_channels=64, epochs=1)
    hooks = DetectHooks(progress=False)
    hooks.read_data(cfg)
    assert hooks.resolve(cfg).model.pretrained is False and "from random weights" in hooks.notes.lines[1]
    with pytest.raises(WeightsNotFoundError, match="pixlearn weights add"):
        DetectHooks(progress=False).resolve(DetectConfig.from_overrides(cfg, pretrained=True))

    classifier = torchvision.models.resnet18(weights=None)
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(folder / "resnet18.safetensors"))
    hooks = DetectHooks(progress=False)
    hooks.read_data(cfg)
    resolved = hooks.resolve(cfg)
    assert resolved.model.pretrained and resolved.model.backbone_lr_mult == 0.1 and resolved.model.freeze_bn
    prep = hooks.prepare(resolved, hooks.index, hooks.plan(resolved, hooks.index), tmp_path / "run")
    body = prep.model.backbone.body.state_dict()
    assert torch.equal(body["layer4.1.conv2.weight"], classifier.state_dict()["layer4.1.conv2.weight"])
    assert any("tensors loaded into the resnet18 feature extractor" in line for line in hooks.notes.lines)
