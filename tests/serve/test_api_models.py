"""/v1/models and the registry: list, show, delete, names, persistence across restarts, health and errors."""

from __future__ import annotations

import shutil

import pytest


def _app(settings, **update):
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    return TestClient(create_app(settings.model_copy(update=update)))


def test_list_show_delete_a_cli_model_keeps_its_folder(settings, trained_run) -> None:
    with _app(settings, models=[trained_run]) as c:
        listed = c.get("/v1/models")
        models = listed.json()["models"]
        assert [m["name"] for m in models] == ["colours"]
        shown = c.get("/v1/models/colours")
        record = shown.json()
        assert record["task"] == "classify" and record["classes"] == ["blue", "green", "red"]
        assert record["source"] == "cli" and record["architecture"] == "pixlearn_smallcnn_tiny"
        assert record["input_shape"] == [3, 16, 16]
        # No server path in an answer: a --model folder is shown by its name.
        assert record["run_dir"] == trained_run.resolve().name == models[0]["run_dir"]
        for answer in (listed, shown):
            assert str(trained_run.parent.resolve()) not in answer.text and str(settings.storage) not in answer.text
        assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and record["metrics"]["split"] == "holdout"
        assert record["created"].endswith("+00:00")
        r = c.get("/v1/models/colour")
        assert r.status_code == 404 and "did you mean 'colours'" in r.json()["error"]["message"]
        assert r.json()["error"]["code"] == "model_not_found"  # /v1 errors: {"error": {"code", "message"}}
        r = c.delete("/v1/models/colours")
        assert r.status_code == 204 and r.content == b""
        assert c.get("/v1/models").json() == {"models": []}
        assert c.delete("/v1/models/colours").status_code == 404
    assert (trained_run / "weights" / "best.safetensors").is_file()


def test_a_service_trained_model_is_deleted_with_its_files(settings, trained_run) -> None:
    owned = settings.models_dir / "mine"
    shutil.copytree(trained_run, owned)
    with _app(settings) as c:
        record = c.app.state.registry.register_run(owned, source="training")
        assert record["name"] == "mine" and record["source"] == "training"
        shown = c.get("/v1/models/mine").json()
        assert shown["source"] == "training"
        assert shown["run_dir"] == "models/mine"  # relative to the storage folder, not the server's path
        assert c.delete("/v1/models/mine").status_code == 204
    assert not owned.exists()


def test_names_are_unique_and_reregistering_a_folder_is_idempotent(settings, trained_run, tmp_path) -> None:
    copy = tmp_path / "other" / "colours"
    shutil.copytree(trained_run, copy)
    with _app(settings, models=[trained_run]) as c:
        reg = c.app.state.registry
        assert reg.register_run(trained_run)["name"] == "colours"  # same folder: same record
        assert reg.register_run(copy)["name"] == "colours-2"
        assert reg.register_run(copy, name="my model/v1")["name"] == "colours-2"
        assert reg.input_shape("colours-2") == (3, 16, 16)
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["colours", "colours-2"]
    with _app(settings) as c:  # a restart keeps the registry (SQLite under the storage folder)
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["colours", "colours-2"]
        assert c.app.state.registry.loaded("colours")  # loaded at start-up, not on the first request
    assert (settings.storage / "pixlearn.db-wal").exists() or (settings.storage / "pixlearn.db").exists()


def test_a_model_whose_files_vanished_answers_503_and_can_be_deleted(settings, trained_run, tmp_path) -> None:
    from tests.serve.conftest import png_bytes

    import numpy as np

    gone = tmp_path / "gone"
    shutil.copytree(trained_run, gone)
    with _app(settings, models=[gone]):
        pass
    shutil.rmtree(gone)
    with _app(settings) as c:
        r = c.post("/v1/classify", files={"files": ("a.png", png_bytes(np.zeros((8, 8, 3), np.uint8)))})
        assert r.status_code == 503 and "DELETE /v1/models/gone" in r.json()["error"]["message"]
        assert str(tmp_path) not in r.text  # the vanished folder is named, its server path is not
        r = c.get("/v2/models/gone")
        assert r.status_code in (400, 503) and str(tmp_path) not in r.text
        assert c.delete("/v1/models/gone").status_code == 204


def test_bad_run_folders_are_refused_with_the_reason(settings, tmp_path) -> None:
    from pixlearn import ConfigError
    from pixlearn.serve.app import create_app

    with _app(settings) as c:
        reg = c.app.state.registry
        with pytest.raises(ConfigError, match="no such run folder"):
            reg.register_run(tmp_path / "missing")
        (tmp_path / "empty").mkdir()
        with pytest.raises(ConfigError, match="not a classification run folder"):
            reg.register_run(tmp_path / "empty")
    assert create_app  # the app module imports without starting anything


def test_health_docs_and_json_errors(client) -> None:
    from pixlearn import __version__

    health = client.get("/v1/health").json()
    assert health == {"status": "ok", "version": __version__, "ready": True, "models": 0}
    info = client.get("/openapi.json").json()["info"]
    assert info["title"] == "pixlearn"
    # The description states both error shapes (it once said every error was {"error": "..."}).
    assert '`{"error": {"code": "...", "message": "..."}}` on the `/v1` routes' in info["description"]
    assert 'own `{"error": "..."}` on the `/v2` routes' in info["description"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("no such route GET /v1/nothing")
    assert r.json()["error"]["code"] == "not_found"
    r = client.put("/v1/models")
    assert r.status_code == 405 and "PUT is not allowed" in r.json()["error"]["message"]


def test_settings_come_from_the_environment(monkeypatch, tmp_path) -> None:
    from pixlearn.serve.settings import ServeSettings

    monkeypatch.setenv("PIXLEARN_STORAGE", str(tmp_path / "s"))
    monkeypatch.setenv("PIXLEARN_API_KEYS", "key-one, key-two,")
    monkeypatch.setenv("PIXLEARN_API_KEY", "key-three")
    s = ServeSettings()
    assert s.storage == tmp_path / "s" and s.api_keys == ["key-one", "key-two", "key-three"]
    assert s.database_url == f"sqlite:///{tmp_path / 's'}/pixlearn.db"
    with pytest.raises(ValueError, match="max_concurrenc"):
        ServeSettings(max_concurrency=0)
    with pytest.raises(ValueError, match="extra"):
        ServeSettings(max_body=3)
