"""/v1/trainings: jobs from an uploaded zip, run in a separate process, cancelled, and recovered after a restart.

The training tests start real worker processes (``python -m pixlearn.serve.train_worker``) that
train smallcnn_tiny on 2 classes x 8 images of 16 px; the slow part is the worker importing torch
and Lightning. ``PIXLEARN_TRAIN_HOLD_AFTER_EPOCH`` makes a worker wait after N checkpointed epochs,
so that cancel and restart happen mid-job deterministically.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pixlearn.serve.app import create_app
from pixlearn.serve.trainings import NO_CHECKPOINT, NO_EVALUATION, JobManager, _alive
from pixlearn.serve.train_worker import HOLD_ENV
from tests.serve.conftest import colour_image, png_bytes

TIMEOUT_S = 240  # a worker importing torch + Lightning on a busy 2-core machine


def tiny_zip(*, classes: tuple[str, ...] = ("red", "blue"), n: int = 8, wrapper: str = "colours") -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in classes:
            for i in range(n):
                zf.writestr(f"{wrapper}/{c}/{i}.png", png_bytes(colour_image(c, rng, size=16)))
    return buf.getvalue()


def submit(client: TestClient, data: bytes, *, filename: str = "colours.zip", **form: Any) -> Any:
    fields = {"epochs": "1", "img_size": "16", "batch": "8", **{k: str(v) for k, v in form.items()}}
    return client.post("/v1/trainings", files={"archive": (filename, data, "application/zip")}, data=fields)


def wait_for(client: TestClient, job_id: str, until: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/v1/trainings/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if until(job):
            return job
        if job["status"] in ("failed", "cancelled", "succeeded"):
            break
        time.sleep(0.2)
    log = client.get(f"/v1/trainings/{job_id}/log").text
    raise AssertionError(f"job never became {what}: {job}\nworker log:\n{log[-3000:]}")


def _row(settings, job_id: str) -> Any:
    """The job's row in the service database (pid and run folder are not part of the API)."""
    from sqlalchemy import select

    from pixlearn.serve.db import make_engine
    from pixlearn.serve.trainings import trainings_table

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(trainings_table).where(trainings_table.c.id == job_id)).mappings().one()
    finally:
        engine.dispose()


def _pid(settings, job_id: str) -> int:
    return int(_row(settings, job_id)["pid"])


