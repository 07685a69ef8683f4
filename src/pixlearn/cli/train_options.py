"""The options every ``pixlearn train TASK`` command shares, declared once.

:func:`train_command` turns a task's command function -- ``fn(opts: TrainOptions, *, <its own
options>)`` -- into a typer command that takes the shared grammar first (``--data``, ``--model``,
``--epochs``, ``--minutes``, ``--img-size``, ``--batch``, ``--lr``, ``--weights``, ``--resume``,
``--extend``, ``--folds``, ``--find-lr``, ``--seed``, ``--workers``, ``--out``, ``--config``,
``--set``, ``--progress``, ``--format``) and then the task's own options. Only the help texts that
name task defaults differ between tasks (:class:`TaskHelp`). Renamed options (``--max-minutes``,
``--arch``, ``--encoder``, ``--patch``) are answered with their new name (see
:class:`pixlearn.cli._group.SuggestingCommand`).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._group import SuggestingCommand
from pixlearn.cli._output import OutputFormat, emit

__all__ = ["TaskHelp", "TrainOptions", "train_command", "finish"]


@dataclass(frozen=True)
class TaskHelp:
    """Help texts of the shared options that name a task's defaults."""

    data: str
    model: str
    epochs: str = "Maximum epochs."
    img_size: str = "Square training size in pixels."
    batch: str = "Batch size per device."
    lr: str = "Peak learning rate."
    weights: str = "Start from a local .safetensors / .pt file (e.g. a run's weights/best.safetensors)."
    out: str = "Run folder (default runs/<task>/<model>)."
    set_example: str = "train.patience=5"


@dataclass
class TrainOptions:
    """The shared options' values as the user gave them (``None``: not given)."""

    data: Path | None = None
    model: str | None = None
    epochs: int | None = None
    minutes: float | None = None
    img_size: int | None = None
    batch: int | None = None
    lr: float | None = None
    weights: Path | None = None
    resume: Path | None = None
    extend: int | None = None
    folds: int | None = None
    find_lr: bool | None = None
    seed: int | None = None
    workers: int | None = None
    out: Path | None = None
    config: Path | None = None
    set_: list[str] | None = None
    progress: bool | None = None
    format: OutputFormat = OutputFormat.table

    def flat(self) -> dict[str, Any]:
        """The options that map onto config fields (given ones only), as flat keyword arguments."""
        out = {"model": self.model, "epochs": self.epochs, "minutes": self.minutes, "img_size": self.img_size, "batch": self.batch,
               "lr": self.lr, "weights": str(self.weights) if self.weights else None, "folds": self.folds, "find_lr": self.find_lr,
               "seed": self.seed, "workers": self.workers}
        return {k: v for k, v in out.items() if v is not None}

    def require_data(self) -> None:
        if self.data is None and self.config is None and self.resume is None:
            raise typer.BadParameter("give --data DIR (or --config FILE naming data.path, or --resume RUN)", param_hint="--data")


_COMMON = [f.name for f in fields(TrainOptions)]


def _opt(*names: str, help: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, show_default=False, **kw)


