"""/v1/classify: uploads and zips, model selection, threshold, top_k, per-image errors, the zip limits."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from tests.serve.conftest import colour_image, png_bytes


@pytest.fixture
def app_client(settings, trained_run):
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    with TestClient(create_app(settings.model_copy(update={"models": [trained_run], "max_archive_images": 5}))) as c:
        yield c


@pytest.fixture
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {f"{name}.png": colour_image(name, rng) for name in ("red", "green", "blue")}


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_files_and_zip_match_the_classifier(app_client, trained_run, images) -> None:
    from pixlearn.tasks.classify.predict import load_classifier

    clf = load_classifier(trained_run)
    files = [("files", (n, png_bytes(img), "image/png")) for n, img in list(images.items())[:2]]
    archive = _zip({"more/blue.png": png_bytes(images["blue.png"]), "__MACOSX/._x.png": b"junk", "notes.txt": b"x"})
    r = app_client.post("/v1/classify", files=[*files, ("archive", ("batch.zip", archive, "application/zip"))],
                        data={"top_k": "3"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["image"] for x in results] == ["red.png", "green.png", "more/blue.png"]
    expected = clf.predict(list(images.values()), top_k=3)
    for got, exp in zip(results, expected):
        rows = got["models"]["colours"]
        assert [e["label"] for e in rows] == [e["label"] for e in exp["top_k"]]
        assert [e["score"] for e in rows] == pytest.approx([e["score"] for e in exp["top_k"]], abs=1e-5)


def test_threshold_top_k_and_model_as_query(app_client, images) -> None:
    files = [("files", ("red.png", png_bytes(images["red.png"])))]
    r = app_client.post("/v1/classify?model=colours&top_k=1", files=[("images", files[0][1])])  # alias of files
    rows = r.json()["results"][0]["models"]["colours"]
    assert r.status_code == 200 and len(rows) == 1
    r = app_client.post("/v1/classify", files=files, data={"threshold": "0.34", "model": "colours"})
    rows = r.json()["results"][0]["models"]["colours"]
    assert all(e["score"] >= 0.34 for e in rows) and len(rows) < 3  # 3 classes cannot all score over 1/3
    r = app_client.post("/v1/classify", files=files, data={"threshold": "1.5"})
    assert r.status_code == 400 and "threshold" in r.json()["error"]["message"]


def test_a_bad_image_is_an_error_entry_not_a_failed_request(app_client, images) -> None:
    files = [("files", ("good.png", png_bytes(images["red.png"]))), ("files", ("bad.jpg", b"%PDF-1.4 nope")),
             ("files", ("empty.png", b""))]
    r = app_client.post("/v1/classify", files=files)
    assert r.status_code == 200
    good, bad, empty = r.json()["results"]
    assert "colours" in good["models"]
    assert bad == {"image": "bad.jpg", "error": bad["error"]} and "PDF is not an allowed image format" in bad["error"]
    assert "empty input" in empty["error"]


def test_zip_limits(app_client, images) -> None:
    many = {f"{i}.png": png_bytes(images["red.png"]) for i in range(6)}
    r = app_client.post("/v1/classify", files={"archive": ("many.zip", _zip(many))})
    assert r.status_code == 413 and "holds 6 images, over the limit of 5" in r.json()["error"]["message"]
    r = app_client.post("/v1/classify", files={"archive": ("x.zip", b"PK but not really a zip")})
    assert r.status_code == 400 and "not a zip archive" in r.json()["error"]["message"]
    bomb = _zip({"zeros.png": b"\0" * 2_000_000})
    r = app_client.post("/v1/classify", files={"archive": ("bomb.zip", bomb)})
    assert r.status_code == 400 and "zip bomb" in r.json()["error"]["message"]
    r = app_client.post("/v1/classify", files=[("files", (f"{i}.png", png_bytes(images["red.png"]))) for i in range(6)])
    assert r.status_code == 413


def test_model_and_input_errors(app_client, settings, images, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    files = [("files", ("red.png", png_bytes(images["red.png"])))]
    r = app_client.post("/v1/classify?model=colors", files=files)
    assert r.status_code == 404 and "did you mean 'colours'" in r.json()["error"]["message"]
    r = app_client.post("/v1/classify")
    assert r.status_code == 400 and "'files'" in r.json()["error"]["message"]
    with TestClient(create_app(settings.model_copy(update={"storage": tmp_path / "empty"}))) as client:
        r = client.post("/v1/classify", files=files)  # a server with no model
        assert r.status_code == 400 and "no model is registered" in r.json()["error"]["message"]
