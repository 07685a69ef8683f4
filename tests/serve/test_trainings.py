"""/v1/trainings: jobs from an uploaded zip, run in a separate process, cancelled, and recovered after a restart.

The training tests start real worker processes (``python -m pixlearn.serve.train_worker``) that
train the small CNN (or timm's tiny test_efficientnet from a local weights file made in the test) on
2 classes x 8 images of 16 px; the slow part is the worker importing torch and Lightning. ``PIXLEARN_TRAIN_HOLD_AFTER_EPOCH`` makes a worker wait after N checkpointed epochs,
so that cancel and restart happen mid-job deterministically.
"""

from __future__ import annotations

import io
import json
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


@pytest.fixture(autouse=True)
def no_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PIXLEARN_WEIGHTS folder and a cache without weights (workers inherit them): "auto" is the small
    CNN unless a test puts weights there; nothing from the user's own folders."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    return folder


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
    r = submit(client, tiny_zip(n=2), epochs="two")
    assert r.status_code == 422 and "epochs" in r.json()["error"]["message"]
    r = client.post("/v1/trainings", data={"epochs": "1"})
    assert r.status_code == 422 and "archive is required" in r.json()["error"]["message"]
    assert not list((settings.storage / "trainings").iterdir())


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("minutes", "0", "minutes must be between 0.5 and 120 (the training's time budget in minutes), got 0.0; send e.g. minutes=3"),
    ("minutes", "10000", "minutes must be between 0.5 and 120 (the training's time budget in minutes), got 10000.0; "
                         "send e.g. minutes=3"),
    ("minutes", "nan", "minutes must be between 0.5 and 120"),
    ("minutes", "inf", "minutes must be between 0.5 and 120"),
    ("epochs", "0", "epochs must be between 1 and 1000 (the most epochs to train), got 0"),
    ("epochs", "100000", "epochs must be between 1 and 1000"),
    ("img_size", "4", "img_size must be between 8 and 1024 (the square training size in pixels), got 4"),
    ("batch", "0", "batch must be between 1 and 1024 (images per batch), got 0"),
    ("lr", "-1", "lr must be between 1e-07 and 10 (the learning rate), got -1.0"),
])
def test_options_out_of_range_are_400_naming_the_range(client, settings, field: str, value: str, expected: str) -> None:
    r = client.post("/v1/trainings", files={"archive": ("colours.zip", tiny_zip(n=2), "application/zip")},
                    data={field: value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(expected), r.json()
    assert not list((settings.storage / "trainings").iterdir())  # checked before the archive is extracted


def test_default_options_are_a_three_minute_budget_and_an_auto_backbone(settings) -> None:
    """What the page sends by default (only the archive and minutes) is stored with every default filled in; a
    queued job says the backbone is chosen when it starts."""
    idle = settings.model_copy(update={"training_workers": 0})
    with TestClient(create_app(idle)) as client:
        r = client.post("/v1/trainings", files={"archive": ("colours.zip", tiny_zip(n=2), "application/zip")},
                        data={"minutes": "3"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["options"] == {"minutes": 3.0, "architecture": "auto", "epochs": None, "img_size": None,
                                  "batch": None, "lr": None}
        assert (job["minutes"], job["epochs"], job["progress"], job["elapsed_s"]) == (3.0, None, 0.0, None)
        assert (job["backbone"]["model"], job["backbone"]["choice"]) == (None, "chosen when the job starts")
        assert "a pretrained backbone when its weights are in a local weights folder" in job["backbone"]["reason"]
        r = client.post("/v1/trainings", files={"archive": ("colours.zip", tiny_zip(n=2), "application/zip")},
                        data={"architecture": "AUTO", "minutes": "0.5", "epochs": "7"})
        assert r.json()["options"]["architecture"] == "auto" and r.json()["epochs"] == 7
        r = client.post("/v1/trainings", files={"archive": ("colours.zip", tiny_zip(n=2), "application/zip")},
                        data={"architecture": "resnet18"})
        assert r.json()["backbone"]["model"] == "resnet18" and r.json()["backbone"]["choice"] == "resnet18 (asked for by name)"


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
        "minutes": 3.0, "architecture": "auto", "epochs": 1, "img_size": 16, "batch": 8, "lr": None}
    done = wait_for(client, job["id"], lambda j: j["status"] == "succeeded", "succeeded")
    assert (done["progress"], done["epoch"], done["epochs"], done["error"], done["model"]) == (1.0, 1, 1, None, "colours")
    assert [m["epoch"] for m in done["metrics"]] == [1]
    assert done["metrics"][0]["train_loss"] > 0 and 0 <= done["metrics"][0]["val_accuracy"] <= 1
    # no weights in the (empty) local weights folders: the small CNN, and the job says why
    assert (done["backbone"]["model"], done["backbone"]["pretrained"], done["backbone"]["weights"]) == ("pixlearn_smallcnn", False, None)
    assert done["backbone"]["choice"] == "no local weights: small CNN pixlearn_smallcnn"
    assert "no local weights for tf_efficientnet_lite0 in <PIXLEARN_WEIGHTS>, <cache>/weights" in done["backbone"]["reason"], done
    assert done["final"]["split"] == "holdout" and done["final"]["n"] >= 1 and 0 <= done["final"]["accuracy"] <= 1
    assert [j["id"] for j in client.get("/v1/trainings").json()["trainings"]] == [job["id"]]

    model = client.get("/v1/models/colours").json()
    assert (model["source"], model["classes"], model["architecture"], model["input_shape"]) == (
        "training", ["blue", "red"], "pixlearn_smallcnn", [3, 16, 16])
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
        # a long budget: the progress shown is the epochs' share (1 of 2), however slow the machine
        job = submit(client, tiny_zip(), epochs=2, name="resumed", minutes=120).json()
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


# ---------------------------------------------------------------- the model a job trains, its budget and its progress
def _lite0_weights(folder: Path) -> Path:
    """A local ``tf_efficientnet_lite0.in1k.safetensors`` with timm's random initial values (19 MB, made in the
    test; never ../shared): what the classification task looks for to fine-tune a pretrained backbone."""
    import safetensors.torch
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0")
    path = folder / "tf_efficientnet_lite0.in1k.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _fake_run(run_dir: Path, *, name: str, pretrained: bool, why: str | None) -> None:
    """The two files a classification run writes before its first step: config.yaml and manifest.json."""
    import yaml

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"name": name, "pretrained": pretrained, "weights": None}}))
    manifest = {"status": "running"}
    if why is not None:
        manifest["auto_model"] = {"model": name, "pretrained": pretrained, "why": why}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def test_describe_model_reads_the_tasks_choice_from_the_run_folder(tmp_path: Path, no_local_weights: Path) -> None:
    from pixlearn.serve.train_worker import describe_model, train_options

    assert train_options({"minutes": 3.0, "architecture": "auto", "epochs": None, "img_size": None, "batch": None,
                          "lr": None}) == {"minutes": 3.0}  # no model: the classification task picks it
    assert train_options({"minutes": 0.5, "architecture": "pixlearn_smallcnn_tiny", "epochs": 4, "img_size": 16,
                          "batch": 8, "lr": 0.01}) == {"model": "pixlearn_smallcnn_tiny", "minutes": 0.5, "epochs": 4,
                                                      "img_size": 16, "batch": 8, "lr": 0.01}
    assert train_options({"minutes": 1.0, "architecture": "tf_efficientnet_lite0"}) == {"model": "tf_efficientnet_lite0",
                                                                                         "minutes": 1.0}
    weights = no_local_weights / "tf_efficientnet_lite0.in1k.safetensors"
    weights.write_bytes(b"")  # only its presence is looked at here
    assert train_options({"minutes": 1.0, "architecture": "tf_efficientnet_lite0"}) == {
        "model": "tf_efficientnet_lite0", "pretrained": True, "minutes": 1.0}  # a named model uses its local weights

    assert describe_model(tmp_path / "none") is None
    _fake_run(tmp_path / "a", name="tf_efficientnet_lite0", pretrained=True, why="model: tf_efficientnet_lite0, fine-tuned")
    assert describe_model(tmp_path / "a") == {
        "model": "tf_efficientnet_lite0", "pretrained": True, "weights": str(weights),
        "choice": "backbone tf_efficientnet_lite0 from local weights", "reason": "model: tf_efficientnet_lite0, fine-tuned"}
    _fake_run(tmp_path / "b", name="pixlearn_smallcnn", pretrained=False, why="model: pixlearn_smallcnn from scratch (...)")
    assert describe_model(tmp_path / "b")["choice"] == "no local weights: small CNN pixlearn_smallcnn"
    _fake_run(tmp_path / "c", name="pixlearn_smallcnn_tiny", pretrained=False, why=None)
    assert describe_model(tmp_path / "c") == {
        "model": "pixlearn_smallcnn_tiny", "pretrained": False, "weights": None,
        "choice": "pixlearn_smallcnn_tiny from scratch (asked for by name)", "reason": "pixlearn_smallcnn_tiny, trained from scratch"}


