"""An exported detector (``pixlearn export DETECT_RUN --format onnx``) in the service: registered beside its run, it
answers /v1/detect and OIP v2 with the run's boxes through onnxruntime, without torch in the serving process.

The run is the random-init Faster R-CNN (resnet18, 64 px) of tests/export/test_export_detect.py, exported with a
relative path from another working folder: its card must still lead the service back to the run.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torchvision")

from fastapi.testclient import TestClient  # noqa: E402

from tests.export.test_export_detect import _detect_run, _images  # noqa: E402
from tests.serve.conftest import png_bytes  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, export folder): the run exported as ``pixlearn export run`` typed in the run's parent folder."""
    from pixlearn.export import export_run

    root = tmp_path_factory.mktemp("exported-det")
    run = _detect_run(root / "run", "faster_rcnn")
    (run / "metrics.json").write_text(json.dumps({"split": "val", "n": 3, "map": 0.25, "map50": 0.5}))
    here = os.getcwd()
    os.chdir(root)
    try:
        result = export_run("run", parity_images=2, log=lambda line: None)
    finally:
        os.chdir(here)
    return run, root / result.folder


@pytest.fixture(scope="module")
def client(exported: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    run, folder = exported
    settings = ServeSettings(storage=tmp_path_factory.mktemp("storage"), db=None, api_keys=[], models=[run, folder],
                             allowed_roots=[])
    with TestClient(create_app(settings)) as c:
        yield c


def _photos() -> list[bytes]:
    """Images whose longer side is the input size (letterboxing resizes nothing: the same pixels for both)."""
    return [png_bytes(img) for img in _images(2, seed=7)]


def test_the_export_card_names_its_run_by_absolute_path(exported: tuple[Path, Path]) -> None:
    run, folder = exported
    card = json.loads((folder / "model.json").read_text())
    assert card["source"]["run"] == str(run) and Path(card["source"]["run"]).is_absolute()


def test_the_export_registers_as_an_onnxruntime_detector(client: TestClient) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200, r.text
    models = {m["name"]: m for m in r.json()["models"]}
    assert set(models) == {"run", "run-onnx"}
    run, exp = models["run"], models["run-onnx"]
    assert (run["task"], run["backend"], exp["task"], exp["backend"]) == ("detect", "torch", "detect", "onnxruntime")
    assert exp["classes"] == run["classes"] == ["cat", "dog"]
    # found through the card's source run, whatever the server's working folder
    assert exp["architecture"] == "faster_rcnn/resnet18 (onnx)"
    assert exp["metrics"] == run["metrics"] == {"split": "val", "n": 3, "map": 0.25, "map50": 0.5}


def test_detect_gives_the_runs_boxes(client: TestClient) -> None:
    for k, photo in enumerate(_photos()):
        got = {}
        for model in ("run", "run-onnx"):
            r = client.post("/v1/detect", data={"model": model, "max_detections": "15"},
                            files={"file": (f"p{k}.png", photo, "image/png")})
            assert r.status_code == 200, r.text
            got[model] = r.json()
        ours, theirs = got["run-onnx"], got["run"]
        assert ours["model"] == "run-onnx" and ours["image"] == theirs["image"]
        assert 0 < len(ours["objects"]) == len(theirs["objects"]) <= 15
        assert set(ours["objects"][0]) == set(theirs["objects"][0]) == {"box", "score", "label", "class_name"}
        for a, b in zip(ours["objects"], theirs["objects"], strict=True):
            assert (a["label"], a["class_name"]) == (b["label"], b["class_name"])
            assert a["box"] == pytest.approx(b["box"], abs=1e-2)
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_oip_infer_on_the_export_answers_like_the_run(client: TestClient) -> None:
    meta = client.get("/v2/models/run-onnx").json()
    assert meta["parameters"]["task"] == "detect" and meta["parameters"]["backend"] == "onnxruntime"
    assert meta["parameters"]["classes"] == ["cat", "dog"]
    assert [i["name"] for i in meta["inputs"]] == ["image"]
    assert client.get("/v2/models/run-onnx/ready").json() == {"name": "run-onnx", "ready": True}
    photos = _photos()
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(photos)],
                        "data": [base64.b64encode(p).decode() for p in photos]}],
            "parameters": {"max_detections": 10}}
    got = {}
    for model in ("run", "run-onnx"):
        r = client.post(f"/v2/models/{model}/infer", json=body)
        assert r.status_code == 200, r.text
        got[model] = {o["name"]: o for o in r.json()["outputs"]}
    ours, theirs = got["run-onnx"], got["run"]
    assert set(ours) == set(theirs) == {"boxes", "scores", "labels", "class_names", "image_index"}
    n = ours["scores"]["shape"][0]
    assert 0 < n == theirs["scores"]["shape"][0] and ours["boxes"]["shape"] == [n, 4]
    assert ours["image_index"]["data"] == theirs["image_index"]["data"] and set(ours["image_index"]["data"]) == {0, 1}
    assert ours["labels"]["data"] == theirs["labels"]["data"]
    assert ours["class_names"]["data"] == theirs["class_names"]["data"]
    np.testing.assert_allclose(ours["boxes"]["data"], theirs["boxes"]["data"], atol=1e-2)
    np.testing.assert_allclose(ours["scores"]["data"], theirs["scores"]["data"], atol=1e-3)