def _gone(pid: int, job_dir: Path, timeout: float = 10.0) -> bool:
    """Whether the worker ``pid`` has ended (a zombie not yet reaped by this test process counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, job_dir):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- refusals (no worker)
def test_hostile_archive_is_400_with_reasons_and_leaves_nothing(client, settings, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../escape.png", b"x")
        info = zipfile.ZipInfo("cats/link.png")
        info.external_attr = (0o120777) << 16  # a symbolic link
        zf.writestr(info, "/etc/passwd")
        zf.writestr("cats/1.png", png_bytes(np.zeros((8, 8, 3), np.uint8)))
    r = submit(client, buf.getvalue(), filename="evil.zip")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == "bad_request" and body["error"]["message"].startswith("evil.zip: the archive was refused: ")
    assert len(body["reasons"]) == 4
    assert [k for k in ("path traversal", "symbolic-link", "only one class", "too few images") if k in " ".join(body["reasons"])] == [
        "path traversal", "symbolic-link", "only one class", "too few images"]
    assert not list((settings.storage / "trainings").iterdir())
    assert not list(tmp_path.rglob("escape.png"))
    assert client.get("/v1/trainings").json() == {"trainings": []}

    r = submit(client, b"this is not a zip", filename="notes.txt")
    assert r.status_code == 400 and "not a zip" in r.json()["reasons"][0]


def test_invalid_options_are_4xx_naming_the_field(client, settings) -> None:
    r = submit(client, tiny_zip(n=2), architecture="pixlearn_smalcnn_tiny")
    assert r.status_code == 400, r.text
    assert "architecture" in r.json()["error"]["message"] and "did you mean 'pixlearn_smallcnn_tiny'" in r.json()["error"]["message"]
    r = submit(client, tiny_zip(n=2), epochs=0)
    assert r.status_code == 422 and "epochs" in r.json()["error"]["message"]
    r = client.post("/v1/trainings", data={"epochs": "1"})
    assert r.status_code == 422 and "archive is required" in r.json()["error"]["message"]
    assert not list((settings.storage / "trainings").iterdir())


def test_unknown_job_is_404(client) -> None:
    for method in ("get", "delete"):
        r = getattr(client, method)("/v1/trainings/nope")
        assert r.status_code == 404 and "no training job 'nope'" in r.json()["error"]["message"]


# ---------------------------------------------------------------- jobs with a worker process
def test_queued_jobs_run_at_start_and_a_failed_job_says_why(settings) -> None:
    """A server that runs no jobs (training_workers=0) queues; the next server runs them. This job's data is
    removed before it runs, so its worker fails at once with the reader's message."""
    idle = settings.model_copy(update={"training_workers": 0})
    with TestClient(create_app(idle)) as client:
        r = submit(client, tiny_zip(n=3), filename="first.zip")
        assert r.status_code == 202, r.text
        job = r.json()
        assert (job["status"], job["name"], job["progress"], job["epochs"]) == ("queued", "first", 0.0, 1)
        assert job["dataset"]["per_class"] == {"blue": 3, "red": 3} and job["dataset"]["archive"] == "first.zip"
        time.sleep(0.6)
        assert client.get(f"/v1/trainings/{job['id']}").json()["status"] == "queued"
    shutil.rmtree(settings.storage / "trainings" / job["id"] / "data")
    with TestClient(create_app(settings)) as client:
        done = wait_for(client, job["id"], lambda j: j["status"] == "failed", "failed")
        assert done["error"].startswith("the uploaded data: no such folder or file; --data must be a folder"), done
        assert done["model"] is None and done["finished"] and done["started"]
        log = client.get(f"/v1/trainings/{job['id']}/log").text
        assert "error: " in log and "no such folder or file" in log
        assert client.delete(f"/v1/trainings/{job['id']}").status_code == 204
        assert not (settings.storage / "trainings" / job["id"]).exists()
        assert client.get("/v1/trainings").json() == {"trainings": []}


@pytest.mark.slow
def test_training_end_to_end_registers_a_usable_model(client, settings) -> None:
    r = submit(client, tiny_zip(), filename="colour set.zip", name="colours")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["options"] == {
        "architecture": "pixlearn_smallcnn_tiny", "epochs": 1, "img_size": 16, "batch": 8, "lr": None}
    done = wait_for(client, job["id"], lambda j: j["status"] == "succeeded", "succeeded")
    assert (done["progress"], done["epoch"], done["epochs"], done["error"], done["model"]) == (1.0, 1, 1, None, "colours")
    assert [m["epoch"] for m in done["metrics"]] == [1]
    assert done["metrics"][0]["train_loss"] > 0 and 0 <= done["metrics"][0]["val_accuracy"] <= 1
    assert done["final"]["split"] == "holdout"
    assert [j["id"] for j in client.get("/v1/trainings").json()["trainings"]] == [job["id"]]

    model = client.get("/v1/models/colours").json()
    assert (model["source"], model["classes"], model["architecture"], model["input_shape"]) == (
        "training", ["blue", "red"], "pixlearn_smallcnn_tiny", [3, 16, 16])
    assert model["run_dir"].startswith("models/") and not Path(model["run_dir"]).is_absolute()

    rng = np.random.default_rng(7)
    files = [("files", (f"{c}.png", png_bytes(colour_image(c, rng, size=24)), "image/png")) for c in ("red", "blue")]
    r = client.post("/v1/classify", files=files, data={"model": "colours", "top_k": "2"})
    assert r.status_code == 200, r.text
    for res in r.json()["results"]:
        labels = res["models"]["colours"]
        assert {x["label"] for x in labels} == {"red", "blue"}
        assert sum(x["score"] for x in labels) == pytest.approx(1.0, abs=1e-4)

    # a finished job is deleted from the list (204); its model stays registered and usable
    assert client.delete(f"/v1/trainings/{job['id']}").status_code == 204
    assert client.get(f"/v1/trainings/{job['id']}").status_code == 404
    assert client.get("/v1/models/colours").status_code == 200
    assert (settings.storage / model["run_dir"]).is_dir()


