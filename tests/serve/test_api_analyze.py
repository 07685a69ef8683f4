"""/v1/analyze: every input form, feature selection, known answers; labels from the general ImageNet labeller
(a clear note without its weights), a registered model's labels only when asked for or marked general."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import colour_image, png_bytes

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "weights" / "tf_efficientnet_lite0.in1k.safetensors"


@pytest.fixture(autouse=True)
def no_local_weights(tmp_path, monkeypatch) -> Path:
    """An empty PIXLEARN_WEIGHTS folder and a cache without weights: the labeller is absent unless a test adds it."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    return folder


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
    assert "labels" not in body and "models" not in body  # no labeller weights: the answer says so instead
    assert "pixlearn weights add" in body["unavailable"]["labels"]
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


def test_labels_without_the_labeller_weights_say_how_to_add_them(client, two_colours, no_local_weights) -> None:
    r = client.post("/v1/analyze?features=labels", files={"file": ("a.png", png_bytes(two_colours))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"image", "unavailable", "timings_ms"}
    msg = body["unavailable"]["labels"]
    assert msg.startswith("no general labeller")
    assert "pixlearn weights add tf_efficientnet_lite0.in1k.safetensors --model tf_efficientnet_lite0" in msg
    assert "<PIXLEARN_WEIGHTS>, <cache>/weights" in msg and str(no_local_weights) not in msg  # no server paths


def test_a_weights_file_of_another_model_is_reported_not_used(client, two_colours, no_local_weights) -> None:
    from torch import nn

    from pixlearn.models import save_weights

    save_weights(nn.Linear(4, 10), no_local_weights / "tf_efficientnet_lite0.in1k.safetensors")
    r = client.post("/v1/analyze?features=labels", files={"file": ("a.png", png_bytes(two_colours))})
    assert r.status_code == 200, r.text
    msg = r.json()["unavailable"]["labels"]
    assert "<PIXLEARN_WEIGHTS>/tf_efficientnet_lite0.in1k.safetensors does not fit model" in msg, msg
    assert str(no_local_weights) not in msg


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


def test_a_registered_model_labels_only_when_asked_and_under_its_name(settings, trained_run) -> None:
    """A custom model (like the demo's digits) must not label every photo: a photo of coffee was "9, 23 %"."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.tasks.classify.predict import load_classifier

    img = colour_image("green", np.random.default_rng(5))
    expected = load_classifier(trained_run).predict([img], top_k=2)[0]["top_k"]
    with TestClient(create_app(settings.model_copy(update={"models": [trained_run]}))) as c:
        assert c.get("/v1/models/colours").json()["general"] is False
        for query in ("top_k=2", "features=labels"):  # not asked for, not general: not used
            r = c.post(f"/v1/analyze?{query}", files={"file": ("g.png", png_bytes(img))})
            assert r.status_code == 200, r.text
            body = r.json()
            assert "models" not in body and "labels" not in body, body
            assert "no general labeller" in body["unavailable"]["labels"]
            assert not any(k.startswith("models.") for k in body["timings_ms"])
        r = c.post("/v1/analyze?top_k=2&models=colours", files={"file": ("g.png", png_bytes(img))})  # asked for
        assert r.status_code == 200, r.text
        models = r.json()["models"]
        assert list(models) == ["colours"]
        assert [e["label"] for e in models["colours"]] == [e["label"] for e in expected]
        assert [e["score"] for e in models["colours"]] == pytest.approx([e["score"] for e in expected], abs=1e-5)
        assert "models.colours" in r.json()["timings_ms"]
        r = c.post("/v1/analyze", json={"image": {"b64": base64.b64encode(png_bytes(img)).decode()},
                                        "features": "labels", "models": ["colour"]})
        assert r.status_code == 404 and "did you mean 'colours'" in r.json()["error"]["message"]
        r = c.post("/v1/analyze?features=colors&models=colours", files={"file": ("g.png", png_bytes(img))})
        assert r.status_code == 200 and set(r.json()) == {"image", "colors", "timings_ms"}  # labels not asked


def test_a_general_model_labels_without_being_asked(settings, trained_run) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    img = colour_image("red", np.random.default_rng(6))
    with TestClient(create_app(settings.model_copy(update={"general_models": [trained_run]}))) as c:
        assert c.get("/v1/models/colours").json()["general"] is True
        r = c.post("/v1/analyze?top_k=1", files={"file": ("r.png", png_bytes(img))})
        assert r.status_code == 200, r.text
        assert list(r.json()["models"]) == ["colours"] and len(r.json()["models"]["colours"]) == 1
    # Registered again with --model (not general): the flag follows the command line.
    with TestClient(create_app(settings.model_copy(update={"models": [trained_run]}))) as c:
        assert c.get("/v1/models/colours").json()["general"] is False
        r = c.post("/v1/analyze?top_k=1", files={"file": ("r.png", png_bytes(img))})
        assert "models" not in r.json()


def test_a_database_from_before_the_general_flag_gains_it(tmp_path, trained_run) -> None:
    from sqlalchemy import text

    from pixlearn.serve.db import make_engine, metadata
    from pixlearn.serve.registry import ModelRegistry

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # the models table as older releases made it
        conn.execute(text("CREATE TABLE models (name VARCHAR(128) PRIMARY KEY, task VARCHAR(32) NOT NULL, "
                          "classes JSON NOT NULL, metrics JSON NOT NULL, created VARCHAR(40) NOT NULL, "
                          "source VARCHAR(16) NOT NULL, run_dir TEXT NOT NULL, architecture VARCHAR(128) NOT NULL, "
                          "input_shape JSON NOT NULL, owned BOOLEAN NOT NULL)"))
        conn.execute(text("INSERT INTO models VALUES ('old', 'classify', '[\"a\"]', '{}', '2025-01-01T00:00:00+00:00', "
                          "'cli', '/nowhere', 'x', '[3, 8, 8]', 0)"))
    metadata.create_all(engine)
    registry = ModelRegistry(engine, tmp_path / "storage")
    assert registry.get("old")["general"] is False and registry.general_names() == []
    registry.register_run(trained_run, general=True)
    assert registry.general_names() == ["colours"]
    assert registry.set_general("colours", False)["general"] is False and registry.general_names() == []


@pytest.fixture(scope="module")
def shared_weights_dir(tmp_path_factory) -> Path:
    """A weights folder holding the shared EfficientNet-Lite0 ImageNet file (a link: one cached load for the module)."""
    if not SHARED.is_file():
        pytest.skip(f"{SHARED} is not on this machine")
    folder = tmp_path_factory.mktemp("labeller_weights")
    (folder / SHARED.name).symlink_to(SHARED.resolve())
    return folder


def test_the_imagenet_labeller_labels_photos_by_default(settings, trained_run, shared_weights_dir,
                                                        monkeypatch) -> None:
    from fastapi.testclient import TestClient
    from skimage import data

    from pixlearn.serve.app import create_app

    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(shared_weights_dir))
    with TestClient(create_app(settings.model_copy(update={"models": [trained_run]}))) as c:
        r = c.post("/v1/analyze?top_k=3", files={"file": ("coffee.png", png_bytes(data.coffee()))})
        assert r.status_code == 200, r.text
        body = r.json()
        assert "unavailable" not in body and "models" not in body  # the registered colours model is not asked
        assert len(body["labels"]) == 3 and body["labels"][0]["label"] in ("espresso", "cup", "coffee mug"), body
        assert body["labels"][0]["score"] > 0.5 and "labels" in body["timings_ms"]
        r = c.post("/v1/analyze?features=labels&top_k=1&models=colours",
                   files={"file": ("cat.png", png_bytes(data.chelsea()))})
        body = r.json()
        assert "cat" in body["labels"][0]["label"], body  # tiger cat / Egyptian cat / tabby, tabby cat
        assert list(body["models"]) == ["colours"]
