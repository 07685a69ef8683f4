"""The process that runs one training job: ``python -m pixlearn.serve.train_worker JOB_DIR``.

The :class:`~pixlearn.serve.trainings.JobManager` starts it in a new session (so a cancel can
signal the whole process group) with ``JOB_DIR/job.json`` saying what to do::

    {"data": "<dataset folder>", "run_dir": "<run folder>", "resume": false,
     "options": {"minutes", "architecture", "epochs", "img_size", "batch", "lr"}}

It trains with :func:`pixlearn.train.train_classifier` (``options.task="detect"``: with
:func:`pixlearn.tasks.detect.train.train_detector`) under the job's time budget (``minutes``;
``resume=run_dir`` continues from the run's ``checkpoints/last.ckpt``). With ``architecture="auto"``
it passes no model, so the classification task picks one the way ``pixlearn train classify --minutes N``
does (a pretrained backbone when its weights are in a local weights folder, else a small CNN) and
sizes the run to the budget; :func:`describe_model` reads the choice and why back from the run
folder into ``progress.json`` (``backbone``) when training starts. It writes ``JOB_DIR/progress.json`` atomically as it goes (epoch, batch fraction, overall fraction --
under a budget the clock's ``elapsed / budget`` --, latest metrics) and ends by writing
``JOB_DIR/result.json``: ``{"status": "succeeded"}``,
or ``{"status": "failed", "error": "<readable message>"}`` with exit code 1 (the message is also
its last line on stderr). SIGTERM ends it at once (exit code 143).

A resumed job (its worker was stopped, e.g. by a server restart) continues the job's clock: the seconds its earlier
attempts spent (``progress.json``'s ``elapsed_s``, see :func:`spent_seconds`) count in its progress, and the run is
resumed with what is left of the budget (:func:`resume_minutes`), so the job as a whole keeps to its ``minutes``.

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

__all__ = ["ProgressWriter", "progress_callback", "describe_model", "train_options", "spent_seconds", "resume_minutes", "run_job",
           "main"]

HOLD_ENV = "PIXLEARN_TRAIN_HOLD_AFTER_EPOCH"

#: The least budget a resumed job gets when its earlier attempts spent (nearly) all of it: a step, then the scoring.
RESUME_MIN_MINUTES = 0.1


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
    imported only then, so a job that fails its data check ends at once). ``spent_s`` is the budget's seconds
    that earlier attempts of the job spent (a resumed job): the clock continues from there (``elapsed_s`` and
    the fraction count them), it does not restart at 0.

    Examples
    --------
    >>> import tempfile
    >>> w = ProgressWriter(Path(tempfile.mkdtemp()) / "progress.json")
    >>> w.write(stage="starting")["stage"]
    'starting'
    """

    def __init__(self, path: str | os.PathLike[str], *, every_s: float = 0.5, hold_after_epoch: int | None = None,
                 minutes: float | None = None, clock: Any = None, run_dir: str | os.PathLike[str] | None = None,
                 spent_s: float = 0.0) -> None:
        self.path = Path(path)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.every_s = float(every_s)
        self.hold_after_epoch = hold_after_epoch
        self.budget_s = float(minutes) * 60.0 if minutes else None
        self.spent_s = max(float(spent_s or 0.0), 0.0)
        self._clock = clock or time.monotonic
        self._t0: float | None = None
        spent = round(self.spent_s, 1) if self.budget_s and self.spent_s else None
        start = round(min(self.spent_s / self.budget_s, 1.0), 4) if spent is not None else 0.0  # type: ignore[operator]
        self.state: dict[str, Any] = {"stage": "starting", "epoch": 0, "epochs": None, "batch_fraction": 0.0,
                                      "fraction": start, "latest": {}, "budget_s": self.budget_s, "elapsed_s": spent}
        self._last = 0.0

    def write(self, **changes: Any) -> dict[str, Any]:
        self.state.update(changes)
        self.state["updated"] = time.time()
        write_json(self.path, self.state)
        self._last = self._clock()
        return self.state

    def _fraction(self, done: float, trainer: Any) -> float:
        """Share of the work done: epochs done over epochs, or under a budget the clock's share when larger."""
        total = trainer.max_epochs or 1
        frac = done / total
        if self.budget_s and self._t0 is not None:
            elapsed = self.spent_s + self._clock() - self._t0
            self.state["elapsed_s"] = round(elapsed, 1)
            frac = max(frac, elapsed / self.budget_s)
        return round(min(max(frac, 0.0), 1.0), 4)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._t0 is None:
            self._t0 = self._clock()
        if self.run_dir is not None and not self.state.get("backbone"):  # the run folder now says what the task chose
            self.state["backbone"] = chosen = describe_model(self.run_dir)
            if chosen:
                print(f"model: {chosen['choice']} ({chosen['reason']})", file=sys.stderr, flush=True)
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
        if self._clock() - self._last < self.every_s:
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
        latest = {k: _float(m.get(k)) for k in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "val_map50", "val_map") if k in m}
        self.write(epoch=trainer.current_epoch + 1, batch_fraction=1.0,
                   fraction=self._fraction(trainer.current_epoch + 1, trainer), latest=latest)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.write(stage="evaluating")


