"""Detection over image files: rows, COCO results JSON (xywh, the dataset's category ids, mask RLE), CSV, drawn
images, bad files reported and skipped, tiling on request or from the run, run folders and YOLOX files loaded."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError
from pixlearn.io import write_image
from pixlearn.tasks.detect.detections import Detections
from pixlearn.tasks.detect.predict import (TABLE_COLUMNS, coco_results, is_detect_run, load_detector,
                                           predict_detect_files)
from pixlearn.tasks.detect.tiles import TiledDetector
from pixlearn.tasks.detect.yolox import YoloxDetector
from tests.detect.onnx_fixtures import Obj, make_yolox_onnx


class SquareDetector:
    """Finds the bright square of each image (pixels > 128), class 1 ("dog"), with its mask; counts its calls."""

    class_names = ("cat", "dog")
    name = "square"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, images, *, score=0.25, iou=0.5, max_detections=100):
        out = []
        for im in images:
            self.calls += 1
            m = im[..., 0] > 128
            if not m.any():
                out.append(Detections.empty(self.class_names))
                continue
            ys, xs = np.nonzero(m)
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            out.append(Detections([box], [0.8], [1], self.class_names, m[None]).filter(min_score=score))
        return out


def _square_image(h, w, box):
    im = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    im[y0:y1, x0:x1] = 255
    return im


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "images"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.png", _square_image(60, 80, (10, 20, 30, 50)))
    write_image(src / "sub" / "a.png", _square_image(40, 40, (0, 0, 8, 8)))  # same name, another folder
    (src / "broken.png").write_bytes(b"not a png")
    return src


def test_rows_results_json_csv_and_drawn_images(folder, tmp_path):
    out = tmp_path / "out"
    rows = predict_detect_files(SquareDetector(), [folder, tmp_path / "missing.jpg"], out=out)
    by_name = {r["path"].split("images/")[-1]: r for r in rows}
    assert set(by_name) == {"a.png", "broken.png", "sub/a.png", str(tmp_path / "missing.jpg")}
    a = by_name["a.png"]
    assert (a["width"], a["height"], a["count"], a["error"]) == (80, 60, 1, None)
    det = a["detections"][0]
    assert det["box"] == [10.0, 20.0, 30.0, 50.0] and det["class_name"] == "dog" and det["category_id"] == 2
    assert by_name["broken.png"]["error"].startswith("ImageDecodeError") and by_name["broken.png"]["count"] == 0
    assert "ImageNotFoundError" in by_name[str(tmp_path / "missing.jpg")]["error"]
    assert [r["image_id"] for r in rows] == [1, 2, 3, 4]
    drawn = sorted(p.name for p in out.glob("*.png"))
    assert drawn == ["a-2.png", "a.png"] and a["drawn"] == str(out / "a.png")
    results = json.loads((out / "detections.json").read_text())
    assert len(results) == 2
    first = next(r for r in results if r["image_id"] == a["image_id"])
    assert first["bbox"] == [10.0, 20.0, 20.0, 30.0] and first["category_id"] == 2 and first["file_name"] == "a.png"
    from pycocotools import mask as mask_utils

    rle = dict(first["segmentation"], counts=first["segmentation"]["counts"].encode())
    decoded = mask_utils.decode(rle).astype(bool)
    assert decoded.shape == (60, 80) and decoded.sum() == 20 * 30 and decoded[20:50, 10:30].all()

    predict_detect_files(SquareDetector(), [folder / "a.png"], out=out, fmt="csv")
    with open(out / "detections.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == TABLE_COLUMNS
    assert [(t["class_name"], t["x0"], t["y1"], t["category_id"]) for t in table] == [("dog", "10.0", "50.0", "2")]


def test_one_image_to_one_drawn_file(folder, tmp_path):
    rows = predict_detect_files(SquareDetector(), folder / "a.png", out=tmp_path / "drawn.jpg")
    assert rows[0]["drawn"] == str(tmp_path / "drawn.jpg") and (tmp_path / "drawn.jpg").is_file()
    with pytest.raises(ConfigError, match="one image file"):
        predict_detect_files(SquareDetector(), folder, out=tmp_path / "drawn.jpg")


def test_options_are_checked_before_any_work(folder):
    det = SquareDetector()
    for bad in (dict(score=-0.1), dict(iou=0), dict(max_detections=5000), dict(tile=10), dict(tile=256, overlap=0.95),
                dict(fmt="xml")):
        with pytest.raises(ConfigError):
            predict_detect_files(det, folder, **bad)
    assert det.calls == 0


def test_tile_on_request_runs_windows_and_maps_back(tmp_path):
    write_image(tmp_path / "big.png", _square_image(300, 400, (150, 100, 170, 120)))
    det = SquareDetector()
    rows = predict_detect_files(det, tmp_path / "big.png", tile=128, overlap=0.25)
    assert det.calls > 1 and rows[0]["count"] == 1
    assert rows[0]["detections"][0]["box"] == [150.0, 100.0, 170.0, 120.0]


def test_yolox_file_gives_coco_category_ids(tmp_path):
    onnx = make_yolox_onnx(tmp_path / "y.onnx", [Obj(100, 60, 40, 20, label=15, obj=0.9)])
    write_image(tmp_path / "wide.png", np.zeros((416, 832, 3), np.uint8))
    assert isinstance(load_detector(onnx), YoloxDetector)
    (tmp_path / "weights").mkdir()
    make_yolox_onnx(tmp_path / "weights" / "yolox_nano_coco80.onnx", [])
    assert load_detector(tmp_path / "weights").path == tmp_path / "weights" / "yolox_nano_coco80.onnx"
    rows = predict_detect_files(onnx, tmp_path / "wide.png")
    assert coco_results(rows) == [{"image_id": 1, "file_name": "wide.png", "category_id": 17,  # COCO's id of "cat"
                                   "class_name": "cat",
                                   "bbox": [160.0, 100.0, 80.0, 40.0], "score": pytest.approx(0.9, abs=1e-4)}]


def _tiny_run(root, **card_extra):
    from pixlearn.models.weights import save_weights
    from pixlearn.tasks.detect.model import build_detector

    model = build_detector({"arch": "fcos", "backbone": "resnet18", "num_classes": 2, "img_size": 64})
    (root / "weights").mkdir(parents=True)
    save_weights(model, root / "weights" / "best.safetensors")
    card = {"task": "detect", "name": root.name, "spec": model.pixlearn_detect_spec, "class_names": ["cat", "dog"], **card_extra}
    (root / "weights" / "model.json").write_text(json.dumps(card))
    return root


def test_run_folder_loads_with_its_category_ids_and_tile(tmp_path):
    run = _tiny_run(tmp_path / "run", category_ids=[17, 18], tile=64, tile_overlap=0.25)
    assert is_detect_run(run) and not is_detect_run(tmp_path)
    det = load_detector(run)
    assert det.class_names == ("cat", "dog") and det.category_ids == (17, 18) and det.run_tile == (64, 0.25)
    write_image(tmp_path / "x.png", np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8))
    rows = predict_detect_files(run, tmp_path / "x.png", score=0.0, max_detections=5)
    assert rows[0]["error"] is None and rows[0]["count"] <= 5
    assert all(d["category_id"] in (17, 18) for d in rows[0]["detections"])
    plain = load_detector(_tiny_run(tmp_path / "plain"))
    assert plain.category_ids == (1, 2) and plain.run_tile is None and not isinstance(plain, TiledDetector)


def test_not_a_detection_run_is_a_clear_error(tmp_path):
    (tmp_path / "seg" / "weights").mkdir(parents=True)
    (tmp_path / "seg" / "weights" / "model.json").write_text(json.dumps({"task": "segment"}))
    with pytest.raises(ConfigError, match="not a detection run"):
        load_detector(tmp_path / "seg")
    with pytest.raises(ConfigError, match="no such run folder"):
        load_detector(tmp_path / "nothing")
