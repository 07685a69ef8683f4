"""``pixlearn detect`` (the COCO detector from a tiny YOLOX-shaped ONNX file) and ``pixlearn predict RUN`` on a
detection run: stdout formats, files under -o, option bounds, the missing-weights message, start-up imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pixlearn.cli import main
from pixlearn.io import write_image
from tests.detect.onnx_fixtures import Obj, make_yolox_onnx


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    return make_yolox_onnx(tmp_path_factory.mktemp("cli") / "yolox_nano_coco80.onnx",
                           [Obj(100, 60, 40, 20, label=15, obj=0.9), Obj(300, 150, 64, 96, label=41, obj=0.8, stride=16)])


@pytest.fixture
def image(tmp_path):
    return write_image(tmp_path / "wide.png", np.zeros((416, 832, 3), np.uint8))  # letterboxed by r = 0.5


def test_detect_prints_coco_results(onnx, image, capsys):
    assert main(["detect", str(image), "--weights", str(onnx), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["category_id"], r["class_name"], r["bbox"]) for r in results] == [
        (17, "cat", [160.0, 100.0, 80.0, 40.0]), (47, "cup", [536.0, 204.0, 128.0, 192.0])]


def test_detect_writes_drawn_images_and_csv_and_reports_bad_files(onnx, image, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    out = tmp_path / "out"
    code = main(["detect", str(image), str(bad), "--weights", str(onnx), "--format", "csv", "-o", str(out), "--score", "0.85"])
    captured = capsys.readouterr()
    assert code == 1 and "1 of 2 image(s) could not be read" in captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("path,image_id,class_name") and len(lines) == 3  # the cat (cup below 0.85) + bad.jpg
    assert ",cat,15,17,0.9," in lines[1] and "ImageDecodeError" in lines[2]
    assert (out / "wide.png").is_file() and (out / "detections.csv").read_text().count("\n") == 3


@pytest.mark.parametrize("args, message", [(["--score", "1.5"], "score must be in [0, 1]"),
                                           (["--max-detections", "0"], "max_detections must be an integer in [1, 1000]"),
                                           (["--tile", "8"], "tile must be an integer in [64, 4096]")])
def test_detect_option_bounds(onnx, image, capsys, args, message):
    assert main(["detect", str(image), "--weights", str(onnx), *args]) == 1
    assert message in capsys.readouterr().err


def test_detect_without_weights_names_the_file_and_folders(image, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "c"))
    assert main(["detect", str(image)]) == 1
    err = capsys.readouterr().err
    for part in ("yolox_nano_coco80.onnx", str(tmp_path / "w"), str(tmp_path / "c" / "weights"), "--weights"):
        assert part in err


def test_detect_finds_the_file_in_the_weights_folder(onnx, image, monkeypatch, capsys):
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(onnx.parent))
    assert main(["detect", str(image), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "cat" in out and "cup" in out


def test_predict_on_a_detection_run(tmp_path, capsys):
    from pixlearn.models.weights import save_weights
    from pixlearn.tasks.detect.model import build_detector

    model = build_detector({"arch": "fcos", "backbone": "resnet18", "num_classes": 2, "img_size": 64})
    run = tmp_path / "run"
    save_weights(model, run / "weights" / "best.safetensors")
    (run / "weights" / "model.json").write_text(json.dumps(
        {"task": "detect", "name": "run", "spec": model.pixlearn_detect_spec, "class_names": ["cat", "dog"]}))
    img = write_image(tmp_path / "x.png", np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8))
    out = tmp_path / "out"
    code = main(["predict", str(run), str(img), "--format", "json", "--score", "0", "--max-detections", "3", "-o", str(out)])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) <= 3 and all(r["category_id"] in (1, 2) and len(r["bbox"]) == 4 for r in results)
    assert json.loads((out / "detections.json").read_text()) == results and (out / "x.png").is_file()
    assert main(["predict", str(run), str(img), "--iou", "0"]) == 1
    assert "iou must be in (0, 1]" in capsys.readouterr().err


def test_detect_with_yolox_imports_no_torch(onnx, image):
    probe = ("import sys, pixlearn.cli\n"
             f"code = pixlearn.cli.main(['detect', {str(image)!r}, '--weights', {str(onnx)!r}, '--format', 'json'])\n"
             "assert code == 0, code\n"
             "print('TORCH=' + str(any(m.split('.')[0] in ('torch', 'torchvision') for m in sys.modules)), file=sys.__stderr__)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert "TORCH=False" in proc.stderr, proc.stderr[-2000:]