def progress_callback(path: str | os.PathLike[str], *, every_s: float = 0.5, hold_after_epoch: int | None = None,
                      minutes: float | None = None, run_dir: str | os.PathLike[str] | None = None, spent_s: float = 0.0,
                      clock: Any = None) -> Any:
    """A :class:`ProgressWriter` that is also a ``lightning.pytorch.Callback``."""
    import lightning.pytorch as L

    cls = type("ProgressCallback", (ProgressWriter, L.Callback), {"__module__": __name__})
    return cls(path, every_s=every_s, hold_after_epoch=hold_after_epoch, minutes=minutes, run_dir=run_dir, spent_s=spent_s, clock=clock)


def spent_seconds(job_dir: str | os.PathLike[str]) -> float:
    """The budget's seconds a job's earlier attempts spent training: ``progress.json``'s ``elapsed_s`` (0 without one).

    Examples
    --------
    >>> import tempfile
    >>> job = Path(tempfile.mkdtemp())
    >>> spent_seconds(job)
    0.0
    >>> _ = write_json(job / "progress.json", {"stage": "training", "elapsed_s": 42.5})
    >>> spent_seconds(job)
    42.5
    """
    value = _float((_read_json_file(Path(job_dir) / "progress.json") or {}).get("elapsed_s"))
    return max(value, 0.0) if value is not None else 0.0


def resume_minutes(minutes: float | None, spent_s: float) -> float | None:
    """The budget a resumed job's run gets: what is left of the job's ``minutes`` after ``spent_s`` seconds, at least
    :data:`RESUME_MIN_MINUTES` (None: a job without a budget).

    >>> resume_minutes(3.0, 60.0), resume_minutes(3.0, 500.0), resume_minutes(None, 10.0)
    (2.0, 0.1, None)
    """
    if not minutes:
        return None
    return round(max(float(minutes) - spent_s / 60.0, RESUME_MIN_MINUTES), 4)


def _hold_from_env() -> int | None:
    raw = os.environ.get(HOLD_ENV, "").strip()
    return int(raw) if raw.isdigit() else None


