"""Detection trainings over the service: a COCO / VOC zip is told from a folder-per-class one, trained by
train_detector in the worker process (1 epoch, 64 px, FCOS), and the run registers as a detection model that
/v1/detect and OIP v2 serve."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import png_bytes

TIMEOUT_S = 300  # a worker importing torch + Lightning, then one epoch, on a busy 2-core machine


@pytest.fixture(autouse=True)
def no_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    return folder


def _scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, list[int]]:
    """A dark image with one bright square; its box as x, y, w, h."""
    img = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
    w = int(rng.integers(16, 28))
    x, y = (int(v) for v in rng.integers(2, size - w - 2, 2))
    img[y:y + w, x:x + w] = (230, 200, 40)
    return img, [x, y, w, w]


def coco_zip(n: int = 4) -> bytes:
    """A Roboflow-style COCO zip: ``_annotations.coco.json`` beside ``n`` 64-px images, one class ``square``."""
    rng = np.random.default_rng(0)
    images, annotations = [], []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            img, box = _scene(rng)
            zf.writestr(f"squares/img{i}.png", png_bytes(img))
            images.append({"id": i + 1, "file_name": f"img{i}.png", "width": 64, "height": 64})
            annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": box[2] * box[3],
                                "iscrowd": 0})
        zf.writestr("squares/_annotations.coco.json", json.dumps(
            {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "square"}]}))
    return buf.getvalue()


def voc_zip(n: int = 3) -> bytes:
    """A Pascal VOC zip: ``JPEGImages/*.png`` and ``Annotations/*.xml``, classes ``square`` and ``dot``."""
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            img, (x, y, w, h) = _scene(rng)
            zf.writestr(f"JPEGImages/{i}.png", png_bytes(img))
            objects = f"<object><name>square</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x + w}</xmax>" \
                      f"<ymax>{y + h}</ymax></bndbox></object>"
            if i == 0:
                objects += "<object><name>dot</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>" \
                           "</bndbox></object>"
            zf.writestr(f"Annotations/{i}.xml", f"<annotation><filename>{i}.png</filename><size><width>64</width>"
                                                f"<height>64</height><depth>3</depth></size>{objects}</annotation>")
    return buf.getvalue()


def folder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in ("red", "blue"):
            for i in range(3):
                zf.writestr(f"{c}/{i}.png", png_bytes(np.full((16, 16, 3), 100 if c == "red" else 20, np.uint8)))
    return buf.getvalue()


@pytest.mark.parametrize("maker, fmt, per_class", [(coco_zip, "coco", {"square": 4}),
                                                   (voc_zip, "voc", {"dot": 1, "square": 3})])
def test_auto_tells_a_detection_zip_and_counts_its_objects(tmp_path: Path, maker, fmt: str, per_class: dict) -> None:
    from pixlearn.serve.archive import extract_archive

    ds = extract_archive(io.BytesIO(maker()), tmp_path / "data", task="auto", name="boxes.zip")
    assert (ds.task, ds.format, ds.per_class) == ("detect", fmt, per_class)
    folder = extract_archive(io.BytesIO(folder_zip()), tmp_path / "folder", task="auto")
    assert (folder.task, folder.per_class) == ("classify", {"blue": 3, "red": 3})


def test_a_folder_zip_sent_as_detect_and_a_bad_architecture_are_400(client, settings) -> None:
    r = client.post("/v1/trainings", files={"archive": ("colours.zip", folder_zip(), "application/zip")},
                    data={"task": "detect"})
    assert r.status_code == 400, r.text
    assert "not detection boxes" in r.json()["error"]["message"]
    r = client.post("/v1/trainings", files={"archive": ("boxes.zip", coco_zip(), "application/zip")},
                    data={"architecture": "fcoss"})
    assert r.status_code == 400 and "did you mean 'fcos'" in r.json()["error"]["message"]
    r = client.post("/v1/trainings", files={"archive": ("boxes.zip", coco_zip(), "application/zip")},
                    data={"task": "segment"})
    assert r.status_code == 400 and "task" in r.json()["error"]["message"]
    assert not list((settings.storage / "trainings").iterdir())  # nothing left behind


def _wait(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/trainings/{job_id}").json()
        if job["status"] in ("failed", "cancelled", "succeeded"):
            break
        time.sleep(0.25)
    assert job.get("status") == "succeeded", f"{job}\n{client.get(f'/v1/trainings/{job_id}/log').text[-3000:]}"
    return job


def test_a_coco_zip_trains_a_detector_that_detect_and_oip_serve(client) -> None:
    r = client.post("/v1/trainings", files={"archive": ("squares.zip", coco_zip(), "application/zip")},
                    data={"name": "squares", "epochs": "1", "img_size": "64", "batch": "2", "minutes": "2",
                          "architecture": "fcos"})
    assert r.status_code == 202, r.text
    assert r.json()["dataset"]["task"] == "detect" and r.json()["dataset"]["format"] == "coco"
    done = _wait(client, r.json()["id"])
    assert done["model"] == "squares" and done["final"]["split"]
    assert 0.0 <= done["final"]["map50"] <= 1.0

    model = client.get("/v1/models/squares").json()
    assert (model["task"], model["classes"], model["input_shape"]) == ("detect", ["square"], [3, 64, 64])
    assert model["architecture"].startswith("fcos")

    img = png_bytes(_scene(np.random.default_rng(5))[0])
    r = client.post("/v1/detect?model=squares&threshold=0", files={"file": ("s.png", img, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "squares" and body["image"] == {"width": 64, "height": 64}
    assert all(o["class_name"] == "square" and o["label"] == 0 for o in body["objects"])
    assert all(0 <= o["box"][0] <= o["box"][2] <= 64 and 0 <= o["box"][1] <= o["box"][3] <= 64 for o in body["objects"])

    meta = client.get("/v2/models/squares").json()
    assert meta["parameters"]["classes"] == ["square"] and [o["name"] for o in meta["outputs"]][:3] == [
        "boxes", "scores", "labels"]
    import base64

    infer = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(img).decode()]}],
             "parameters": {"threshold": 0, "max_detections": 3}}
    r = client.post("/v2/models/squares/infer", json=infer)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    n = len(body["objects"][:3])
    assert out["boxes"]["shape"] == [n, 4] and out["labels"]["shape"] == [n] and out["class_names"]["data"] == ["square"] * n

    r = client.post("/v1/classify", files=[("files", ("s.png", img, "image/png"))], data={"model": "squares"})
    assert r.status_code == 400 and "POST /v1/detect" in r.json()["error"]["message"]
