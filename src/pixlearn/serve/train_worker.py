"""The process that runs one training job: ``python -m pixlearn.serve.train_worker JOB_DIR``.

The :class:`~pixlearn.serve.trainings.JobManager` starts it in a new session (so a cancel can
signal the whole process group) with ``JOB_DIR/job.json`` saying what to do::

    {"data": "<dataset folder>", "run_dir": "<run folder>", "resume": false,
     "options": {"architecture", "epochs", "img_size", "batch", "lr"}}

It trains with :func:`pixlearn.train.train_classifier` (``resume=run_dir`` continues from the run's
``checkpoints/last.ckpt``), writes ``JOB_DIR/progress.json`` atomically as it goes (epoch, batch
fraction, latest metrics) and ends by writing ``JOB_DIR/result.json``: ``{"status": "succeeded"}``,
or ``{"status": "failed", "error": "<readable message>"}`` with exit code 1 (the message is also
its last line on stderr). SIGTERM ends it at once (exit code 143).

``PIXLEARN_TRAIN_HOLD_AFTER_EPOCH=N`` (a debugging aid for restart and cancel drills) makes the
worker wait, once N epochs are done and checkpointed, until it is signalled.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn.engine.runs import write_json

__all__ = ["ProgressWriter", "progress_callback", "run_job", "main"]

HOLD_ENV = "PIXLEARN_TRAIN_HOLD_AFTER_EPOCH"


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    return None if v != v else round(v, 6)


class ProgressWriter:
    """Writes ``progress.json`` atomically: stage, epoch (1-based), batch fraction, overall fraction, latest metrics.

    Batch updates are written at most every ``every_s`` seconds; epoch ends and stage changes always.
    The hooks are Lightning's; :func:`progress_callback` makes the Lightning callback (lightning is
    imported only then, so a job that fails its data check ends at once).

    Examples
    --------
    >>> import tempfile
    >>> w = ProgressWriter(Path(tempfile.mkdtemp()) / "progress.json")
    >>> w.write(stage="starting")["stage"]
    'starting'
    """

    def __init__(self, path: str | os.PathLike[str], *, every_s: float = 0.5, hold_after_epoch: int | None = None) -> None:
        self.path = Path(path)
        self.every_s = float(every_s)
        self.hold_after_epoch = hold_after_epoch
        self.state: dict[str, Any] = {"stage": "starting", "epoch": 0, "epochs": None, "batch_fraction": 0.0,
                                      "fraction": 0.0, "latest": {}}
        self._last = 0.0

    def write(self, **changes: Any) -> dict[str, Any]:
        self.state.update(changes)
        self.state["updated"] = time.time()
        write_json(self.path, self.state)
        self._last = time.monotonic()
        return self.state

    def _fraction(self, done: float, trainer: Any) -> float:
        total = trainer.max_epochs or 1
        return round(min(max(done / total, 0.0), 1.0), 4)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.write(stage="training", epochs=trainer.max_epochs, epoch=trainer.current_epoch,
                   fraction=self._fraction(trainer.current_epoch, trainer))

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.hold_after_epoch is not None and trainer.current_epoch >= self.hold_after_epoch:
            self.write(stage="held", epoch=trainer.current_epoch)
            while True:  # until SIGTERM / SIGKILL
                time.sleep(0.2)
        self.write(stage="training", epoch=trainer.current_epoch + 1, batch_fraction=0.0,
                   fraction=self._fraction(trainer.current_epoch, trainer))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if time.monotonic() - self._last < self.every_s:
            return
        n = trainer.num_training_batches
        frac = (batch_idx + 1) / n if isinstance(n, int) and n > 0 else 0.0
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        latest = dict(self.state.get("latest") or {})
        if _float(loss) is not None:
            latest["batch_loss"] = _float(loss)
        self.write(batch_fraction=round(frac, 4), fraction=self._fraction(trainer.current_epoch + frac, trainer), latest=latest)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        m = trainer.callback_metrics
        latest = {k: _float(m.get(k)) for k in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1") if k in m}
        self.write(epoch=trainer.current_epoch + 1, batch_fraction=1.0,
                   fraction=self._fraction(trainer.current_epoch + 1, trainer), latest=latest)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.write(stage="evaluating")


def progress_callback(path: str | os.PathLike[str], *, every_s: float = 0.5, hold_after_epoch: int | None = None) -> Any:
    """A :class:`ProgressWriter` that is also a ``lightning.pytorch.Callback``."""
    import lightning.pytorch as L

    cls = type("ProgressCallback", (ProgressWriter, L.Callback), {"__module__": __name__})
    return cls(path, every_s=every_s, hold_after_epoch=hold_after_epoch)


def _hold_from_env() -> int | None:
    raw = os.environ.get(HOLD_ENV, "").strip()
    return int(raw) if raw.isdigit() else None


def run_job(job_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Run the job described by ``job_dir/job.json``; returns (and writes) ``result.json``'s content.

    Never raises for a training failure: the error becomes ``{"status": "failed", "error": ...}``.

    Examples
    --------
    >>> import tempfile
    >>> job = Path(tempfile.mkdtemp())
    >>> _ = write_json(job / "job.json", {"data": str(job / "none"), "run_dir": str(job / "run"), "options": {}})
    >>> run_job(job)["error"]  # doctest: +ELLIPSIS
    '...: no such folder or file; --data must be a folder with one sub-folder of images per class...'
    """
    job_dir = Path(job_dir)
    try:
        spec = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
        result = _train(job_dir, spec)
    except PixlearnError as exc:  # plain_message: without a fix naming a Python parameter or a CLI option
        result = {"status": "failed", "error": getattr(exc, "plain_message", None) or str(exc)}
    except Exception as exc:  # a bug or a broken environment: keep the traceback in the log, a sentence in the job
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    write_json(job_dir / "result.json", result)
    return result