def _common_params(h: TaskHelp) -> list[inspect.Parameter]:
    """The shared options, as the parameters of a typer command (keyword-only, in help order)."""
    from pixlearn.cli._options import AllowOutsideRoot

    spec: list[tuple[str, Any, Any]] = [
        ("data", Annotated[Optional[Path], _opt("--data", help=h.data)], None),
        ("model", Annotated[Optional[str], _opt("--model", help=h.model)], None),
        ("epochs", Annotated[Optional[int], _opt("--epochs", help=h.epochs + " With --minutes and no --epochs, the budget ends the run.", min=1)], None),
        ("minutes", Annotated[Optional[float], _opt(
            "--minutes", help="Wall-clock budget of the training in minutes, checked every step: it stops when one more step and the "
                              "validation at the stop would not fit; cosine / one-cycle schedules follow the clock. Start-up and the "
                              "final scoring come on top.", min=0.001)], None),
        ("img_size", Annotated[Optional[int], _opt("--img-size", help=h.img_size, min=4)], None),
        ("batch", Annotated[Optional[int], _opt("--batch", help=h.batch, min=1)], None),
        ("lr", Annotated[Optional[float], _opt("--lr", help=h.lr)], None),
        ("weights", Annotated[Optional[Path], _opt("--weights", help=h.weights)], None),
        ("resume", Annotated[Optional[Path], _opt("--resume", help="Continue RUN from its checkpoints/last.ckpt, and its --minutes clock (only --workers, --data, --minutes and hardware options may change).")], None),
        ("extend", Annotated[Optional[int], _opt("--extend", help="With --resume: train N more epochs (also after the run finished or stopped early).", min=1)], None),
        ("folds", Annotated[Optional[int], _opt("--folds", help="k-fold cross-validation: report mean ± std per metric.", min=0)], None),
        ("find_lr", Annotated[Optional[bool], _opt("--find-lr/--no-find-lr", help="Run the LR finder first and train with its suggestion.")], None),
        ("seed", Annotated[Optional[int], _opt("--seed", help="Seed of the split, initialisation, data order and augmentation (default 0).", min=0)], None),
        ("workers", Annotated[Optional[int], _opt("--workers", help="Data-loading worker processes (default 0).", min=0)], None),
        ("out", Annotated[Optional[Path], _opt("--out", "-o", help=h.out)], None),
        ("config", Annotated[Optional[Path], _opt("--config", help="YAML config (sections data, model, optim, schedule, train); flags override it.")], None),
        ("set_", Annotated[Optional[list[str]], _opt("--set", help=f"Any config field: --set {h.set_example} (repeatable).")], None),
        ("progress", Annotated[Optional[bool], _opt(
            "--progress/--no-progress", help="Progress on stderr: a live bar on a terminal (the default there); forced elsewhere, "
                                             "plain lines per epoch and every 30 s.")], None),
        ("format", Annotated[OutputFormat, typer.Option("--format", help="Output: table, json (the whole metrics.json) or csv.")], OutputFormat.table),
        ("allow_outside_root", AllowOutsideRoot, False),
    ]
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default) for name, ann, default in spec]


def train_command(app: typer.Typer, name: str, help: TaskHelp) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(opts, **own)`` as ``train NAME`` with the shared options first, then the task's own."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"]
        clash = {p.name for p in own} & set(_COMMON)
        if clash:  # pragma: no cover - a programming error
            raise TypeError(f"train {name}: options {sorted(clash)} are shared ones; take them from opts")
        params = _common_params(help) + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        def command(**kwargs: Any) -> Any:
            kwargs.pop("allow_outside_root", None)  # acted on by its callback
            opts = TrainOptions(**{k: kwargs.pop(k) for k in _COMMON})
            if opts.out is not None:  # before any work: no folders created outside the current one
                from pixlearn.cli._output import output_dir

                output_dir(opts.out)
            return fn(opts, **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        command.__qualname__ = fn.__qualname__
        command.__module__ = fn.__module__
        app.command(name, cls=SuggestingCommand)(command)
        return fn

    return decorate


def finish(result: Any, opts: TrainOptions, rows: Callable[[dict[str, Any]], Any]) -> None:
    """Print the metrics (stdout) and the closing summary (stderr): why training stopped, the run folder, the report."""
    from pixlearn.engine.budget import describe_stop

    metrics = result.metrics
    if metrics is None:  # a DDP process other than rank 0
        return
    emit(metrics if opts.format is OutputFormat.json else rows(metrics), opts.format)
    cfg = result.config
    reason = getattr(result, "stop_reason", None) or metrics.get("stop_reason")
    if reason and metrics.get("kind") != "k-fold":
        stopped = describe_stop(reason, epochs_run=result.epochs_run, epochs=cfg.train.epochs, minutes=getattr(cfg.train, "minutes", None))
        sys.stderr.write(f"stopped: {stopped}\n")
    verdict = metrics.get("verdict")
    if isinstance(verdict, dict) and verdict.get("sentence"):  # the model against its baselines, in words
        sys.stderr.write(f"{verdict['sentence']}\n")
    sys.stderr.write(f"run folder: {result.run_dir}; report: {result.run_dir / 'report.html'}\n")
