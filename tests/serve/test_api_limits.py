"""API keys (401), body limit (413), per-request timeout (504) and the concurrency limit (429) with health open."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

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


SLOW = "/v1/ops/tv?max_iter=1000&eps=1e-12"  # total-variation denoising that never converges: a second or more


@pytest.fixture
def noise_png() -> bytes:
    return png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))


def test_a_request_over_the_timeout_is_504(settings, noise_png) -> None:
    with _app(settings, timeout_s=0.3) as c:
        t = time.perf_counter()
        r = c.post(SLOW, files={"file": ("n.png", noise_png)})
        elapsed = time.perf_counter() - t
        assert r.status_code == 504 and "--timeout" in r.json()["error"]["message"]
        assert elapsed < 2.5  # answered at the deadline, not when the abandoned work finished
        assert c.get("/v1/ops").status_code == 200


def test_over_the_concurrency_limit_is_429_while_health_answers(settings, noise_png) -> None:
    with _app(settings, max_concurrency=1) as c:
        slow: dict = {}

        def post_slow() -> None:  # until it gets the slot (a quick request below may hold it for a moment)
            while (r := c.post(SLOW, files={"file": ("n.png", noise_png)})).status_code == 429:
                time.sleep(0.01)
            slow["r"] = r

        worker = threading.Thread(target=post_slow)
        worker.start()
        refused = None
        health: list[int] = []
        while worker.is_alive() and refused is None:
            r = c.get("/v1/models")
            if r.status_code == 429:
                refused = r
                health = [c.get(p).status_code for p in ("/v2/health/live", "/v2/health/ready", "/v1/health")]
            time.sleep(0.05)
        worker.join()
        assert refused is not None, "the slow request finished before a second one was refused"
        assert refused.headers["retry-after"] == "1" and "--concurrency" in refused.json()["error"]["message"]
        assert health == [200, 200, 200]
        assert slow["r"].status_code == 200
        assert c.get("/v1/models").status_code == 200  # the slot is free again