def run_job(job_dir: str | os.PathLike[str], *, clock: Any = None) -> dict[str, Any]:
    """Run the job described by ``job_dir/job.json``; returns (and writes) ``result.json``'s content.

    Never raises for a training failure: the error becomes ``{"status": "failed", "error": ...}``. ``clock`` (seconds
    as a float; default :func:`time.monotonic`) is the progress clock's.

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
        result = _train(job_dir, spec, clock=clock)
    except PixlearnError as exc:  # plain_message: without a fix naming a Python parameter or a CLI option
        result = {"status": "failed", "error": getattr(exc, "plain_message", None) or str(exc)}
    except Exception as exc:  # a bug or a broken environment: keep the traceback in the log, a sentence in the job
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    write_json(job_dir / "result.json", result)
    return result


def _local_weights(name: str) -> Path | None:
    """The local file ``pretrained=True`` would load for ``name`` (None: none, or a name timm cannot describe)."""
    from pixlearn.models.registry import find_pretrained

    if name.startswith("pixlearn_"):
        return None
    try:
        return find_pretrained(name)
    except Exception:  # noqa: BLE001 - a name without a pretrained config has no local weights
        return None


def describe_model(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a run trains and why, from its folder: ``{"model", "pretrained", "weights", "choice", "reason"}``.

    ``config.yaml`` gives the model and whether it starts from pretrained weights; ``manifest.json``'s
    ``auto_model`` gives the classification task's own reason when it picked the model (a budgeted run
    without a model name). None before the run folder has its config.

    Examples
    --------
    >>> describe_model("/no/such/run") is None
    True
    """
    import yaml

    run_dir = Path(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    model = cfg.get("model") or {}
    name = str(model.get("name") or "")
    if not name:
        return None
    manifest = _read_json_file(run_dir / "manifest.json") or {}
    auto = manifest.get("auto_model") if isinstance(manifest.get("auto_model"), dict) else None
    pretrained = bool(model.get("pretrained") or model.get("weights"))
    weights = model.get("weights") or (str(_local_weights(name) or "") or None if model.get("pretrained") else None)
    if pretrained:
        choice = f"backbone {name} from local weights" + ("" if auto else " (asked for by name)")
    elif auto:
        choice = f"no local weights: small CNN {name}"
    else:
        choice = f"{name} from scratch (asked for by name)"
    # the task speaks to CLI users; on the service the other models are one field away
    reason = str(auto.get("why")).replace("pass --model to choose another", "set the architecture (advanced) to choose "
                                          "another") if auto and auto.get("why") else (
        f"{name}, fine-tuned from {weights}" if pretrained else f"{name}, trained from scratch")
    return {"model": name, "pretrained": pretrained, "weights": weights, "choice": choice, "reason": reason}


def train_options(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments :func:`pixlearn.train.train_classifier` gets for a job's ``options``.

    ``minutes`` is passed as the budget. ``architecture="auto"`` passes no model, so the classification task
    picks one (a pretrained backbone when its weights are local, else a small CNN) and plans the run; a model
    name is passed on, fine-tuned from its local weights when there are some (as ``--pretrained`` would).
    ``epochs``, ``img_size``, ``batch``, ``lr`` only when the job set them (otherwise the task's recipe decides).
    Jobs stored before budgets existed have no ``minutes`` and train their ``epochs``.

    Examples
    --------
    >>> train_options({"minutes": 3.0, "architecture": "auto", "epochs": None})
    {'minutes': 3.0}
    >>> train_options({"minutes": 1.0, "architecture": "pixlearn_smallcnn_tiny", "epochs": 4})
    {'model': 'pixlearn_smallcnn_tiny', 'minutes': 1.0, 'epochs': 4}

    A detection job (``task="detect"``) names its architecture as ``arch``:

    >>> train_options({"minutes": 2.0, "architecture": "fcos", "task": "detect", "img_size": 64})
    {'arch': 'fcos', 'minutes': 2.0, 'img_size': 64}
    """
    kwargs: dict[str, Any] = {}
    arch = str(options.get("architecture") or "auto")
    if arch != "auto" and options.get("task") == "detect":  # a detection architecture; the recipe picks the backbone
        kwargs["arch"] = arch
    elif arch != "auto":
        kwargs["model"] = arch
        if _local_weights(arch) is not None:
            kwargs["pretrained"] = True
    for key in ("minutes", "epochs", "img_size", "batch", "lr"):
        if options.get(key) is not None:
            kwargs[key] = options[key]
    return kwargs


def _train(job_dir: Path, spec: dict[str, Any], *, clock: Any = None) -> dict[str, Any]:
    run_dir = Path(spec["run_dir"])
    opts = dict(spec.get("options") or {})
    # a resumed job continues its clock: what the earlier attempts spent (read before this attempt rewrites the file)
    spent = spent_seconds(job_dir) if spec.get("resume") else 0.0
    ProgressWriter(job_dir / "progress.json", minutes=opts.get("minutes"), spent_s=spent).write(stage="loading")
    task_name = "detect" if opts.get("task") == "detect" else "classify"
    if not spec.get("resume"):  # the data first: a job that cannot train fails before loading the engine
        from pixlearn.tasks.registry import task as get_task

        read_task_dataset = get_task(task_name).load("read_dataset")

        # Readers refuse paths outside the upload by default; a job never lifts that (no
        # outside_root_allowed here) and fails rather than train on what is left.
        index = read_task_dataset(spec["data"])
        refused = (index.meta.get("refused") or {}).get("outside_root")
        if refused:
            raise ConfigError(
                f"{refused} path(s) in the uploaded dataset lead outside it (e.g. "
                f"{index.meta['refused']['examples'][0]}); use paths relative to the dataset folder"
            )
    from pixlearn.tasks.registry import task as get_task

    train_classifier = get_task(task_name).load("train")  # train_detector for a detection job

    progress = progress_callback(job_dir / "progress.json", hold_after_epoch=_hold_from_env(), minutes=opts.get("minutes"),
                                 run_dir=run_dir, spent_s=spent, clock=clock)
    progress.write(stage="starting" if spec.get("resume") else "planning")
    if spec.get("resume"):
        left = resume_minutes(opts.get("minutes"), spent) if spent else None  # the job's budget, less what it spent
        res = train_classifier(resume=run_dir, workers=0, progress=False, callbacks=[progress],
                               **({"minutes": left} if left is not None else {}))
    else:
        res = train_classifier(spec["data"], out=run_dir, workers=0, progress=False, callbacks=[progress],
                               **train_options(opts))
    backbone = describe_model(res.run_dir)
    progress.write(stage="done", fraction=1.0, backbone=backbone)
    metrics = res.metrics or {}
    scores = ("map", "map50") if task_name == "detect" else ("accuracy",)
    return {"status": "succeeded", "run_dir": str(res.run_dir), "epochs_run": res.epochs_run,
            **{k: metrics.get(k) for k in scores}, "split": metrics.get("split"), "n": metrics.get("n"),
            "backbone": backbone}


def _read_json_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
