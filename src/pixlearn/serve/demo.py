"""``pixlearn serve --demo``: give a fresh installation a model to try, trained in the background.

At start-up, when no model named ``digits`` is registered, a separate process writes pixlearn's
bundled handwritten digits (scikit-learn's 8x8 digits, no network), trains the tiny CNN on them
for a few epochs and the model is registered as ``digits`` (source "training", files under
``<storage>/models/digits``). The service answers requests meanwhile; the model appears in
``/v1/models`` when it is ready (typically under a minute or two on two CPU cores).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import shutil
import threading
from pathlib import Path
from typing import Any

from pixlearn.serve.registry import ModelRegistry
from pixlearn.serve.settings import ServeSettings

__all__ = ["DEMO_MODEL", "DEMO_OPTIONS", "DemoTrainer", "train_demo"]

log = logging.getLogger("pixlearn.serve")

#: The registered name of the demo model.
DEMO_MODEL = "digits"
#: How the demo model is trained: small and quick, not state of the art.
DEMO_OPTIONS: dict[str, Any] = {"model": "pixlearn_smallcnn_tiny", "epochs": 6, "img_size": 16, "batch": 32,
                                "lr": 0.01, "workers": 0, "seed": 0}
DEMO_IMAGES = 500


def train_demo(data_dir: str, out_dir: str) -> None:
    """Write the digits sample into ``data_dir`` and train the demo classifier into ``out_dir`` (a child process)."""
    import torch

    from pixlearn.data.samples import write_sample
    from pixlearn.tasks.registry import task as get_task

    train_classifier = get_task("classify").load("train")

    torch.set_num_threads(1)  # leave the other cores to the requests
    write_sample("digits", data_dir, n=DEMO_IMAGES, seed=0)
    train_classifier(data_dir, out=out_dir, progress=False, **DEMO_OPTIONS)


class DemoTrainer:
    """Trains and registers the demo model in the background; ``stop()`` ends the training process."""

    def __init__(self, settings: ServeSettings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.status = "idle"
        self.error: str | None = None
        self._proc: Any = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pixlearn-demo", daemon=True)

    def start(self) -> None:
        if self.registry.get_or_none(DEMO_MODEL) is not None:
            self.status = "ready"
            return
        self.status = "training"
        self._thread.start()

    def _run(self) -> None:
        out = self.settings.models_dir / DEMO_MODEL
        data = self.settings.storage / "demo" / "digits"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        log.info("demo: training the %r model in the background (%s)", DEMO_MODEL, out)
        ctx = mp.get_context("spawn")
        self._proc = ctx.Process(target=train_demo, args=(str(data), str(out)), name="pixlearn-demo-train", daemon=True)
        self._proc.start()
        self._proc.join()
        if self._stopping.is_set():
            self.status = "stopped"
            return
        if self._proc.exitcode != 0:
            self.status, self.error = "failed", f"the demo training process exited with code {self._proc.exitcode}"
            log.warning("demo: %s", self.error)
            return
        try:
            self.registry.register_run(out, name=DEMO_MODEL, source="training")
            self.registry.load(DEMO_MODEL)
        except Exception as exc:  # a failed demo must never take the service down
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("demo: registering the model failed: %s", self.error)
            return
        shutil.rmtree(data, ignore_errors=True)
        self.status = "ready"
        log.info("demo: model %r is ready", DEMO_MODEL)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(timeout)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background training (tests, scripts)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def path(self) -> Path:
        return self.settings.models_dir / DEMO_MODEL
