"""Assemble the ``pixlearn`` command tree, lazily.

``pixlearn --help`` must answer in well under half a second, so the root group knows its commands from
:data:`COMMANDS` (name, the module that registers it, its one-line help) and imports a command's module only
when that command runs or shows its own help. The root help is click's plain text (typer's rich help costs
rich, markdown-it and pygments: several hundred milliseconds); each command's own ``--help`` keeps rich tables.
A test checks that every line of :data:`COMMANDS` matches the command its module registers.
"""

from __future__ import annotations

from importlib import import_module
from typing import Annotated, Any, Optional

from pixlearn.cli._clickmod import click
import typer

from pixlearn.cli._group import SuggestingGroup, new_app

__all__ = ["app", "build_command", "COMMANDS", "load_command"]

#: The top-level commands in help order: name -> (module under pixlearn.cli with a register(app), one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "Show versions, the torch device and threads, offline status, cache folders and the local weights folders "
                     "(with how many .safetensors files each holds)."),
    "show": ("info", "Show each image's format, size, mode, EXIF orientation, or why it is refused."),
    "op": ("ops_cmd", "Apply one op to one image: pixlearn op canny IMG -o out.png --low 50 --high 150."),
    "ops": ("ops_cmd", "List every op with its category, what it returns and its options; 'pixlearn ops NAME' shows one op's "
                       "options with their types, defaults and documented ranges."),
    "process": ("ops_cmd", "Apply a recipe to files, folders and globs, in parallel, with a per-file report."),
    "demo": ("ops_cmd", "Write the built-in sample photos and run the built-in recipes over them, end to end."),
    "predict": ("predict", "Run a trained model over images; one row per image."),
    "detect": ("detect", "Find the 80 COCO object classes in images with the YOLOX-Nano detector, no training."),
    "eval": ("evaluate", "Score RUN's model (or a classical --method) on DIR, naming the split the numbers come from."),
    "export": ("export", "Export a run's model as one file (ONNX, TorchScript or ExportedProgram) with its preprocessing and "
                         "postprocessing inside, checked against the run's torch predictor."),
    "faces": ("faces_cmd", "Faces: detect (HOG or CNN), 5-point landmarks and aligned crops, 128-d embeddings; enroll people into a "
                           "gallery, identify (1:N) and verify (1:1) with calibrated thresholds, list and delete people."),
    "ocr": ("ocr_cmd", "Read the text in images (PP-OCR on onnxruntime): quadrilateral boxes, text and confidence in reading "
                       "order, as JSON or CSV and as drawn images."),
    "index": ("search_cmd", "Search-by-image indexes: build one from a folder with a pretrained model, a classification run or phash, "
                            "add or remove images, show what an index holds."),
    "search": ("search_cmd", "List the images of INDEX nearest to IMAGE: rank, path, and score (cosine similarity) or distance (Hamming bits)."),
    "serve": ("serve", "Serve the REST API (/docs), the Open Inference Protocol v2 (/v2) and the web page (/)."),
    "data": ("data", "Datasets: built-in samples, format conversion, checks, splits and previews."),
    "train": ("train", "Train a model on a labelled folder; each run writes a run folder."),
    "weights": ("weights", "Local pretrained weights: --pretrained looks in $PIXLEARN_WEIGHTS (folders separated by the path "
                           "separator), then <cache>/weights, for <model>.<tag>.safetensors or <model>.safetensors before any download."),
}

_LOADED: dict[str, click.Command] = {}


def load_command(name: str) -> click.Command:
    """The click command ``name`` of :data:`COMMANDS`, built on first use from its module's ``register``."""
    if name not in _LOADED:
        module = import_module(f"pixlearn.cli.{COMMANDS[name][0]}")
        holder = new_app("")
        module.register(holder)
        group = typer.main.get_group(holder)
        for key, command in group.commands.items():  # a module may register several commands (info, show)
            _LOADED.setdefault(key, command)
    return _LOADED[name]


class LazyGroup(SuggestingGroup):
    """The root group: commands come from :data:`COMMANDS` and are imported when used, not when listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return None

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        from pixlearn.cli._clickmod import click as _click

        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            text = command.get_short_help_str(limit) if command is not None else _click.utils.make_default_short_help(COMMANDS[name][1], limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = new_app("pixlearn: machine-learning image processing from the command line.", cls=LazyGroup, rich=False)


def _version(value: bool) -> None:
    if value:
        from pixlearn import __version__

        typer.echo(f"pixlearn {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """pixlearn: from raw pictures to trained, evaluated, deployable models.

    Add --debug anywhere to see a traceback when something fails.
    """


def build_command() -> click.Command:
    """The click command behind :data:`app` (what ``main`` runs)."""
    return typer.main.get_command(app)