@pytest.mark.slow
def test_cancel_a_running_job(client, settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOLD_ENV, "0")  # the worker waits at the start of its first epoch
    job = submit(client, tiny_zip(n=4), epochs=2).json()
    held = wait_for(client, job["id"], lambda j: j["stage"] == "held", "held in training")
    assert held["status"] == "running" and held["started"]
    pid = _pid(settings, job["id"])
    assert _alive(pid, settings.storage / "trainings" / job["id"])

    from pixlearn.serve import trainings

    sent: list[tuple[int, bool]] = []  # (signal, whether the worker was still alive when it was sent)
    real_signal_group = trainings._signal_group

    def spy(group: int, sig: int) -> None:
        sent.append((sig, _alive(pid, settings.storage / "trainings" / job["id"])))
        real_signal_group(group, sig)

    monkeypatch.setattr(trainings, "_signal_group", spy)
    monkeypatch.setattr(JobManager, "grace_s", 600.0)  # SIGKILL only if SIGTERM never works, however slow the machine
    r = client.delete(f"/v1/trainings/{job['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished"]
    assert sent[0] == (signal.SIGTERM, True)
    assert (signal.SIGKILL, True) not in sent, "SIGTERM should end the worker without waiting for SIGKILL"
    assert _gone(pid, settings.storage / "trainings" / job["id"]), "the worker survived the cancel"
    time.sleep(0.6)  # the dispatcher must not turn it into failed or succeeded
    after = client.get(f"/v1/trainings/{job['id']}").json()
    assert (after["status"], after["model"], after["error"]) == ("cancelled", None, None)
    assert client.get("/v1/models").json() == {"models": []}
    assert client.delete(f"/v1/trainings/{job['id']}").status_code == 204


@pytest.mark.parametrize("left_behind", ["nothing", "checkpoint while evaluating"])
def test_restart_marks_a_job_it_cannot_resume_failed_with_the_reason(settings, left_behind: str) -> None:
    with TestClient(create_app(settings)) as client:
        job = submit(client, tiny_zip(n=4)).json()
        wait_for(client, job["id"], lambda j: j["status"] == "running", "running")
        pid = _pid(settings, job["id"])
        client.app.state.jobs.shutdown(stop_jobs=False)  # the server dies...
        os.killpg(pid, signal.SIGKILL)  # ...and its worker with it, long before an epoch ends
        assert _gone(pid, settings.storage / "trainings" / job["id"])
    assert not list((settings.storage / "models").rglob("last.ckpt"))
    expected = NO_CHECKPOINT
    if left_behind != "nothing":  # what a worker killed during its final evaluation leaves: every epoch checkpointed
        run_dir = Path(_row(settings, job["id"])["run_dir"])
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
        (settings.storage / "trainings" / job["id"] / "progress.json").write_text('{"stage": "evaluating"}')
        expected = NO_EVALUATION
    with TestClient(create_app(settings)) as client:
        job = client.get(f"/v1/trainings/{job['id']}").json()
        assert (job["status"], job["error"], job["model"]) == ("failed", expected, None)
        assert job["finished"]


@pytest.mark.slow
def test_restart_adopts_a_live_worker_then_resumes_from_its_checkpoint(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOLD_ENV, "1")  # the worker waits once epoch 1 is done and checkpointed
    with TestClient(create_app(settings)) as client:
        job = submit(client, tiny_zip(), epochs=2, name="resumed").json()
        held = wait_for(client, job["id"], lambda j: j["stage"] == "held", "held after epoch 1")
        assert (held["status"], held["epoch"], held["progress"]) == ("running", 1, 0.5)
        assert [m["epoch"] for m in held["metrics"]] == [1]
        pid = _pid(settings, job["id"])
        client.app.state.jobs.shutdown(stop_jobs=False)  # a server crash: the worker lives on

    assert _alive(pid, settings.storage / "trainings" / job["id"])
    with TestClient(create_app(settings)) as client:  # the next server watches the live worker again...
        adopted = client.get(f"/v1/trainings/{job['id']}").json()
        assert adopted["status"] == "running" and _pid(settings, job["id"]) == pid
    assert _gone(pid, settings.storage / "trainings" / job["id"]), "stopping the server must stop its workers"  # ...and stops it when it stops itself

    monkeypatch.delenv(HOLD_ENV)
    with TestClient(create_app(settings)) as client:  # the third server resumes the job from last.ckpt
        done = wait_for(client, job["id"], lambda j: j["status"] == "succeeded", "succeeded after resuming")
        assert (done["model"], done["epoch"], done["resumed"]) == ("resumed", 2, 1)
        assert [m["epoch"] for m in done["metrics"]] == [1, 2]
        assert done["metrics"][0] == held["metrics"][0]  # epoch 1 was not trained again
        run_dir = settings.storage / client.get("/v1/models/resumed").json()["run_dir"]
        import json

        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert [r["from_epoch"] for r in manifest["resumed"]] == [1]
        assert manifest["status"] == "finished"