def _train(job_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    run_dir = Path(spec["run_dir"])
    ProgressWriter(job_dir / "progress.json").write(stage="loading")
    if not spec.get("resume"):  # the data first: a job that cannot train fails before loading the engine
        from pixlearn.tasks.registry import task as get_task

        read_classify_dataset = get_task("classify").load("read_dataset")

        # Readers refuse paths outside the upload by default; a job never lifts that (no
        # outside_root_allowed here) and fails rather than train on what is left.
        index = read_classify_dataset(spec["data"])
        refused = (index.meta.get("refused") or {}).get("outside_root")
        if refused:
            raise ConfigError(
                f"{refused} path(s) in the uploaded dataset lead outside it (e.g. "
                f"{index.meta['refused']['examples'][0]}); use paths relative to the dataset folder"
            )
    from pixlearn.tasks.registry import task as get_task

    train_classifier = get_task("classify").load("train")

    progress = progress_callback(job_dir / "progress.json", hold_after_epoch=_hold_from_env())
    progress.write(stage="starting")
    if spec.get("resume"):
        res = train_classifier(resume=run_dir, workers=0, progress=False, callbacks=[progress])
    else:
        opts = dict(spec.get("options") or {})
        kwargs = {"model": opts.get("architecture", "pixlearn_smallcnn_tiny"), "epochs": opts.get("epochs"),
                  "img_size": opts.get("img_size"), "batch": opts.get("batch"), "lr": opts.get("lr")}
        res = train_classifier(spec["data"], out=run_dir, workers=0, progress=False, callbacks=[progress],
                               **{k: v for k, v in kwargs.items() if v is not None})
    progress.write(stage="done", fraction=1.0)
    metrics = res.metrics or {}
    return {"status": "succeeded", "run_dir": str(res.run_dir), "epochs_run": res.epochs_run,
            "accuracy": metrics.get("accuracy"), "split": metrics.get("split")}


def _terminate(signum: int, _frame: Any) -> None:
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m pixlearn.serve.train_worker JOB_DIR``; exit code 0 on success, 1 on failure."""
    args = sys.argv[1:] if argv is None else argv
    # A cancel is SIGTERM to the process group: end at once (Lightning would only note it and stop at a later
    # batch; every file is written atomically, so nothing is left half-written).
    signal.signal(signal.SIGTERM, _terminate)
    if len(args) != 1:
        print("usage: python -m pixlearn.serve.train_worker JOB_DIR", file=sys.stderr)
        return 2
    result = run_job(args[0])
    if result["status"] != "succeeded":
        print(f"error: {result['error']}", file=sys.stderr, flush=True)
        return 1
    print(f"succeeded: {result.get('run_dir')}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is written; skip the interpreter's slow teardown of torch and Lightning
