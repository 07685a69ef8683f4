"""Exported ONNX models through onnxruntime: the torch predictors' rows without torch, in ``pixlearn predict`` and in
the service (REST and OIP v2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.io import write_image


def _export(run: Path, out: Path) -> Path:
    from pixlearn.export import export_run

    export_run(run, out=out)
    return out


@pytest.fixture(scope="session")
def classify_onnx(classify_run, tmp_path_factory) -> Path:
    return _export(classify_run, tmp_path_factory.mktemp("clf_onnx"))


@pytest.fixture(scope="session")
def segment_onnx(segment_run, tmp_path_factory) -> Path:
    return _export(segment_run, tmp_path_factory.mktemp("seg_onnx"))


@pytest.fixture(scope="session")
def binary_segment_onnx(binary_segment_run, tmp_path_factory) -> Path:
    return _export(binary_segment_run, tmp_path_factory.mktemp("segbin_onnx"))


@pytest.fixture(scope="session")
def restore_onnx(restore_run, tmp_path_factory) -> Path:
    return _export(restore_run, tmp_path_factory.mktemp("dn_onnx"))


@pytest.fixture(scope="session")
def sr_onnx(sr_run, tmp_path_factory) -> Path:
    return _export(sr_run, tmp_path_factory.mktemp("sr_onnx"))


def _images(sizes, seed: int = 0) -> list[np.ndarray]:
    """Smooth colour pictures with a bright square (structure the networks' outputs differ on)."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        yy, xx = np.mgrid[:h, :w]
        img = np.stack([(xx * rng.uniform(1, 5) + yy * rng.uniform(1, 5) + rng.uniform(0, 255)) % 256 for _ in range(3)], -1)
        y, x = h // 4, w // 3
        img[y:y + h // 2, x:x + w // 3] = rng.integers(120, 255, 3)
        out.append(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# ---------------------------------------------------------------- parity with the torch predictors
def test_resize_helper_gives_the_torch_predictors_pixels():
    """The classifier is fed what its run was fed: the helper's resize against the torch predictor's, shrinking and growing."""
    import torch

    from pixlearn.export.runtime import resize_image
    from pixlearn.tasks.classify.predict import _resize_uint8

    for img, size in zip(_images([(37, 53), (9, 7), (64, 64)], seed=3), [(12, 12), (16, 20), (31, 17)]):
        ours = resize_image(img, size)
        theirs = _resize_uint8(torch.from_numpy(img).permute(2, 0, 1)[None].contiguous(), size)[0].permute(1, 2, 0).numpy()
        assert ours.shape == (*size, 3) and ours.dtype == np.uint8
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1, size


def test_classifier_rows_equal_the_torch_classifier_rows(classify_run, classify_onnx):
    from pixlearn.export.runtime import OnnxClassifier, load_onnx_model
    from pixlearn.tasks.classify.predict import load_classifier

    onnx_clf = load_onnx_model(classify_onnx)
    assert isinstance(onnx_clf, OnnxClassifier) and onnx_clf.task == "classify" and onnx_clf.backend == "onnxruntime"
    torch_clf = load_classifier(classify_run)
    assert onnx_clf.classes == torch_clf.classes
    images = _images([(12, 12), (12, 12), (30, 22), (5, 9)], seed=1)
    images.append(images[0][..., 0].copy())  # a grey picture
    ours, theirs = onnx_clf.predict(images, top_k=3), torch_clf.predict(images, top_k=3)
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert set(a) == set(b) == {"label", "score", "top_k"}
        assert [e["label"] for e in a["top_k"]] == [e["label"] for e in b["top_k"]]
        assert np.allclose([e["score"] for e in a["top_k"]], [e["score"] for e in b["top_k"]], atol=1e-4, rtol=0)
    assert onnx_clf.predict([]) == []


@pytest.mark.parametrize("fixture", ["segment", "binary_segment"])
def test_segmenter_masks_equal_the_torch_segmenter_masks(fixture, request):
    """One tile (32x32) and images tiled with blended overlaps and padding (40x48, 70x45): the same masks."""
    from pixlearn.export.runtime import OnnxSegmenter, load_onnx_model
    from pixlearn.tasks.segment.predict import load_segmenter

    run, exported = request.getfixturevalue(f"{fixture}_run"), request.getfixturevalue(f"{fixture}_onnx")
    seg, ref = load_onnx_model(exported), load_segmenter(run)
    assert isinstance(seg, OnnxSegmenter) and seg.classes == ref.classes and seg.mask_coding == ref.mask_coding
    for img in _images([(32, 32), (40, 48), (70, 45)], seed=2):
        mask, want = seg.predict(img), ref.predict(img)
        assert mask.shape == img.shape[:2] and mask.dtype == np.uint8
        assert np.array_equal(mask, want), (img.shape, int((mask != want).sum()))
        assert np.abs(seg.predict_proba(img) - ref.predict_proba(img)).max() < 1e-4


def test_a_binary_segmenter_exports_with_its_decision_threshold(tmp_path):
    """A run whose card says threshold t: the exported graph's masks and the runtime's are the torch segmenter's at t."""
    import onnxruntime as ort

    from pixlearn.export.runtime import load_onnx_model
    from pixlearn.tasks.segment.predict import load_segmenter
    from tests.export.conftest import _segment_run

    img = _images([(40, 48)], seed=4)[0]
    p = load_segmenter(_segment_run(tmp_path / "half", binary=True)).predict_proba(img)[1]
    t = round(float(np.quantile(p, 0.5)), 4)  # a cut through the middle of this network's probabilities
    run = _segment_run(tmp_path / "cut", binary=True, threshold=t)  # the same seeded network
    ref, seg = load_segmenter(run), load_onnx_model(_export(run, tmp_path / "onnx"))
    assert ref.threshold == seg.threshold == t
    want = ref.predict(img)
    assert np.array_equal(want, (p > t).astype(np.uint8)) and 0 < want.mean() < 1
    assert np.array_equal(seg.predict(img), want)
    graph = ort.InferenceSession(str(next((tmp_path / "onnx").glob("*.onnx"))), providers=["CPUExecutionProvider"])
    mask, probs = graph.run(None, {graph.get_inputs()[0].name: img[None, :32, :32].copy()})
    assert np.array_equal(mask[0], (probs[0, 1] > t).astype(mask.dtype))
    card = json.loads((tmp_path / "onnx" / "model.json").read_text())
    card["details"]["threshold"] = 1.5  # a damaged card: refused when loaded, not image by image
    (tmp_path / "onnx" / "model.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="strictly between 0 and 1, got 1.5"):
        load_onnx_model(tmp_path / "onnx")


@pytest.mark.parametrize("binary,tta", [(True, "d4"), (False, "flip"), (True, "transpose")])
def test_a_run_with_test_time_augmentation_exports_with_it(binary, tta, tmp_path):
    """The exported segmenter averages the same mirrored views as the torch one: the same masks and probabilities."""
    from pixlearn.export.runtime import load_onnx_model
    from pixlearn.tasks.segment.predict import load_segmenter
    from tests.export.conftest import _segment_run

    run = _segment_run(tmp_path / "seg", binary=binary, tta=tta)
    seg, ref = load_onnx_model(_export(run, tmp_path / "onnx")), load_segmenter(run)
    assert seg.tta == ref.tta == tta
    plain = load_segmenter(run, tta="none")
    differs = False
    for img in _images([(32, 32), (40, 48)], seed=3):
        assert np.array_equal(seg.predict(img), ref.predict(img)), (img.shape, tta)
        assert np.abs(seg.predict_proba(img) - ref.predict_proba(img)).max() < 1e-4
        differs |= bool(np.abs(plain.predict_proba(img) - ref.predict_proba(img)).max() > 1e-3)
    assert differs  # the views really are averaged: not the plain network's output


def test_a_transposing_view_needs_square_tiles_in_the_exported_graph(tmp_path):
    """The graph's input size is fixed: a transposed 32x64 tile would not fit it, so the runtime refuses the card at load."""
    from pixlearn.export.runtime import load_onnx_model
    from tests.export.conftest import _segment_run

    out = _export(_segment_run(tmp_path / "seg", binary=True, tta="transpose", tile=(32, 64)), tmp_path / "onnx")
    with pytest.raises(ConfigError, match="transpose test-time augmentation needs square tiles, this model takes 32x64"):
        load_onnx_model(out)
    card = json.loads((out / "model.json").read_text())
    card["details"]["tta"] = "flip"  # mirrored views keep the tile's shape
    (out / "model.json").write_text(json.dumps(card))
    assert load_onnx_model(out).tta == "flip"


@pytest.mark.parametrize("fixture", ["restore", "sr"])
def test_restorer_output_is_within_40_db_of_the_torch_restorer(fixture, request):
    """A grey DnCNN and a colour x2 ESPCN: one tile (24x24), tiled images and grey pictures, > 40 dB against torch."""
    from pixlearn.export.runtime import OnnxRestorer, load_onnx_model
    from pixlearn.tasks.restore.predict import load_restorer

    run, exported = request.getfixturevalue(f"{fixture}_run"), request.getfixturevalue(f"{fixture}_onnx")
    res, ref = load_onnx_model(exported), load_restorer(run)
    assert isinstance(res, OnnxRestorer) and res.scale == ref.scale and res.mode == ref.mode
    images = _images([(24, 24), (50, 37)], seed=4)
    images.append(images[1][..., 1].copy())  # grey in, grey out
    for img in images:
        out, want = res.restore(img), ref.restore(img)
        assert out.shape == want.shape and out.dtype == np.uint8
        assert _psnr(out, want) > 40, (fixture, img.shape, _psnr(out, want))


def test_tiling_matches_the_engines_tiled_apply():
    """The runtime's numpy tiling (padding, tile starts, Hann windows) is the engine's, on a position-dependent function."""
    import torch

    from pixlearn.engine.tiling import tiled_apply
    from pixlearn.export.runtime import tiled_run

    img = _images([(45, 70)], seed=5)[0]

    def fn(tiles: np.ndarray) -> np.ndarray:  # depends on where a pixel sits in its tile: overlaps differ
        x = tiles.transpose(0, 3, 1, 2).astype(np.float32)
        ramp = np.linspace(0, 1, x.shape[-1], dtype=np.float32)
        return x * ramp + x[:, :, ::-1] * 0.5

    ours = tiled_run(fn, img, tile=(32, 32), overlap=0.25, multiple=32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    theirs = tiled_apply(lambda t: torch.from_numpy(fn(t[:, :, :, :].permute(0, 2, 3, 1).numpy())), x, tile=32, overlap=0.25,
                         multiple=32)[0].numpy()
    assert ours.shape == theirs.shape == (3, 45, 70)
    assert np.abs(ours - theirs).max() < 1e-3


# ---------------------------------------------------------------- no torch, threads
def test_loading_and_running_an_exported_model_imports_no_torch(classify_onnx, segment_onnx, restore_onnx):
    code = (
        "import sys, numpy as np\n"
        "from pixlearn.export.runtime import load_onnx_model\n"
        f"clf = load_onnx_model({str(classify_onnx)!r}); row = clf.predict([np.zeros((20, 20, 3), np.uint8)], top_k=2)[0]\n"
        f"mask = load_onnx_model({str(segment_onnx)!r}).predict(np.zeros((40, 40, 3), np.uint8))\n"
        f"out = load_onnx_model({str(restore_onnx)!r}).restore(np.zeros((30, 30), np.uint8))\n"
        "assert len(row['top_k']) == 2 and mask.shape == (40, 40) and out.shape == (30, 30)\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'lightning') if m in sys.modules))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_sessions_use_the_cores_this_process_may_use_and_one_inter_op_thread(classify_onnx, monkeypatch):
    from pixlearn.export import runtime

    model = runtime.load_onnx_model(classify_onnx)
    assert model.threads == runtime.usable_cores()
    assert model.session.get_session_options().inter_op_num_threads == 1
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {3}, raising=False)  # a process pinned to one core
    assert runtime.usable_cores() == 1
    assert runtime.load_onnx_model(classify_onnx).session.get_session_options().intra_op_num_threads == 1
    assert runtime.load_onnx_model(classify_onnx, threads=2).threads == 2
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        runtime.load_onnx_model(classify_onnx, threads=0)


# ---------------------------------------------------------------- bad files
def test_a_file_without_a_card_or_with_another_cards_format_is_a_typed_error(classify_run, classify_onnx, tmp_path):
    from pixlearn.export.runtime import load_onnx_model

    lone = tmp_path / "lone" / "net.onnx"
    lone.parent.mkdir()
    shutil.copy(classify_onnx / "model.onnx", lone)
    with pytest.raises(ConfigError) as err:
        load_onnx_model(lone)
    assert str(lone) in str(err.value) and "pixlearn export RUN --format onnx" in str(err.value)

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(classify_onnx / "model.onnx", other / "model.onnx")
    shutil.copy(classify_run / "weights" / "model.json", other / "model.json")  # a run's card, not an export card
    with pytest.raises(ConfigError, match=r"format 'pixlearn.classifier/1', not an ONNX export card.*pixlearn export RUN"):
        load_onnx_model(other)

    detect = tmp_path / "detect"
    detect.mkdir()
    shutil.copy(classify_onnx / "model.onnx", detect / "model.onnx")
    card = json.loads((classify_onnx / "model.json").read_text())
    (detect / "model.json").write_text(json.dumps({**card, "task": "sketchify"}))
    with pytest.raises(ConfigError, match=r"exported 'sketchify' model; the ONNX runtime serves classify, segment, restore, detect"):
        load_onnx_model(detect)

    with pytest.raises(ConfigError, match=r"no model.onnx in this folder"):
        load_onnx_model(tmp_path)
    with pytest.raises(ConfigError, match=r"no such ONNX file"):
        load_onnx_model(tmp_path / "missing.onnx")


def test_a_damaged_file_or_a_graph_that_does_not_match_its_card_is_a_typed_error(classify_onnx, segment_onnx, tmp_path):
    from pixlearn.export.runtime import load_onnx_model

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx file at all")
    shutil.copy(classify_onnx / "model.json", broken / "model.json")
    with pytest.raises(ConfigError, match="onnxruntime cannot open this file"):
        load_onnx_model(broken)

    swapped = tmp_path / "swapped"
    swapped.mkdir()
    shutil.copy(segment_onnx / "model.onnx", swapped / "model.onnx")  # a 32-px segmenter under a classifier's card
    shutil.copy(classify_onnx / "model.json", swapped / "model.json")
    with pytest.raises(ConfigError, match="does not match its card"):
        load_onnx_model(swapped)

    clf = load_onnx_model(classify_onnx)
    with pytest.raises(ShapeError, match="uint8"):
        clf.predict([np.zeros((8, 8, 3), np.float32)])


# ---------------------------------------------------------------- pixlearn predict MODEL.onnx
def _cli_json(capsys, *args: str, code: int = 0) -> list[dict]:
    from pixlearn.cli import main

    capsys.readouterr()
    got = main(["predict", *args, "--format", "json", "--no-progress"])
    out, err = capsys.readouterr()
    assert got == code, err
    return json.loads(out)


def test_predict_an_exported_classifier_gives_the_runs_rows(classify_run, classify_onnx, tmp_path, capsys):
    folder = tmp_path / "imgs"
    for k, img in enumerate(_images([(12, 12), (20, 14), (12, 12)], seed=6)):
        write_image(folder / f"i{k}.png", img)
    (folder / "bad.png").write_bytes(b"garbage")
    want = _cli_json(capsys, str(classify_run), str(folder), "--top-k", "2", code=1)  # one unreadable file: exit 1
    for model in (classify_onnx, classify_onnx / "model.onnx"):  # the folder or the file
        got = _cli_json(capsys, str(model), str(folder), "--top-k", "2", code=1)
        assert [r["path"] for r in got] == [r["path"] for r in want]
        assert [r["label"] for r in got] == [r["label"] for r in want]
        assert [bool(r["error"]) for r in got] == [bool(r["error"]) for r in want] == [True, False, False, False]
        for a, b in zip(got, want):
            assert np.allclose([e["score"] for e in a["top_k"]], [e["score"] for e in b["top_k"]], atol=1e-4)


def test_predict_an_exported_segmenter_and_restorer_writes_the_runs_files(segment_run, segment_onnx, restore_run, restore_onnx,
                                                                          tmp_path, capsys):
    from pixlearn.io import read_image

    folder = tmp_path / "imgs"
    for k, img in enumerate(_images([(32, 32), (40, 48)], seed=7)):
        write_image(folder / f"i{k}.png", img)
    want = _cli_json(capsys, str(segment_run), str(folder), "-o", str(tmp_path / "torch_masks"))
    got = _cli_json(capsys, str(segment_onnx), str(folder), "-o", str(tmp_path / "onnx_masks"), "--overlay")
    assert [(r["width"], r["height"], r["classes"]) for r in got] == [(r["width"], r["height"], r["classes"]) for r in want]
    for a, b in zip(got, want):
        assert np.array_equal(read_image(a["mask"], mode="L"), read_image(b["mask"], mode="L"))
        assert Path(a["overlay"]).is_file()

    got = _cli_json(capsys, str(restore_onnx), str(folder), "-o", str(tmp_path / "restored"))
    want = _cli_json(capsys, str(restore_run), str(folder), "-o", str(tmp_path / "restored_torch"))
    assert [(r["out_width"], r["out_height"], r["error"]) for r in got] == [(r["out_width"], r["out_height"], r["error"]) for r in want]
    for a, b in zip(got, want):
        assert _psnr(read_image(a["output"]), read_image(b["output"])) > 40


def test_the_int8_file_beside_an_export_predicts_with_the_same_card(classify_onnx, tmp_path, capsys):
    """``model.int8.onnx`` (pixlearn export --int8) shares ``model.json``: pixlearn predict takes it like the fp32 file."""
    from pixlearn.export.int8 import quantize_int8
    from pixlearn.export.runtime import load_onnx_model

    folder = shutil.copytree(classify_onnx, tmp_path / "onnx")
    quantize_int8(folder, _images([(12, 12)] * 5, seed=11), timing_seconds=0.05, max_drop=100.0)
    int8 = load_onnx_model(folder / "model.int8.onnx")
    assert int8.path.name == "model.int8.onnx" and int8.classes == load_onnx_model(folder).classes
    write_image(tmp_path / "imgs" / "a.png", _images([(20, 20)], seed=12)[0])
    rows = _cli_json(capsys, str(folder / "model.int8.onnx"), str(tmp_path / "imgs"), "--top-k", "3")
    assert len(rows) == 1 and rows[0]["error"] is None and rows[0]["label"] in int8.classes
    assert abs(sum(e["score"] for e in rows[0]["top_k"]) - 1) < 1e-2  # every class's probability (3 classes)


def test_predict_an_exported_model_refuses_a_gpu_device_and_a_restorer_without_out(classify_onnx, restore_onnx, tmp_path, capsys):
    from pixlearn.cli import main

    write_image(tmp_path / "a.png", _images([(12, 12)])[0])
    assert main(["predict", str(classify_onnx), str(tmp_path / "a.png"), "--device", "cuda"]) == 2
    assert "run on the CPU through onnxruntime" in capsys.readouterr().err
    assert main(["predict", str(restore_onnx), str(tmp_path / "a.png")]) == 2
    assert "writes images" in capsys.readouterr().err


# ---------------------------------------------------------------- the service
@pytest.fixture
def served(classify_run, classify_onnx, tmp_path):
    """A service holding the torch run and its exported model side by side."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    settings = ServeSettings(storage=tmp_path / "storage", db=None, api_keys=[], models=[classify_run, classify_onnx],
                             allowed_roots=[])
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_service_holds_both_kinds_and_classifies_alike(served, classify_run):
    from pixlearn.io import encode_image

    records = {r["name"]: r for r in served.get("/v1/models").json()["models"]}
    torch_name, onnx_name = classify_run.name, f"{classify_run.name}-onnx"
    assert set(records) == {torch_name, onnx_name}
    assert records[torch_name]["backend"] == "torch" and records[onnx_name]["backend"] == "onnxruntime"
    assert records[onnx_name]["task"] == "classify" and records[onnx_name]["classes"] == records[torch_name]["classes"]
    assert records[onnx_name]["input_shape"] == records[torch_name]["input_shape"]
    assert records[onnx_name]["metrics"].get("accuracy") == records[torch_name]["metrics"].get("accuracy")

    images = _images([(12, 12), (25, 18)], seed=8)
    files = [("files", (f"i{k}.png", encode_image(img, "png"), "image/png")) for k, img in enumerate(images)]
    res = served.post("/v1/classify", files=files, data={"model": f"{torch_name},{onnx_name}", "top_k": "3"})
    assert res.status_code == 200, res.text
    for result in res.json()["results"]:
        ours, theirs = result["models"][onnx_name], result["models"][torch_name]
        assert [e["label"] for e in ours] == [e["label"] for e in theirs]
        assert np.allclose([e["score"] for e in ours], [e["score"] for e in theirs], atol=1e-4)


def test_oip_serves_an_exported_classifier_with_its_graphs_uint8_input(served, classify_run, classify_onnx):
    import base64

    from pixlearn.export.runtime import load_onnx_model, resize_image
    from pixlearn.io import encode_image
    from pixlearn.tasks.classify.predict import load_classifier

    name = f"{classify_run.name}-onnx"
    meta = served.get(f"/v2/models/{name}").json()
    h, w = load_onnx_model(classify_onnx).height, load_onnx_model(classify_onnx).width
    assert meta["parameters"]["backend"] == "onnxruntime"
    assert {"name": "images", "datatype": "UINT8", "shape": [-1, h, w, 3]} in meta["inputs"]
    assert served.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}

    images = _images([(12, 12), (30, 21)], seed=9)
    want = load_classifier(classify_run).predict_proba(load_classifier(classify_run).to_tensor(images)).numpy()
    pixels = np.stack([resize_image(img, (h, w)) for img in images])
    as_pixels = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(pixels.shape), "data": pixels.ravel().tolist()}]}
    as_files = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                            "data": [base64.b64encode(encode_image(img, "png")).decode() for img in images]}]}
    for body in (as_pixels, as_files):
        res = served.post(f"/v2/models/{name}/infer", json=body)
        assert res.status_code == 200, res.text
        outputs = {o["name"]: o for o in res.json()["outputs"]}
        probs = np.asarray(outputs["probabilities"]["data"], np.float32).reshape(outputs["probabilities"]["shape"])
        assert np.allclose(probs, want, atol=1e-4)
        assert outputs["labels"]["data"] == [load_classifier(classify_run).classes[int(i)] for i in want.argmax(1)]

    raw = pixels.tobytes()  # the binary tensor data extension, as tritonclient sends it
    head = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(pixels.shape),
                                   "parameters": {"binary_data_size": len(raw)}}], "outputs": [{"name": "probabilities"}]}).encode()
    res = served.post(f"/v2/models/{name}/infer", content=head + raw, headers={"Inference-Header-Content-Length": str(len(head))})
    assert res.status_code == 200, res.text
    assert np.allclose(res.json()["outputs"][0]["data"], want.ravel(), atol=1e-4)

    bad = served.post(f"/v2/models/{name}/infer", json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, h, w],
                                                                   "data": [0.0] * (3 * h * w)}]})
    assert bad.status_code == 400 and "takes 'images' (UINT8" in bad.json()["error"]
    wrong = served.post(f"/v2/models/{name}/infer", json={"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, h, w, 3],
                                                                     "data": [300] * (h * w * 3)}]})
    assert wrong.status_code == 400 and "0..255" in wrong.json()["error"]


def test_a_tritonclient_request_for_the_exported_graph_works_against_pixlearn(served, classify_run, classify_onnx):
    """What a Triton client sends to the same file in Triton (its graph's uint8 input, binary tensor data) pixlearn answers."""
    import tritonclient.http as httpclient

    from pixlearn.export.runtime import load_onnx_model, resize_image
    from pixlearn.tasks.classify.predict import load_classifier

    card = json.loads((classify_onnx / "model.json").read_text())
    h, w = card["input"]["height"], card["input"]["width"]
    images = _images([(12, 12), (17, 26), (12, 12)], seed=10)
    pixels = np.stack([resize_image(img, (h, w)) for img in images])
    inp = httpclient.InferInput(card["input"]["name"], list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(pixels, binary_data=True)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        [inp], outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=True)])
    res = served.post(f"/v2/models/{classify_run.name}-onnx/infer", content=body,
                      headers={"Inference-Header-Content-Length": str(json_size)})
    assert res.status_code == 200, res.text
    header = res.headers.get("Inference-Header-Content-Length")
    result = httpclient.InferenceServerClient.parse_response_body(res.content, header_length=int(header) if header else None)
    torch_clf = load_classifier(classify_run)
    want = torch_clf.predict_proba(torch_clf.to_tensor(images)).numpy()
    np.testing.assert_allclose(result.as_numpy("probabilities"), want, atol=1e-4)
    np.testing.assert_allclose(result.as_numpy("probabilities"), load_onnx_model(classify_onnx).probabilities(pixels), atol=1e-6)


def test_an_exported_segmenter_is_refused_by_the_service_with_the_reason(segment_onnx, tmp_path):
    from pixlearn.serve.db import make_engine, metadata
    from pixlearn.serve.registry import ModelRegistry

    engine = make_engine("sqlite://")
    metadata.create_all(engine)
    with pytest.raises(ConfigError, match="exported segment model; the service serves exported classifiers"):
        ModelRegistry(engine, tmp_path).register_run(segment_onnx)


def test_a_models_table_from_before_backends_gets_the_column(tmp_path):
    from sqlalchemy import inspect, text

    from pixlearn.serve.db import make_engine
    from pixlearn.serve.registry import ModelRegistry

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE models (name VARCHAR(128) PRIMARY KEY, task VARCHAR(32) NOT NULL, classes JSON NOT NULL, "
                          "metrics JSON NOT NULL, created VARCHAR(40) NOT NULL, source VARCHAR(16) NOT NULL, run_dir TEXT NOT NULL, "
                          "architecture VARCHAR(128) NOT NULL, input_shape JSON NOT NULL, owned BOOLEAN NOT NULL, "
                          "general BOOLEAN NOT NULL DEFAULT FALSE)"))
        conn.execute(text("INSERT INTO models VALUES ('old', 'classify', '[\"a\"]', '{}', '2024-01-01', 'cli', '/x', 'resnet18', "
                          "'[3, 8, 8]', 0, 0)"))
    registry = ModelRegistry(engine, tmp_path)
    assert "backend" in {c["name"] for c in inspect(engine).get_columns("models")}
    assert registry.get("old")["backend"] == "torch"
