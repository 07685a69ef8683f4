"""``--db postgresql+psycopg://...``: the service's tables in PostgreSQL instead of the embedded SQLite.

Every test gets a fresh database on a throwaway cluster started once per test session
(``postgres_db`` / ``postgres_url``, tests/serve/pg.py); they skip, saying why, where the PostgreSQL
server binaries or psycopg are missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url

from pixlearn.serve.app import create_app
from pixlearn.serve.db import make_engine
from pixlearn.serve.registry import models_table
from pixlearn.serve.trainings import trainings_table
from tests.serve.conftest import colour_image, png_bytes
from tests.serve.test_trainings import submit, tiny_zip, wait_for


def _client(settings, db: str, **update) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"db": db, **update})))


def _names(client: TestClient) -> list[str]:
    r = client.get("/v1/models")
    assert r.status_code == 200, r.text
    return [m["name"] for m in r.json()["models"]]


def _rows(url: str, column) -> list:
    """One column of a table, read straight from the database (not through the service)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(column).order_by(column)).scalars())
    finally:
        engine.dispose()


def test_the_session_cluster_is_postgresql(postgres_url) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:") and postgres_url.endswith("/pixlearn_test")
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select version()").scalar().startswith("PostgreSQL ")
    finally:
        engine.dispose()


def test_the_service_keeps_its_tables_in_postgresql(settings, postgres_db) -> None:
    with _client(settings, postgres_db) as c:
        engine = c.app.state.engine
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        assert {"models", "trainings"} <= set(inspect(engine).get_table_names())
        assert c.get("/v1/health").json()["ready"] is True
        assert _names(c) == [] and c.get("/v1/trainings").json() == {"trainings": []}
    assert settings.storage.is_dir() and not (settings.storage / "pixlearn.db").exists()


