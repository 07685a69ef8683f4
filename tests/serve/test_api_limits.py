"""API keys (401), body limits (413, 408), per-request timeout (504), concurrency (429) with health open, and
training submission that is never answered 504 once its job exists (plus its Idempotency-Key).

The slow side of every deadline and concurrency test is the test-only ``test_block`` op (tests/serve/blocking.py),
which blocks until the test releases it, and the deadline passes when the test's fake clock says so: nothing
depends on how fast this machine is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import pytest

from pixlearn.serve.limits import TimeoutMiddleware, current_deadline
from tests.serve.blocking import Gate, gate, pid_alive  # noqa: F401 - gate is a fixture
from tests.serve.conftest import png_bytes

KEY = "test-key-0123456789"


def _app(settings, **update):
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    return TestClient(create_app(settings.model_copy(update=update)))


def test_every_route_needs_a_key_except_health_page_and_docs(settings) -> None:
    with _app(settings, api_keys=[KEY, "second-key-abcdef"]) as c:
        for method, path in [("GET", "/v1/models"), ("GET", "/v1/ops"), ("POST", "/v1/analyze"),
                             ("POST", "/v1/classify"), ("POST", "/v1/ops/canny"), ("GET", "/v1/trainings"),
                             ("GET", "/v2"), ("GET", "/v1/nothing")]:
            r = c.request(method, path)
            assert r.status_code == 401, (path, r.status_code)
            err = r.json()["error"]  # the /v2 routes keep the inference protocol's {"error": "<message>"}
            msg = err if path.startswith("/v2") else err["message"]
            assert msg.startswith("missing or invalid API key") and "X-API-Key" in msg
        r = c.get("/v1/models", headers={"X-API-Key": "wrong-key"})
        assert r.status_code == 401 and "not one of the server's keys" in r.json()["error"]["message"]
        assert c.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": "Bearer second-key-abcdef"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
        for path in ("/v1/health", "/v2/health/live", "/v2/health/ready", "/", "/docs", "/openapi.json"):
            assert c.get(path).status_code == 200, path
        assert c.get("/static/index.html").status_code == 200


def test_body_over_the_limit_is_413(settings) -> None:
    img = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))  # ~12 kB
    with _app(settings, max_body_mb=0.005) as c:  # 5.2 kB
        r = c.post("/v1/analyze", files={"file": ("big.png", img)})
        assert r.status_code == 413
        assert "over the limit of 0.005 MB" in r.json()["error"]["message"] and "--max-body-mb" in r.json()["error"]["message"]
        small = png_bytes(np.zeros((8, 8, 3), np.uint8))
        assert c.post("/v1/analyze", files={"file": ("small.png", small)}).status_code == 200


def test_a_streamed_body_past_the_limit_is_413() -> None:
    """A body without Content-Length (chunked) is counted as it arrives."""
    import anyio

    from pixlearn.serve.limits import BodyLimitMiddleware

    async def app(scope, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run(chunks: list[bytes]) -> list[dict]:
        sent: list[dict] = []
        queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return queue.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": "/v1/analyze", "method": "POST", "headers": []}
        await BodyLimitMiddleware(app, max_bytes=10)(scope, receive, send)
        return sent

    sent = anyio.run(run, [b"12345", b"67890", b"x"])
    assert sent[0]["status"] == 413 and b"larger than the limit" in sent[1]["body"]
    assert anyio.run(run, [b"12345", b"67890"])[0]["status"] == 200


@pytest.fixture
def noise_png() -> bytes:
    return png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def _pool(client):
    return client.app.state.pool


def _deadline_when(monkeypatch, condition: Callable[[], bool]) -> None:
    """A fake clock: a request's deadline passes as soon as ``condition()`` holds (checked every 5 ms)."""

    async def sleep(_seconds: float) -> None:
        while not condition():
            await anyio.sleep(0.005)

    monkeypatch.setattr(TimeoutMiddleware, "sleep", staticmethod(sleep))


def test_a_request_over_the_timeout_is_504_and_its_worker_process_is_gone(settings, noise_png, gate, monkeypatch) -> None:
    """The op blocks forever; the deadline passes once it runs: 504, its process killed, a fresh worker in its place."""
    _deadline_when(monkeypatch, lambda: bool(gate.started()))
    with _app(settings, timeout_s=60, workers=1) as c:
        before = _pool(c).pids
        r = c.post(gate.path, files={"file": ("n.png", noise_png)})
        assert r.status_code == 504 and "--timeout" in r.json()["error"]["message"]
        (pid,) = gate.started()
        assert pid in before and not pid_alive(pid)  # the work ended with the answer, not minutes later
        after = _pool(c).pids
        assert len(after) == 1 and pid not in after and _pool(c).killed == 1
        monkeypatch.undo()
        assert c.post("/v1/ops/grayscale", files={"file": ("n.png", noise_png)}).status_code == 200


