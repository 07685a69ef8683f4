"""Detection over the service: POST /v1/detect, /v1/analyze?features=objects and OIP v2 with the built-in COCO
detector, on a tiny YOLOX-shaped ONNX file made here (known objects at known places, whatever the image)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.detect.onnx_fixtures import Obj, make_yolox_onnx
from tests.serve.conftest import png_bytes

# A 416 x 416 image is the network's own size (no letterbox scaling): boxes are the objects' own.
CAT = Obj(100, 60, 40, 20, label=15, obj=0.9)                       # (80, 50, 120, 70), score 0.9
CUP = Obj(300, 150, 64, 96, label=41, obj=0.8, cls=0.5, stride=16)  # (268, 102, 332, 198), score 0.4
CAT_BOX, CUP_BOX = [80.0, 50.0, 120.0, 70.0], [268.0, 102.0, 332.0, 198.0]


@pytest.fixture(scope="module")
def yolox_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_yolox_onnx(tmp_path_factory.mktemp("yolox") / "yolox_nano_coco80.onnx", [CAT, CUP])


@pytest.fixture(autouse=True)
def no_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty weights folders: the COCO detector is there only when a test configures it."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    return folder


@pytest.fixture
def photo() -> bytes:
    return png_bytes(np.full((416, 416, 3), 90, np.uint8))


@pytest.fixture
def detect_client(settings, yolox_file: Path):
    from pixlearn.serve.app import create_app

    settings.yolox_weights = yolox_file
    with TestClient(create_app(settings)) as c:
        yield c


def _boxes(objects: list[dict]) -> list[tuple[str, list[float], float]]:
    return [(o["class_name"], o["box"], o["score"]) for o in objects]


def test_detect_answers_the_coco_objects_in_the_worker_pool(detect_client, photo: bytes) -> None:
    assert detect_client.app.state.pool is not None  # the default settings run CPU work in worker processes
    r = detect_client.post("/v1/detect", files={"file": ("street.png", photo, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "coco-yolox-nano" and body["image"] == {"width": 416, "height": 416}
    assert [(o["class_name"], o["label"]) for o in body["objects"]] == [("cat", 15), ("cup", 41)]
    assert body["objects"][0]["box"] == pytest.approx(CAT_BOX, abs=0.01)
    assert body["objects"][1]["box"] == pytest.approx(CUP_BOX, abs=0.01)
    assert [o["score"] for o in body["objects"]] == pytest.approx([0.9, 0.4], abs=1e-4)
    assert {"decode", "detect", "total"} <= set(body["timings_ms"])


def test_threshold_and_max_detections_filter_in_every_input_form(detect_client, photo: bytes) -> None:
    r = detect_client.post("/v1/detect?threshold=0.5", files={"file": ("a.png", photo, "image/png")})
    assert r.status_code == 200 and _boxes(r.json()["objects"]) == [("cat", pytest.approx(CAT_BOX, abs=0.01),
                                                                     pytest.approx(0.9, abs=1e-4))]
    r = detect_client.post("/v1/detect", json={"image": {"b64": base64.b64encode(photo).decode()},
                                               "max_detections": 1, "model": "coco-yolox-nano"})
    assert r.status_code == 200 and [o["class_name"] for o in r.json()["objects"]] == ["cat"]
    r = detect_client.post("/v1/detect", data={"threshold": "0.95"}, files={"file": ("a.png", photo, "image/png")})
    assert r.status_code == 200 and r.json()["objects"] == []
    r = detect_client.post("/v1/detect?threshold=0.3", content=photo, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and len(r.json()["objects"]) == 2


@pytest.mark.parametrize("query, field, fragment", [
    ("threshold=1.5", "threshold", "use 0..1"), ("threshold=abc", "threshold", "not a number"),
    ("threshold=nan", "threshold", "not a number"), ("max_detections=0", "max_detections", "use 1..1000"),
    ("max_detections=1001", "max_detections", "use 1..1000"), ("max_detections=2.5", "max_detections", "integer"),
    ("tile=10", "tile", "use 64..4096"), ("overlap=0.95", "overlap", "use 0..0.9"),
])
def test_out_of_range_options_are_400_naming_the_field(detect_client, photo: bytes, query: str, field: str,
                                                       fragment: str) -> None:
    r = detect_client.post(f"/v1/detect?{query}", files={"file": ("a.png", photo, "image/png")})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert msg.startswith(field) and fragment in msg


def test_an_unknown_model_is_404_and_a_bad_image_400(detect_client, photo: bytes) -> None:
    r = detect_client.post("/v1/detect?model=coco-yolox-nan", files={"file": ("a.png", photo, "image/png")})
    assert r.status_code == 404 and "'coco-yolox-nan'" in r.json()["error"]["message"]
    r = detect_client.post("/v1/detect", files={"file": ("a.png", b"not an image", "image/png")})
    assert r.status_code in (400, 415) and "a.png" in r.json()["error"]["message"]


def test_tiled_inference_runs_the_detector_on_windows(detect_client) -> None:
    big = png_bytes(np.full((300, 600, 3), 90, np.uint8))
    r = detect_client.post("/v1/detect?tile=256&threshold=0.3", files={"file": ("wide.png", big, "image/png")})
    assert r.status_code == 200, r.text
    objects = r.json()["objects"]
    assert objects and all(o["class_name"] in ("cat", "cup") for o in objects)
    assert all(0 <= o["box"][0] < o["box"][2] <= 600 and 0 <= o["box"][1] < o["box"][3] <= 300 for o in objects)


def test_missing_weights_is_503_naming_the_file_without_server_paths(settings, photo: bytes, tmp_path: Path) -> None:
    from pixlearn.serve.app import create_app

    with TestClient(create_app(settings)) as c:  # nothing configured, empty weights folders
        r = c.post("/v1/detect", files={"file": ("a.png", photo, "image/png")})
        assert r.status_code == 503, r.text
        msg = r.json()["error"]["message"]
        assert "yolox_nano_coco80.onnx" in msg and "PIXLEARN_WEIGHTS" in msg and str(tmp_path) not in msg
    settings.yolox_weights = tmp_path / "models" / "yolox_nano_coco80.onnx"  # configured, but not there
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/detect", files={"file": ("a.png", photo, "image/png")})
        assert r.status_code == 503 and "yolox_nano_coco80.onnx" in r.json()["error"]["message"]
        assert str(tmp_path) not in r.json()["error"]["message"]


def test_api_keys_guard_detect(settings, yolox_file: Path, photo: bytes) -> None:
    from pixlearn.serve.app import create_app

    settings.api_keys = ["sesame"]
    settings.yolox_weights = yolox_file
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/detect", files={"file": ("a.png", photo, "image/png")}).status_code == 401
        r = c.post("/v1/detect", files={"file": ("a.png", photo, "image/png")}, headers={"X-API-Key": "sesame"})
        assert r.status_code == 200 and len(r.json()["objects"]) == 2


def test_analyze_objects_and_the_default_features(detect_client, settings, photo: bytes) -> None:
    r = detect_client.post("/v1/analyze?features=objects&threshold=0.5", files={"file": ("a.png", photo, "image/png")})
    assert r.status_code == 200, r.text
    assert [o["class_name"] for o in r.json()["objects"]] == ["cat"] and "colors" not in r.json()
    r = detect_client.post("/v1/analyze", files={"file": ("a.png", photo, "image/png")})  # weights here: a default
    assert r.status_code == 200 and [o["class_name"] for o in r.json()["objects"]] == ["cat", "cup"]
    assert "objects" in r.json()["timings_ms"] and "colors" in r.json()
    r = detect_client.post("/v1/analyze?features=objects&max_detections=0", files={"file": ("a.png", photo)})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("max_detections")


def test_analyze_without_the_detector_says_why_only_when_objects_are_asked_for(settings, photo: bytes) -> None:
    from pixlearn.serve.app import create_app

    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/analyze", files={"file": ("a.png", photo, "image/png")})
        assert r.status_code == 200 and "objects" not in r.json()
        assert "objects" not in r.json().get("unavailable", {})
        r = c.post("/v1/analyze?features=objects,labels", files={"file": ("a.png", photo, "image/png")})
        assert r.status_code == 200 and "objects" not in r.json()
        why = r.json()["unavailable"]
        assert "yolox_nano_coco80.onnx" in why["objects"] and "labels" in why  # both notes, neither hides the other


# ---------------------------------------------------------------- OIP v2
def test_oip_metadata_of_the_builtin_detector(detect_client) -> None:
    r = detect_client.get("/v2/models/coco-yolox-nano")
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "boxes": ("FP32", [-1, 4]), "scores": ("FP32", [-1]), "labels": ("INT64", [-1]),
        "class_names": ("BYTES", [-1]), "image_index": ("INT64", [-1])}
    assert meta["parameters"]["task"] == "detect" and len(meta["parameters"]["classes"]) == 80
    assert detect_client.get("/v2/models/coco-yolox-nano/ready").json() == {"name": "coco-yolox-nano", "ready": True}


def test_oip_infer_answers_boxes_scores_labels_and_class_names(detect_client, photo: bytes) -> None:
    b64 = base64.b64encode(photo).decode()
    body = {"id": "7", "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64, b64]}],
            "parameters": {"threshold": 0.3}}
    r = detect_client.post("/v2/models/coco-yolox-nano/infer", json=body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert r.json()["id"] == "7"
    assert out["boxes"]["datatype"] == "FP32" and out["boxes"]["shape"] == [4, 4]
    np.testing.assert_allclose(np.reshape(out["boxes"]["data"], (4, 4)), [CAT_BOX, CUP_BOX, CAT_BOX, CUP_BOX], atol=0.01)
    assert out["scores"]["shape"] == [4] and out["scores"]["data"] == pytest.approx([0.9, 0.4] * 2, abs=1e-4)
    assert (out["labels"]["datatype"], out["labels"]["data"]) == ("INT64", [15, 41, 15, 41])
    assert (out["class_names"]["datatype"], out["class_names"]["data"]) == ("BYTES", ["cat", "cup"] * 2)
    assert out["image_index"]["data"] == [0, 0, 1, 1]


def test_oip_binary_outputs_and_bad_parameters(detect_client, photo: bytes) -> None:
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(photo).decode()]}],
            "outputs": [{"name": "labels", "parameters": {"binary_data": True}}, {"name": "class_names"}],
            "parameters": {"threshold": 0.5}}
    r = detect_client.post("/v2/models/coco-yolox-nano/infer", json=body)
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    head = json.loads(r.content[:n])
    assert [o["name"] for o in head["outputs"]] == ["labels", "class_names"]
    assert np.frombuffer(r.content[n:], "<i8").tolist() == [15] and head["outputs"][1]["data"] == ["cat"]
    body["parameters"] = {"max_detections": 5000}
    r = detect_client.post("/v2/models/coco-yolox-nano/infer", json=body)
    assert r.status_code == 400 and "max_detections" in r.json()["error"]
    body["parameters"], body["outputs"] = {}, [{"name": "probabilities"}]
    r = detect_client.post("/v2/models/coco-yolox-nano/infer", json=body)
    assert r.status_code == 400 and "'boxes'" in r.json()["error"]


def test_oip_without_the_detector_file_is_503_naming_it(settings, photo: bytes) -> None:
    from pixlearn.serve.app import create_app

    with TestClient(create_app(settings)) as c:
        r = c.get("/v2/models/coco-yolox-nano")
        assert r.status_code == 503 and "yolox_nano_coco80.onnx" in r.json()["error"]



def test_instance_masks_travel_as_coco_rle_and_polygons() -> None:
    from pycocotools import mask as mask_utils

    from pixlearn.serve.routes_detect import detection_rows
    from pixlearn.tasks.detect.detections import Detections

    masks = np.zeros((2, 30, 40), bool)
    masks[0, 5:15, 10:30] = True   # a 20 x 10 rectangle
    masks[1, 20:28, 2:6] = True
    det = Detections(np.array([[10, 5, 30, 15], [2, 20, 6, 28]]), np.array([0.8, 0.6]), np.array([1, 0]),
                     ("person", "drone"), masks)
    rows = detection_rows(det)
    assert [r["class_name"] for r in rows] == ["drone", "person"]
    for row, m in zip(rows, masks, strict=True):
        rle = {"size": row["mask"]["size"], "counts": row["mask"]["counts"].encode()}
        assert row["mask"]["size"] == [30, 40] and (mask_utils.decode(rle).astype(bool) == m).all()
    xs, ys = rows[0]["polygons"][0][0::2], rows[0]["polygons"][0][1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == (10, 5, 29, 14)  # the rectangle's outer pixels
    json.dumps(rows)  # JSON-ready