def test_a_bad_image_is_a_4xx_naming_the_input(client: TestClient) -> None:
    r = client.post("/v1/detect", data={"model": "run-onnx"}, files={"file": ("broken.png", b"not an image", "image/png")})
    assert r.status_code in (400, 415) and "broken.png" in r.json()["error"]["message"]
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["bm90IGFuIGltYWdl"]}]}
    r = client.post("/v2/models/run-onnx/infer", json=body)
    assert 400 <= r.status_code < 500 and "'image' element 0" in r.json()["error"]


def test_the_graphs_baked_in_limits_are_told_not_hidden(client: TestClient) -> None:
    photo = _photos()[0]
    # a threshold under the score floor baked into the graph (0.05): those detections are not in its output
    r = client.post("/v1/detect", data={"model": "run-onnx", "threshold": "0.01"},
                    files={"file": ("p.png", photo, "image/png")})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "threshold=0.01" in message and "below 0.05" in message and "threshold >= 0.05" in message
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(photo).decode()]}], "parameters": {"threshold": 0.01}}
    r = client.post("/v2/models/run-onnx/infer", json=body)
    assert r.status_code == 400 and "threshold=0.01" in r.json()["error"]
    # a graph that gives at most 3 detections answers a request for 10 with what it has
    detector = client.app.state.registry.load("run-onnx")
    before = detector.max_detections
    detector.max_detections = 3
    try:
        r = client.post("/v1/detect", data={"model": "run-onnx", "max_detections": "10"},
                        files={"file": ("p.png", photo, "image/png")})
    finally:
        detector.max_detections = before
    assert r.status_code == 200 and len(r.json()["objects"]) == 3


def test_an_export_whose_score_floor_is_above_the_default_threshold_loads(exported: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    import shutil

    from pixlearn.serve.db import make_engine, metadata
    from pixlearn.serve.registry import ModelRegistry

    folder = Path(shutil.copytree(exported[1], tmp_path / "onnx"))
    card = json.loads((folder / "model.json").read_text())
    card["details"]["score_thresh"] = 0.3  # a run trained with score_thresh 0.3: its graph drops scores under it
    (folder / "model.json").write_text(json.dumps(card))
    engine = make_engine("sqlite://")
    metadata.create_all(engine)
    registry = ModelRegistry(engine, tmp_path / "storage")
    name = registry.register_run(folder)["name"]
    detector = registry.load(name)  # the warm-up asks for scores the graph gives (not the default 0.25)
    assert detector.score_floor == 0.3 and registry.loaded(name)


def test_serving_the_export_needs_no_torch(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, folder = exported
    image = tmp_path / "p.png"
    image.write_bytes(_photos()[0])
    code = f"""
import sys
from pixlearn.io import read_image
from pixlearn.serve.db import make_engine, metadata
from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.routes_detect import check_detect_params, detect_image, detection_rows
engine = make_engine("sqlite://"); metadata.create_all(engine)
registry = ModelRegistry(engine, {str(tmp_path / 'storage')!r})
record = registry.register_run({str(folder)!r})
rows = detection_rows(detect_image(registry.load(record["name"]), read_image({str(image)!r}, mode="RGB"),
                                   check_detect_params({{}})))
assert rows and record["backend"] == "onnxruntime", (rows, record)
print(sorted(m for m in ("torch", "torchvision") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