def test_the_worker_passes_the_budget_and_no_model_to_train_classifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake train_classifier records what the worker asks for (the job's minutes; with 'auto' no model, so the
    task picks; only the advanced options the job set) and writes the run folder's start as the task would: the
    worker's progress file then names the task's choice once training starts."""
    from types import SimpleNamespace

    import pixlearn.tasks.classify.train as classify_train
    from pixlearn.engine.runs import write_json
    from pixlearn.io import write_image
    from pixlearn.serve.train_worker import run_job

    rng = np.random.default_rng(0)
    for c in ("red", "blue"):
        for i in range(3):
            write_image(tmp_path / "data" / c / f"{i}.png", colour_image(c, rng, size=8))
    calls: list[tuple[Any, dict[str, Any]]] = []
    seen: list[dict[str, Any]] = []

    def fake_train(data: Any = None, **kwargs: Any) -> Any:
        calls.append((data, kwargs))
        name = kwargs.get("model", "pixlearn_smallcnn")
        _fake_run(Path(kwargs["out"]), name=name, pretrained=False, why=None if "model" in kwargs else "model: picked")
        progress = kwargs["callbacks"][0]
        progress.on_train_start(SimpleNamespace(max_epochs=10000, current_epoch=0), None)
        seen.append(json.loads(progress.path.read_text()))
        return SimpleNamespace(run_dir=Path(kwargs["out"]), epochs_run=2, metrics={"accuracy": 0.75, "split": "holdout", "n": 4})

    monkeypatch.setattr(classify_train, "train_classifier", fake_train)
    for options, expected in (
        ({"minutes": 3.0, "architecture": "auto", "epochs": None, "img_size": None, "batch": None, "lr": None},
         {"minutes": 3.0}),
        ({"minutes": 0.5, "architecture": "pixlearn_smallcnn_tiny", "epochs": 4, "img_size": 16, "batch": 8, "lr": 0.01},
         {"model": "pixlearn_smallcnn_tiny", "minutes": 0.5, "epochs": 4, "img_size": 16, "batch": 8, "lr": 0.01}),
    ):
        job = tmp_path / f"job-{options['architecture']}"
        job.mkdir()
        write_json(job / "job.json", {"data": str(tmp_path / "data"), "run_dir": str(job / "run"), "options": options})
        result = run_job(job)
        assert result["status"] == "succeeded", result
        data, kwargs = calls[-1]
        assert data == str(tmp_path / "data")
        assert {k: v for k, v in kwargs.items() if k not in ("out", "workers", "progress", "callbacks")} == expected
        assert kwargs["callbacks"][0].budget_s == options["minutes"] * 60
        assert (result["accuracy"], result["split"], result["n"]) == (0.75, "holdout", 4)
        assert seen[-1]["stage"] == "training" and seen[-1]["budget_s"] == options["minutes"] * 60
    assert seen[0]["backbone"]["choice"] == "no local weights: small CNN pixlearn_smallcnn"
    assert seen[0]["backbone"]["reason"] == "model: picked"
    assert seen[1]["backbone"]["choice"] == "pixlearn_smallcnn_tiny from scratch (asked for by name)"


def test_progress_under_a_budget_follows_the_clock(tmp_path: Path) -> None:
    """With a fake clock: 10 000 planned epochs (the budget's cap) barely move the epoch share; the clock's does."""
    from types import SimpleNamespace

    from pixlearn.serve.train_worker import ProgressWriter

    now = [100.0]
    writer = ProgressWriter(tmp_path / "progress.json", every_s=0.0, minutes=2.0, clock=lambda: now[0])
    trainer = SimpleNamespace(max_epochs=10000, current_epoch=0, num_training_batches=4, callback_metrics={})
    writer.on_train_start(trainer, None)
    assert (writer.state["fraction"], writer.state["budget_s"], writer.state["elapsed_s"]) == (0.0, 120.0, 0.0)
    now[0] += 30.0
    writer.on_train_batch_end(trainer, None, {"loss": 0.5}, None, 1)
    assert (writer.state["fraction"], writer.state["elapsed_s"]) == (0.25, 30.0)
    now[0] += 60.0
    trainer.current_epoch = 3
    writer.on_train_epoch_end(trainer, None)
    assert writer.state["fraction"] == 0.75 and writer.state["epoch"] == 4
    now[0] += 600.0  # past the budget (the run stops at its next step): never above 1
    writer.on_train_epoch_start(trainer, None)
    assert writer.state["fraction"] == 1.0

    epochs_only = ProgressWriter(tmp_path / "p2.json", every_s=0.0, clock=lambda: now[0])  # a job stored before budgets
    trainer = SimpleNamespace(max_epochs=4, current_epoch=0, num_training_batches=4, callback_metrics={})
    epochs_only.on_train_start(trainer, None)
    now[0] += 10_000.0
    trainer.current_epoch = 1
    epochs_only.on_train_epoch_end(trainer, None)
    assert epochs_only.state["fraction"] == 0.5 and epochs_only.state["elapsed_s"] is None


@pytest.mark.slow
def test_a_job_fine_tunes_the_backbone_whose_weights_are_local(client, settings, no_local_weights: Path) -> None:
    """A real worker with (random-valued) tf_efficientnet_lite0 weights in PIXLEARN_WEIGHTS: the classification
    task picks that backbone, and the job says so -- from local weights, the folder named, not its path -- and
    reports its held-out score with the split and n."""
    _lite0_weights(no_local_weights)
    r = submit(client, tiny_zip(), filename="colours.zip", minutes="0.5", img_size="32")
    assert r.status_code == 202, r.text
    done = wait_for(client, r.json()["id"], lambda j: j["status"] == "succeeded", "succeeded")
    backbone = done["backbone"]
    assert (backbone["model"], backbone["pretrained"], backbone["choice"]) == (
        "tf_efficientnet_lite0", True, "backbone tf_efficientnet_lite0 from local weights")
    assert backbone["weights"] == "<PIXLEARN_WEIGHTS>/tf_efficientnet_lite0.in1k.safetensors"
    assert "tf_efficientnet_lite0.in1k.safetensors found in <PIXLEARN_WEIGHTS>" in backbone["reason"], backbone
    assert str(no_local_weights) not in client.get(f"/v1/trainings/{done['id']}").text
    assert done["minutes"] == 0.5 and done["final"]["split"] == "holdout" and done["final"]["n"] >= 1
    assert 0.0 <= done["final"]["accuracy"] <= 1.0
    model = client.get(f"/v1/models/{done['model']}").json()
    assert model["architecture"] == "tf_efficientnet_lite0"


def test_a_resumed_job_continues_its_clock_and_keeps_to_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job stopped after 60 s of its 3-minute budget and resumed: its progress continues from 60 s (not 0), and the
    run is resumed with the 2 minutes left; a second resumption counts both earlier attempts. Fake clock and trainer."""
    from types import SimpleNamespace

    import pixlearn.tasks.classify.train as classify_train
    from pixlearn.engine.runs import write_json
    from pixlearn.serve.train_worker import run_job

    now = [1000.0]
    calls: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []

    def fake_train(data: Any = None, **kwargs: Any) -> Any:
        calls.append(kwargs)
        progress = kwargs["callbacks"][0]
        seen.append(json.loads(progress.path.read_text()))  # before training starts
        trainer = SimpleNamespace(max_epochs=10000, current_epoch=1, num_training_batches=4, callback_metrics={})
        progress.on_train_start(trainer, None)
        seen.append(dict(progress.state))
        now[0] += 30.0  # 30 s of training in this attempt
        progress.on_train_batch_end(trainer, None, {"loss": 0.5}, None, 1)
        seen.append(dict(progress.state))
        return SimpleNamespace(run_dir=Path(kwargs["resume"]), epochs_run=2, metrics={"accuracy": 0.75, "split": "holdout", "n": 4})

    monkeypatch.setattr(classify_train, "train_classifier", fake_train)
    job = tmp_path / "job"
    (job / "run" / "checkpoints").mkdir(parents=True)
    write_json(job / "job.json", {"data": str(tmp_path / "data"), "run_dir": str(job / "run"), "resume": True,
                                  "options": {"minutes": 3.0, "architecture": "auto"}})
    write_json(job / "progress.json", {"stage": "training", "epoch": 1, "fraction": 0.3333, "budget_s": 180.0, "elapsed_s": 60.0})

    assert run_job(job, clock=lambda: now[0])["status"] == "succeeded"
    assert calls[-1]["resume"] == job / "run" and calls[-1]["minutes"] == 2.0  # what is left of the job's budget
    before, started, later = seen[-3:]
    assert (before["elapsed_s"], before["fraction"]) == (60.0, 0.3333)  # the progress shown while it loads
    assert (started["elapsed_s"], started["fraction"]) == (60.0, 0.3333)  # not back to 0
    assert (later["elapsed_s"], later["fraction"]) == (90.0, 0.5)

    progress = json.loads((job / "progress.json").read_text())
    write_json(job / "progress.json", {**progress, "stage": "training"})  # stopped again, at 90 s
    assert run_job(job, clock=lambda: now[0])["status"] == "succeeded"
    assert calls[-1]["minutes"] == 1.5 and (seen[-1]["elapsed_s"], seen[-1]["fraction"]) == (120.0, 0.6667)


def test_a_job_waiting_to_resume_keeps_its_progress(tmp_path: Path) -> None:
    """A job a restart re-queued to resume shows the progress its earlier attempts made, not 0."""
    from pixlearn.engine.runs import write_json

    job_dir, run_dir = tmp_path / "job", tmp_path / "run"
    job_dir.mkdir()
    write_json(job_dir / "progress.json", {"stage": "training", "epoch": 1, "fraction": 0.3333, "budget_s": 180.0, "elapsed_s": 60.0})
    row = {"id": "j1", "name": "n", "status": "queued", "resume": 1, "attempts": 1, "options": {"minutes": 3.0, "architecture": "auto"},
           "job_dir": str(job_dir), "run_dir": str(run_dir), "history": None, "error": None, "model": None, "created": "c",
           "started": "s", "finished": None, "dataset": {}, "final": None}
    manager = object.__new__(JobManager)  # only the view of a row: no database, no dispatcher
    manager.storage = tmp_path
    waiting = manager._job(row)
    assert (waiting["status"], waiting["progress"], waiting["elapsed_s"]) == ("queued", 0.3333, 60.0)
    fresh = manager._job({**row, "resume": 0, "attempts": 0})  # a job that never ran
    assert (fresh["progress"], fresh["elapsed_s"]) == (0.0, None)