# ---------------------------------------------------------------- dataset files that name paths outside the upload
SECRET = b"TOPSECRET-do-not-leak-4711"


def _hostile_rows(secret: Path) -> list[str]:
    """labels.csv rows that name files of the host: absolute paths and a '../' climb to the root."""
    climb = "../" * 40 + str(secret).lstrip("/")
    return [f"{secret},red", "/etc/passwd,blue", f"{climb},red", "../../../../../../../../etc/hostname,blue"]


def _csv_zip(rows: list[str], *, good: int = 4, listed: bool = True) -> bytes:
    """A zip with ``good`` real images per class whose labels.csv lists them (when ``listed``), then ``rows``."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    lines = ["path,label"]
    with zipfile.ZipFile(buf, "w") as zf:
        for c in ("red", "blue"):
            for i in range(good):
                zf.writestr(f"set/img/{c}{i}.png", png_bytes(colour_image(c, rng, size=16)))
                if listed:
                    lines.append(f"img/{c}{i}.png,{c}")
        zf.writestr("set/labels.csv", "\n".join(lines + rows) + "\n")
    return buf.getvalue()


def _no_leak(text: str, secret: Path) -> None:
    for leaked in (str(secret), SECRET.decode(), "/etc/passwd", "root:x:0", "etc/hostname"):
        assert leaked not in text, f"{leaked!r} leaked into: {text[:600]}"


@pytest.mark.parametrize("listed", [False, True], ids=["only-outside-rows", "outside-rows-among-real-ones"])
def test_labels_csv_naming_host_files_is_400_and_reads_nothing(client, settings, tmp_path: Path, listed: bool) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(SECRET)
    r = submit(client, _csv_zip(_hostile_rows(secret), listed=listed), filename="hostile.zip")
    assert r.status_code == 400, r.text
    body = r.json()
    _no_leak(r.text, secret)
    text = " ".join(body["reasons"])
    assert "outside" in text and "labels.csv: line" in text, body
    if listed:  # the real rows would train: the archive is refused anyway, naming how many rows reach out
        assert "4 path(s) in the dataset lead outside the archive's dataset folder" in text, body
    else:
        assert "every path it names leads outside the dataset folder (4 refused" in text and "allow_outside_root" not in text and "--allow" not in text, body
    assert not list((settings.storage / "trainings").iterdir())
    assert client.get("/v1/trainings").json() == {"trainings": []}


def test_a_queued_job_whose_data_names_host_files_fails_without_reading_them(settings, tmp_path: Path) -> None:
    """Data changed after submission (or queued before this check existed): the worker refuses the outside
    rows itself and fails; neither the job's status nor its log shows a path or a byte of the host's files."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(SECRET)
    idle = settings.model_copy(update={"training_workers": 0})
    with TestClient(create_app(idle)) as client:
        job = submit(client, _csv_zip([]), filename="later.zip").json()
        assert job["status"] == "queued", job
    data = settings.storage / "trainings" / job["id"] / "data" / "set"
    with (data / "labels.csv").open("a") as fh:
        fh.write("\n".join(_hostile_rows(secret)) + "\n")
    with TestClient(create_app(settings)) as client:
        done = wait_for(client, job["id"], lambda j: j["status"] == "failed", "failed")
        assert "4 path(s) in the uploaded dataset lead outside it" in done["error"], done
        log = client.get(f"/v1/trainings/{job['id']}/log").text
        for text in (str(done), log, client.get("/v1/trainings").text):
            _no_leak(text, secret)
        assert "allow_outside_root=True" not in done["error"]
