"""Against a real ``pixlearn serve`` (uvicorn) process on loopback: HTTP end to end, keys, limits, shutdown."""

from __future__ import annotations

import socket

import httpx
import numpy as np

from tests.serve.conftest import colour_image, png_bytes

KEY = "live-test-key-0123456789"


def test_real_server_analyzes_classifies_and_enforces_keys_and_limits(start_server, trained_run) -> None:
    url = start_server("--model", str(trained_run), "--api-key", KEY, "--max-body-mb", "0.05", "--no-demo")
    key = {"X-API-Key": KEY}
    with httpx.Client(base_url=url, timeout=30) as http:
        health = http.get("/v1/health").json()
        assert health["status"] == "ok" and health["models"] == 1
        assert http.get("/").status_code == 200 and "<html" in http.get("/").text.lower()
        assert http.get("/v1/models").status_code == 401

        img = colour_image("red", np.random.default_rng(9))
        r = http.post("/v1/analyze", params={"features": "colors,quality,labels", "models": "colours"},
                      files={"file": ("red.png", png_bytes(img), "image/png")}, headers=key)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["image"] == {"width": 20, "height": 20} and body["colors"][0]["rgb"][0] > 150
        assert [e["label"] for e in body["models"]["colours"]][:1] in (["red"], ["green"], ["blue"])

        r = http.post("/v1/classify", files=[("files", ("a.png", png_bytes(img))), ("files", ("b.txt", b"text"))],
                      headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and "error" in r.json()["results"][1]

        r = http.post("/v1/ops/canny", files={"file": ("a.png", png_bytes(img))}, headers=key)
        assert r.status_code == 200 and r.content[:4] == b"\x89PNG"

        big = png_bytes(np.random.default_rng(0).integers(0, 255, (160, 160, 3), dtype=np.uint8))  # ~77 kB
        r = http.post("/v1/analyze", files={"file": ("big.png", big)}, headers=key)
        assert r.status_code == 413 and "--max-body-mb" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: the limit is enforced while the body streams in
            for _ in range(20):
                yield b"\0" * 8192

        r = http.post("/v1/analyze", content=chunks(), headers={**key, "Content-Type": "image/png"})
        assert r.status_code == 413 and "larger than the limit" in r.json()["error"]["message"]

        r = http.post("/v1/analyze", files={"file": ("x.jpg", b"")}, headers=key)
        assert r.status_code == 400 and "empty input" in r.json()["error"]["message"]

    server = start_server.servers[-1]
    # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal (exit status -15 on recent versions)
    assert server.stop() in (0, -15), server.log()
    storage = server.storage
    assert (storage / "pixlearn.db").is_file()
    assert not (storage / "pixlearn.db-wal").exists(), "the lifespan shutdown did not close the database"


def test_cli_refuses_a_bad_model_folder_before_listening(tmp_path, capsys) -> None:
    from pixlearn.cli import main

    (tmp_path / "empty").mkdir()
    code = main(["serve", "--storage", str(tmp_path / "s"), "--model", str(tmp_path / "empty"), "--port", "0"])
    assert code == 1
    assert "not a classification run folder" in capsys.readouterr().err
    code = main(["serve", "--storage", str(tmp_path / "s"), "--allow-root", str(tmp_path / "nope"), "--port", "0"])
    assert code == 2 and "--allow-root" in capsys.readouterr().err


def _stalled_upload(url: str, path: str = "/v1/analyze") -> socket.socket:
    """A connection that sends a request's headers and the first bytes of its body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=120)  # the timeout only ends a broken test
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                 .encode() + b"\x89PNG\r\n")
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_stalled_uploads_get_408_and_do_not_lock_out_other_clients(start_server) -> None:
    """Four connections send headers and then nothing: another client is served, and each stalled one gets a 408."""
    url = start_server("--no-demo", "--body-timeout", "2", "--workers", "1")
    stalled = [_stalled_upload(url) for _ in range(4)]
    try:
        img = png_bytes(colour_image("red", np.random.default_rng(1)))
        with httpx.Client(base_url=url, timeout=60) as http:
            r = http.post("/v1/analyze", files={"file": ("red.png", img, "image/png")})
            assert r.status_code == 200, r.text
        for sock in stalled:  # they never send the rest: the body timeout must answer them
            answer = _read_until_closed(sock)  # the server closes the connection after its 408
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"stalled: no data for 2 s" in answer and b"--body-timeout" in answer
            assert b"connection: close" in answer.lower()
    finally:
        for sock in stalled:
            sock.close()
