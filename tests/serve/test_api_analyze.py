"""/v1/analyze: every input form, feature selection, known answers, labels from a registered model."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.serve.conftest import colour_image, png_bytes


@pytest.fixture
def two_colours() -> np.ndarray:
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :21] = (255, 0, 0)
    img[:, 21:] = (0, 0, 255)
    return img


def test_multipart_upload_gives_colours_and_quality_by_default(client, two_colours) -> None:
    r = client.post("/v1/analyze", files={"file": ("flag.png", png_bytes(two_colours), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 30, "height": 20}
    assert [(c["name"], c["hex"], c["rgb"], c["fraction"]) for c in body["colors"]] == [
        ("red", "#ff0000", [255, 0, 0], 0.7), ("blue", "#0000ff", [0, 0, 255], 0.3)]
    from pixlearn.ops.color import quality

    assert body["quality"] == pytest.approx(quality(two_colours))
    assert "labels" not in body  # no model registered: labels is not a default
    assert {"decode", "colors", "quality", "total"} <= set(body["timings_ms"])


def test_json_base64_and_features_list(client, two_colours) -> None:
    b64 = base64.b64encode(png_bytes(two_colours)).decode()
    r = client.post("/v1/analyze", json={"image": {"b64": b64}, "features": ["quality"]})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"image", "quality", "timings_ms"}
    r = client.post("/v1/analyze", json={"image": {"b64": "data:image/png;base64," + b64}, "features": "colors",
                                         "n_colors": 1})
    assert r.status_code == 200 and len(r.json()["colors"]) == 1


def test_raw_body_and_query_features(client, two_colours) -> None:
    r = client.post("/v1/analyze?features=colors&n_colors=2", content=png_bytes(two_colours),
                    headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["colors"]] == ["red", "blue"]


def test_unknown_feature_is_400_listing_valid_ones(client, two_colours) -> None:
    r = client.post("/v1/analyze?features=colors,colr", files={"file": ("a.png", png_bytes(two_colours))})
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "'colr'" in msg and "did you mean 'colors'" in msg and "'quality'" in msg and "'labels'" in msg


@pytest.mark.parametrize("query, fragment", [("n_colors=0", "n_colors=0 is out of range"),
                                             ("n_colors=abc", "not an integer"), ("top_k=0", "top_k=0")])
def test_bad_numbers_are_400(client, two_colours, query, fragment) -> None:
    r = client.post(f"/v1/analyze?{query}", files={"file": ("a.png", png_bytes(two_colours))})
    assert r.status_code == 400 and fragment in r.json()["error"]["message"]


def test_labels_without_a_model_is_400_saying_how_to_get_one(client, two_colours) -> None:
    r = client.post("/v1/analyze?features=labels", files={"file": ("a.png", png_bytes(two_colours))})
    assert r.status_code == 400 and "POST /v1/trainings" in r.json()["error"]["message"]


def test_missing_image_and_wrong_content_type(client) -> None:
    r = client.post("/v1/analyze", json={"features": "colors"})
    assert r.status_code == 400 and "image" in r.json()["error"]["message"]
    r = client.post("/v1/analyze", data={"features": "colors"})
    assert r.status_code == 400 and "'file'" in r.json()["error"]["message"]
    r = client.post("/v1/analyze", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]
    r = client.post("/v1/analyze", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_path_inputs_only_under_allowed_roots(tmp_path, settings, two_colours) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.io import write_image
    from pixlearn.serve.app import create_app

    root = tmp_path / "photos"
    write_image(root / "flag.png", two_colours)
    write_image(tmp_path / "secret.png", two_colours)
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    with TestClient(create_app(settings)) as c:  # no allowed roots: refused
        r = c.post("/v1/analyze", json={"image": {"path": str(root / "flag.png")}})
        assert r.status_code == 403 and "--allow-root" in r.json()["error"]["message"]
    with TestClient(create_app(settings.model_copy(update={"allowed_roots": [root]}))) as c:
        r = c.post("/v1/analyze", json={"image": {"path": str(root / "flag.png")}, "features": "colors"})
        assert r.status_code == 200 and r.json()["colors"][0]["name"] == "red"
        r = c.post("/v1/analyze", json={"image": {"path": "flag.png"}, "features": "colors"})  # relative to the root
        assert r.status_code == 200
        for escape in (str(tmp_path / "secret.png"), "../secret.png", str(root / "link.png")):
            r = c.post("/v1/analyze", json={"image": {"path": escape}})
            assert r.status_code == 403 and "outside the allowed roots" in r.json()["error"]["message"], escape
        r = c.post("/v1/analyze", json={"image": {"path": "missing.png"}})
        assert r.status_code == 404 and "no such file" in r.json()["error"]["message"]


def test_labels_come_from_the_registered_model(settings, trained_run) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.tasks.classify_predict import load_classifier

    img = colour_image("green", np.random.default_rng(5))
    expected = load_classifier(trained_run).predict([img], top_k=2)[0]["top_k"]
    with TestClient(create_app(settings.model_copy(update={"models": [trained_run]}))) as c:
        r = c.post("/v1/analyze?top_k=2", files={"file": ("g.png", png_bytes(img))})  # labels now on by default
        assert r.status_code == 200, r.text
        labels = r.json()["labels"]
        assert list(labels) == ["colours"]
        assert [e["label"] for e in labels["colours"]] == [e["label"] for e in expected]
        assert [e["score"] for e in labels["colours"]] == pytest.approx([e["score"] for e in expected], abs=1e-5)
        r = c.post("/v1/analyze", json={"image": {"b64": base64.b64encode(png_bytes(img)).decode()},
                                        "features": "labels", "models": ["colour"]})
        assert r.status_code == 404 and "did you mean 'colours'" in r.json()["error"]["message"]