def test_registry_register_list_get_delete_and_restart(settings, postgres_db, trained_run, tmp_path) -> None:
    copy = tmp_path / "other" / "colours"
    shutil.copytree(trained_run, copy)
    with _client(settings, postgres_db, models=[trained_run]) as c:
        reg = c.app.state.registry
        assert _names(c) == ["colours"]
        record = c.get("/v1/models/colours").json()
        assert (record["task"], record["source"], record["architecture"]) == ("classify", "cli", "pixlearn_smallcnn_tiny")
        assert record["classes"] == ["blue", "green", "red"] and record["input_shape"] == [3, 16, 16]
        assert record["metrics"]["split"] == "holdout" and 0.0 <= record["metrics"]["accuracy"] <= 1.0
        assert record["created"].endswith("+00:00") and record["run_dir"] == trained_run.resolve().name
        assert reg.register_run(trained_run)["name"] == "colours"  # the same folder again: an UPDATE, not a new row
        assert reg.register_run(copy)["name"] == "colours-2"
        r = c.get("/v1/models/colour")
        assert r.status_code == 404 and "did you mean 'colours'" in r.json()["error"]["message"]

        rng = np.random.default_rng(3)
        r = c.post("/v1/classify", files=[("files", ("red.png", png_bytes(colour_image("red", rng)), "image/png"))],
                   data={"model": "colours,colours-2", "top_k": "3"})
        assert r.status_code == 200, r.text
        assert {x["label"] for x in r.json()["results"][0]["models"]["colours-2"]} == {"blue", "green", "red"}
    assert _rows(postgres_db, models_table.c.name) == ["colours", "colours-2"]

    with _client(settings, postgres_db) as c:  # a restart without --model: the registry comes from PostgreSQL
        assert _names(c) == ["colours", "colours-2"]
        assert c.app.state.registry.loaded("colours-2")
        assert c.delete("/v1/models/colours-2").status_code == 204
        assert c.delete("/v1/models/colours-2").status_code == 404
    assert copy.is_dir()  # a --model folder is the user's: deleting its entry keeps it
    with _client(settings, postgres_db) as c:
        assert _names(c) == ["colours"]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_non_finite_metrics_are_stored_as_null(settings, trained_run, tmp_path, request, backend: str) -> None:
    """PostgreSQL's json type refuses NaN; a JSON response cannot carry it either. Both backends store null."""
    db = request.getfixturevalue("postgres_db") if backend == "postgresql" else None
    run = tmp_path / "nan-run"
    shutil.copytree(trained_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(fit_seconds=float("nan"), roc_auc_macro=float("inf"))
    (run / "metrics.json").write_text(json.dumps(metrics))  # Python writes NaN and Infinity
    with _client(settings, db) as c:
        assert c.app.state.engine.dialect.name == backend
        record = c.app.state.registry.register_run(run)
        assert record["metrics"]["fit_seconds"] is None and record["metrics"]["roc_auc_macro"] is None
        r = c.get("/v1/models/nan-run")
        assert r.status_code == 200, r.text
        assert r.json()["metrics"]["accuracy"] == metrics["accuracy"]


def test_training_jobs_queue_list_cancel_and_survive_a_restart(settings, postgres_db) -> None:
    idle = {"training_workers": 0}  # jobs are queued, never started: no worker process in this test
    with _client(settings, postgres_db, **idle) as c:
        first = submit(c, tiny_zip(n=3), filename="first.zip").json()
        second = submit(c, tiny_zip(n=2, classes=("red", "green", "blue")), filename="second.zip", epochs=3).json()
        assert (first["status"], first["name"], first["epochs"]) == ("queued", "first", 1)
        assert first["dataset"]["per_class"] == {"blue": 3, "red": 3} and first["dataset"]["archive"] == "first.zip"
        assert second["options"] == {"minutes": 3.0, "architecture": "auto", "epochs": 3, "img_size": 16, "batch": 8,
                                     "lr": None}
        assert [j["id"] for j in c.get("/v1/trainings").json()["trainings"]] == [second["id"], first["id"]]
        r = c.delete(f"/v1/trainings/{second['id']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished"]
    assert sorted(_rows(postgres_db, trainings_table.c.status)) == ["cancelled", "queued"]

    with _client(settings, postgres_db, **idle) as c:  # a restart: the jobs come back from PostgreSQL
        jobs = {j["id"]: j for j in c.get("/v1/trainings").json()["trainings"]}
        assert {k: j["status"] for k, j in jobs.items()} == {first["id"]: "queued", second["id"]: "cancelled"}
        assert jobs[first["id"]]["dataset"] == first["dataset"] and jobs[first["id"]]["created"] == first["created"]
        assert c.delete(f"/v1/trainings/{second['id']}").status_code == 204  # a finished job is deleted
        assert c.delete(f"/v1/trainings/{first['id']}").json()["status"] == "cancelled"
        assert c.delete(f"/v1/trainings/{first['id']}").status_code == 204
        assert c.get("/v1/trainings").json() == {"trainings": []}
        assert c.get(f"/v1/trainings/{first['id']}").status_code == 404
    assert _rows(postgres_db, trainings_table.c.id) == []


@pytest.mark.slow
def test_a_training_job_end_to_end_registers_its_model_in_postgresql(settings, postgres_db) -> None:
    with _client(settings, postgres_db) as c:
        job = submit(c, tiny_zip(), filename="colours.zip", name="colours").json()
        done = wait_for(c, job["id"], lambda j: j["status"] == "succeeded", "succeeded")
        assert (done["model"], done["epoch"], done["error"], done["progress"]) == ("colours", 1, None, 1.0)
        assert done["metrics"][0]["epoch"] == 1 and done["final"]["split"] == "holdout"
        rng = np.random.default_rng(5)
        r = c.post("/v1/classify", files=[("files", ("b.png", png_bytes(colour_image("blue", rng)), "image/png"))],
                   data={"model": "colours"})
        assert r.status_code == 200 and {x["label"] for x in r.json()["results"][0]["models"]["colours"]} <= {"red", "blue"}
    with _client(settings, postgres_db) as c:  # the job's history and its model are in the database
        again = c.get(f"/v1/trainings/{job['id']}").json()
        assert (again["status"], again["metrics"], again["final"]) == ("succeeded", done["metrics"], done["final"])
        assert c.get("/v1/models/colours").json()["source"] == "training"


def test_pixlearn_serve_db_url_answers_and_hides_the_password(start_server, postgres_db, trained_run) -> None:
    # the cluster trusts local connections: any password is accepted, so this one only has to stay out of the log
    url = make_url(postgres_db).set(password="s3cret-pw").render_as_string(hide_password=False)
    base = start_server("--db", url, "--model", str(trained_run), "--no-demo")
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/v1/health").json()["models"] == 1
        models = http.get("/v1/models").json()["models"]
        assert [(m["name"], m["source"]) for m in models] == [("colours", "cli")]
        assert http.get("/v2/models/colours/ready").status_code == 200
    server = start_server.servers[-1]
    assert server.stop() in (0, -15), server.log()
    log = server.log()
    assert "database: postgresql+psycopg://postgres:***@127.0.0.1:" in log and "s3cret-pw" not in log
    assert not (server.storage / "pixlearn.db").exists()
    assert _rows(postgres_db, models_table.c.name) == ["colours"]


def test_pixlearn_serve_refuses_an_unreachable_database_with_the_reason(tmp_path: Path, capsys) -> None:
    pytest.importorskip("psycopg", reason="needs psycopg: pip install 'pixlearn[postgres]'")
    from pixlearn.cli import main

    code = main(["serve", "--storage", str(tmp_path / "s"), "--port", "0",
                 "--db", "postgresql+psycopg://pixlearn:s3cret-pw@127.0.0.1:1/pixlearn"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "postgresql+psycopg://pixlearn:***@127.0.0.1:1/pixlearn" in err and "cannot connect" in err
    assert "s3cret-pw" not in err