def test_over_the_concurrency_limit_is_429_while_health_answers(settings, noise_png, gate) -> None:
    with _app(settings, max_concurrency=1, max_queue=0, workers=1) as c:
        slow: dict = {}
        worker = threading.Thread(target=lambda: slow.setdefault("r", c.post(gate.path, files={"file": ("n.png", noise_png)})))
        worker.start()
        gate.wait_started(1)  # the blocking request holds the only slot
        refused = c.get("/v1/models")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1" and "--concurrency" in refused.json()["error"]["message"]
        assert [c.get(p).status_code for p in ("/v2/health/live", "/v2/health/ready", "/v1/health")] == [200, 200, 200]
        gate.release()
        worker.join()
        assert slow["r"].status_code == 200
        assert c.get("/v1/models").status_code == 200  # the slot is free again


def test_health_answers_while_every_worker_is_busy_and_requests_queue(settings, noise_png, gate) -> None:
    with _app(settings, workers=2, max_concurrency=8) as c:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(
            c.post(gate.path, files={"file": ("n.png", noise_png)}).status_code)) for _ in range(4)]
        for t in threads:
            t.start()
        gate.wait_started(2)  # both workers blocked, two more requests wait for one
        assert _pool(c).busy == 2
        for _ in range(20):
            assert c.get("/v2/health/ready").status_code == 200 and c.get("/v1/health").status_code == 200
        gate.release()
        for t in threads:
            t.join()
        assert results == [200] * 4


def test_the_default_concurrency_follows_the_workers(settings) -> None:
    assert settings.model_copy(update={"workers": 2}).concurrency == 16
    assert settings.model_copy(update={"workers": 8}).concurrency == 32
    assert settings.model_copy(update={"workers": 8, "max_concurrency": 3}).concurrency == 3


# ---------------------------------------------------------------- training submission and its deadline
def _zip() -> bytes:
    from tests.serve.test_trainings import tiny_zip

    return tiny_zip(n=2)


def _submit(c, data: bytes, **headers: str):
    return c.post("/v1/trainings", files={"archive": ("colours.zip", data, "application/zip")},
                  data={"epochs": "1", "img_size": "16", "batch": "8"}, headers=headers)


def test_a_training_stored_before_its_deadline_is_202_not_504(settings, monkeypatch) -> None:
    """The deadline passes right after the job was stored (while its answer is being made): 202, one job."""
    from pixlearn.serve import trainings

    stored = threading.Event()
    real_get = trainings.JobManager.get

    def slow_get(self, job_id):
        deadline = current_deadline.get()
        stored.set()
        while deadline is not None and not deadline.passed:  # hold the answer until the deadline has passed
            threading.Event().wait(0.005)
        return real_get(self, job_id)

    monkeypatch.setattr(trainings.JobManager, "get", slow_get)
    _deadline_when(monkeypatch, stored.is_set)
    with _app(settings, training_workers=0, timeout_s=60) as c:
        r = _submit(c, _zip())
        assert r.status_code == 202, r.text
        monkeypatch.undo()  # the real clock and JobManager.get again
        assert [j["id"] for j in c.get("/v1/trainings").json()["trainings"]] == [r.json()["id"]]


def test_a_training_whose_deadline_passes_before_it_is_stored_is_504_and_leaves_nothing(settings, monkeypatch) -> None:
    from pixlearn.serve import trainings

    extracting = threading.Event()
    real_extract = trainings.extract_archive

    def slow_extract(*args, **kwargs):
        deadline = current_deadline.get()
        extracting.set()
        while deadline is not None and not deadline.passed:
            threading.Event().wait(0.005)
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(trainings, "extract_archive", slow_extract)
    _deadline_when(monkeypatch, extracting.is_set)
    with _app(settings, training_workers=0, timeout_s=60) as c:
        r = _submit(c, _zip())  # the test client returns once the request's thread has ended
        assert r.status_code == 504
        monkeypatch.undo()
        assert c.get("/v1/trainings").json()["trainings"] == []
        assert list((Path(settings.storage) / "trainings").iterdir()) == []


def test_an_idempotency_key_gives_one_job(settings) -> None:
    with _app(settings, training_workers=0) as c:
        data = _zip()
        first = _submit(c, data, **{"Idempotency-Key": "key-1"})
        assert first.status_code == 202, first.text
        again = _submit(c, data, **{"Idempotency-Key": "key-1"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert len(c.get("/v1/trainings").json()["trainings"]) == 1
        from tests.serve.test_trainings import tiny_zip

        other = _submit(c, tiny_zip(n=3), **{"Idempotency-Key": "key-1"})  # another archive, same key
        assert other.status_code == 422 and "different submission" in other.json()["error"]["message"]
        new = _submit(c, data, **{"Idempotency-Key": "key-2"})
        assert new.status_code == 202 and new.json()["id"] != first.json()["id"]
        assert _submit(c, data, **{"Idempotency-Key": "x" * 201}).status_code == 400
        assert len(c.get("/v1/trainings").json()["trainings"]) == 2
        assert c.delete(f"/v1/trainings/{first.json()['id']}").status_code == 200  # cancelled (queued)
        assert _submit(c, data, **{"Idempotency-Key": "key-1"}).json()["status"] == "cancelled"


def test_without_workers_cpu_work_runs_in_threads(settings, noise_png) -> None:
    with _app(settings, workers=0) as c:
        assert _pool(c) is None
        r = c.post("/v1/analyze", files={"file": ("n.png", noise_png)})
        assert r.status_code == 200 and r.json()["image"] == {"width": 64, "height": 64}
