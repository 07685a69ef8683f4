"""Detection export: ``pixlearn export`` on a detect run gives one ONNX file with box decoding and NMS inside,
checked detection by detection against the run's torch detector; ``pixlearn predict EXPORT`` and
``load_onnx_model`` run it without torch and give the run's rows and files.

The runs are random-init torchvision detectors (resnet18 + FPN, 64-px input) written the way the trainer writes
them: Faster R-CNN's untrained box head scores every class near 1/3, so it gives a full set of detections to match,
and Mask R-CNN gives masks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ParityError
from pixlearn.io import write_image

SIZE = 64


def _detect_run(root: Path, arch: str, score_thresh: float = 0.05, **card_extra) -> Path:
    import torch

    from pixlearn.models.weights import save_weights
    from pixlearn.tasks.detect.model import build_detector

    torch.manual_seed(0)
    model = build_detector({"arch": arch, "backbone": "resnet18", "num_classes": 2, "img_size": SIZE,
                           "score_thresh": score_thresh})
    (root / "weights").mkdir(parents=True)
    save_weights(model, root / "weights" / "best.safetensors")
    card = {"task": "detect", "name": root.name, "spec": model.pixlearn_detect_spec, "class_names": ["cat", "dog"], **card_extra}
    (root / "weights" / "model.json").write_text(json.dumps(card))
    return root


def _images(n: int, seed: int, shape=(SIZE, 48)) -> list[np.ndarray]:
    """Images whose longer side is the input size: letterboxing pads them and resizes nothing, so the exported
    graph and the torch detector see the same pixels."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    out = []
    for _ in range(n):
        img = np.stack([(xx * rng.uniform(1, 4) + yy * rng.uniform(1, 4) + rng.uniform(0, 255)) % 256 for _ in range(3)], -1)
        y, x = rng.integers(5, h // 2), rng.integers(5, w // 2)
        img[y:y + 20, x:x + 16] = rng.integers(150, 255, 3)
        out.append(img.astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def faster(tmp_path_factory):
    """A Faster R-CNN run (COCO category ids 17, 18) and its ONNX export (3 synthetic parity images)."""
    from pixlearn.export import export_run

    run = _detect_run(tmp_path_factory.mktemp("det") / "run", "faster_rcnn", category_ids=[17, 18])
    lines: list[str] = []
    result = export_run(run, parity_images=3, log=lines.append)
    return run, result, lines


def test_export_passes_parity_and_the_card_says_what_the_graph_is(faster):
    run, result, lines = faster
    assert result.model == run / "export" / "onnx" / "model.onnx" and result.model.is_file()
    card = json.loads(result.card_path.read_text())
    assert card["task"] == "detect" and card["class_names"] == ["cat", "dog"]
    assert card["input"] == {"name": "images", "dtype": "uint8", "layout": "NHWC", "height": SIZE, "width": SIZE, "channels": 3,
                             "dynamic_batch": False, "resize": "letterbox"}
    assert card["outputs"] == {"boxes": {"dtype": "float32", "shape": ["detections", 4]},
                               "scores": {"dtype": "float32", "shape": ["detections"]},
                               "labels": {"dtype": "int64", "shape": ["detections"]}}
    d = card["details"]
    assert (d["score_thresh"], d["nms_iou"], d["max_detections"], d["category_ids"]) == (0.05, 0.5, 1000, [17, 18])
    p = card["parity"]
    assert p["passed"] and p["kind"] == "synthetic" and p["images"] == 3 and p["batches"] == [1, 1, 1]
    assert p["detections"] > 30 and p["agreement"] == 1.0 and p["unmatched"] == 0  # a real comparison, not of nothing
    assert p["max_abs_diff"] <= p["tolerance"] == 0.05 and p["max_score_diff"] <= 1e-4
    assert any("torch detection(s) matched" in line and "passed" in line for line in lines)


def test_onnxruntime_detections_equal_the_torch_detectors(faster):
    from pixlearn.export.runtime import OnnxDetector, load_onnx_model
    from pixlearn.tasks.detect.model import load_run_detector

    run, result, _ = faster
    ours, theirs = load_onnx_model(result.folder), load_run_detector(run)
    assert isinstance(ours, OnnxDetector) and ours.class_names == theirs.class_names and ours.category_ids == (17, 18)
    images = _images(2, seed=3) + [_images(1, seed=4, shape=(40, SIZE))[0]]
    for a, b in zip(ours.predict(images, max_detections=20), theirs.predict(images, max_detections=20)):
        assert 0 < len(a) == len(b) <= 20
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_predict_export_gives_the_rows_and_files_of_predict_run(faster, tmp_path, capsys):
    from pixlearn.cli import main

    run, result, _ = faster
    folder = tmp_path / "imgs"
    for k, img in enumerate(_images(2, seed=5)):
        write_image(folder / f"p{k}.png", img)
    got = {}
    for name, model in (("run", run), ("export", result.folder)):
        out = tmp_path / name
        assert main(["predict", str(model), str(folder), "-o", str(out), "--format", "json", "--max-detections", "10"]) == 0
        assert json.loads(capsys.readouterr().out) == json.loads((out / "detections.json").read_text())
        got[name] = (json.loads((out / "detections.json").read_text()), sorted(p.name for p in out.iterdir()))
    (rows_run, files_run), (rows_exp, files_exp) = got["run"], got["export"]
    assert files_run == files_exp == ["detections.json", "p0.png", "p1.png"]
    assert len(rows_run) == len(rows_exp) == 20
    for a, b in zip(rows_run, rows_exp):
        assert (a["image_id"], a["file_name"], a["category_id"], a["class_name"]) == (b["image_id"], b["file_name"], b["category_id"], b["class_name"])
        assert a["category_id"] in (17, 18)
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-2)  # rounded to 2 decimals in the COCO file
        assert abs(a["score"] - b["score"]) < 1e-4


def test_running_the_exported_detector_imports_no_torch(faster):
    _, result, _ = faster
    code = (
        "import sys, numpy as np\n"
        "from pixlearn.export.runtime import load_onnx_model\n"
        "from pixlearn.tasks.detect.predict import predict_detect_files\n"
        f"det = load_onnx_model({str(result.folder)!r})\n"
        "found = det.predict([np.full((30, 50, 3), 90, np.uint8)])[0]\n"
        "rows = predict_detect_files(det, ['missing.png'])\n"
        "assert len(found) > 0 and rows[0]['error']\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'lightning') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_thresholds_outside_what_the_graph_bakes_in_are_typed_errors(faster):
    from pixlearn.export.runtime import load_onnx_model

    det = load_onnx_model(faster[1].folder)
    img = [_images(1, seed=6)[0]]
    with pytest.raises(ConfigError, match=r"below the floor 0.05 baked into the exported graph.*--score 0.05"):
        det.predict(img, score=0.01)
    with pytest.raises(ConfigError, match=r"NMS at IoU 0.5 \(baked in\).*--iou 0.5"):
        det.predict(img, iou=0.7)
    with pytest.raises(ConfigError, match=r"max_detections must be in 1..1000"):
        det.predict(img, max_detections=1001)


def test_mask_rcnn_export_gives_masks_equal_to_the_torch_detectors(tmp_path):
    from pixlearn.export import export_run
    from pixlearn.export.runtime import load_onnx_model
    from pixlearn.tasks.detect.model import load_run_detector

    run = _detect_run(tmp_path / "mask", "mask_rcnn", score_thresh=0.4)  # a floor above most untrained scores: fewer masks to paste
    result = export_run(run, parity_images=2)
    assert result.card["outputs"]["masks"] == {"dtype": "float32", "shape": ["detections", 1, SIZE, SIZE]}
    p = result.card["parity"]
    assert p["passed"] and p["detections"] > 0 and result.card["details"]["masks"] is True
    img = [_images(1, seed=7)[0]]
    kw = {"score": 0.4, "max_detections": 5}
    a, b = load_onnx_model(result.folder).predict(img, **kw)[0], load_run_detector(run).predict(img, **kw)[0]
    assert a.masks is not None and 0 < len(a) == len(b) and a.masks.shape == b.masks.shape == (len(a), SIZE, 48)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    assert np.mean(a.masks == b.masks) > 0.999


def test_parity_failure_leaves_the_file_as_failed_and_exits_1(faster, tmp_path, capsys):
    from pixlearn.cli import main
    from pixlearn.export import export_run

    run = faster[0]
    assert faster[1].card["parity"]["max_abs_diff"] > 1e-12  # onnxruntime's boxes are not bit-equal to torch's
    out = tmp_path / "tight"
    with pytest.raises(ParityError, match=r"max \|diff\| of boxes .* > tolerance 1e-12"):
        export_run(run, out=out, tolerance=1e-12, parity_images=1)
    assert (out / "model.onnx.failed").is_file() and not (out / "model.onnx").exists()
    assert json.loads((out / "model.json.failed").read_text())["parity"]["passed"] is False
    assert main(["export", str(run), "-o", str(tmp_path / "cli"), "--tolerance", "1e-12", "--parity-images", "1"]) == 1
    assert "does not match the torch predictor" in capsys.readouterr().err and (tmp_path / "cli" / "model.onnx.failed").is_file()


def test_other_formats_and_int8_are_refused_for_detectors_before_any_work(faster, tmp_path, capsys):
    from pixlearn.cli import main
    from pixlearn.export import export_run

    run = faster[0]
    for fmt in ("torchscript", "exported-program"):
        with pytest.raises(ConfigError, match=rf"exports to ONNX only \(--format onnx, or triton built on it\), not {fmt}"):
            export_run(run, format=fmt, out=tmp_path / fmt)
        assert not (tmp_path / fmt).exists()
    calib = tmp_path / "calib"
    write_image(calib / "a.png", _images(1, seed=8)[0])
    assert main(["export", str(run), "-o", str(tmp_path / "q"), "--int8", "--calibration", str(calib)]) != 0
    err = capsys.readouterr().err
    assert "--int8 is not supported for detect runs" in err and "--format onnx" in err
    assert not (tmp_path / "q" / "model.onnx").exists()


def test_fcos_and_retinanet_are_refused_naming_the_architectures_that_export(tmp_path):
    from pixlearn.export import export_run

    run = _detect_run(tmp_path / "fcos", "fcos")
    with pytest.raises(ConfigError, match=r"a fcos detector does not export to ONNX yet.*faster_rcnn, mask_rcnn, ssdlite"):
        export_run(run)
    assert not (run / "export" / "onnx" / "model.onnx").exists()


def test_parity_counts_unmatched_detections_and_excuses_those_at_the_score_floor():
    from pixlearn.export.parity import compare_detections

    def dets(boxes, scores, labels):
        return {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "scores": np.array(scores, np.float32),
                "labels": np.array(labels, np.int64)}

    ref = [dets([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.9, 0.6, 0.05], [0, 1, 0])]
    got = [dets([[0, 0, 10, 10], [20, 20, 30, 31]], [0.9, 0.6], [0, 1])]  # the second box moved: IoU 0.91
    r = compare_detections(ref, got, tolerance=0.05, score_floor=0.05)
    assert not r["passed"] and r["unmatched"] == 2 and r["agreement"] == 0.5  # 1 of max(3, 2) - 1 excused (the floor's box)
    got = [dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.6], [0, 0])]  # same box, another label
    assert compare_detections(ref, got, tolerance=0.05, score_floor=0.05)["unmatched"] == 2
    got = [dets([[0, 0, 10, 10], [20, 20, 30, 30.01]], [0.9, 0.6002], [0, 1])]
    r = compare_detections(ref, got, tolerance=0.05, score_floor=0.05)
    assert r["unmatched"] == 0 and r["agreement"] == 1.0 and not r["passed"]  # score 2e-4 apart > 1e-4
    assert r["max_abs_diff"] == pytest.approx(0.01, abs=1e-5)


def test_triton_repository_of_a_detector_has_a_fixed_batch_and_variable_detections(faster, tmp_path):
    from pixlearn.export.triton import write_triton_repo

    model_dir = write_triton_repo(faster[1].folder, tmp_path / "repo", name="det", max_batch_size=8)
    text = (model_dir / "config.pbtxt").read_text()
    assert "max_batch_size: 0" in text and "dynamic_batching" not in text
    assert f"dims: [ 1, {SIZE}, {SIZE}, 3 ]" in text and "dims: [ -1, 4 ]" in text and "dims: [ -1 ]" in text
    assert (model_dir / "1" / "model.onnx").is_file() and not (model_dir / "labels.txt").exists()
