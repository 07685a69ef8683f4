"""Service fixtures any serve test may use.

- ``settings``: ServeSettings on a fresh storage folder (no API keys, no models, no env leaking in).
- ``client``: a fastapi TestClient on ``create_app(settings)``, started (lifespan) and stopped.
- ``trained_run``: a tiny classification run folder (3 colour classes, smallcnn_tiny, 16 px, 1 epoch), made once.
- ``start_server``: a factory, ``start_server(*cli_args, env={...}) -> base URL``, running ``pixlearn serve`` on a
  free loopback port in its own process (no ``PIXLEARN_*`` variable of the caller's, plus ``env``; stopped after the
  test); ``live_server``: one such server, no models.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.serve.pg import postgres_db, postgres_url  # noqa: F401 - fixtures for the --db postgresql tests

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def colour_image(name: str, rng: np.random.Generator, size: int = 20) -> np.ndarray:
    """A noisy square of one of :data:`COLOURS` (what ``trained_run`` learns to tell apart)."""
    return np.clip(rng.normal(COLOURS[name], 30, (size, size, 3)), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    from pixlearn.io import encode_image

    return encode_image(image, "png")


@pytest.fixture
def settings(tmp_path: Path):
    from pixlearn.serve.settings import ServeSettings

    return ServeSettings(storage=tmp_path / "storage", db=None, api_keys=[], models=[], allowed_roots=[])


@pytest.fixture
def client(settings) -> Iterator:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class (red/green/blue) run folder written by train_classifier: smallcnn_tiny, 16 px, 1 epoch."""
    import torch

    from pixlearn.io import write_image
    from pixlearn.train import train_classifier

    root = tmp_path_factory.mktemp("serve_run")
    rng = np.random.default_rng(0)
    for name in COLOURS:
        for i in range(8):
            write_image(root / "data" / name / f"{i}.png", colour_image(name, rng))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_classifier(root / "data", model="pixlearn_smallcnn_tiny", epochs=1, img_size=16, batch=8, workers=0,
                         out=root / "colours", progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "colours"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``pixlearn serve`` in a child process, its output in a log file."""

    def __init__(self, storage: Path, args: tuple[str, ...], env: dict[str, str] | None = None) -> None:
        self.storage = storage
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = storage.parent / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PIXLEARN_")}, **(env or {})}
        cmd = [sys.executable, "-m", "pixlearn.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--storage", str(storage), "--log-level", "warning", *args]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 90.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pixlearn serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).json().get("ready"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"pixlearn serve did not answer /v1/health within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_bytes()[-4000:].decode(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    servers: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> str:
        srv = ServerProcess(tmp_path_factory.mktemp("live") / "storage", tuple(args), env)
        servers.append(srv)
        srv.wait_ready()
        return srv.url

    start.servers = servers  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture
def live_server(start_server: Callable[..., str]) -> str:
    """The base URL (http://127.0.0.1:PORT) of a real ``pixlearn serve`` with no models and no keys."""
    return start_server()
