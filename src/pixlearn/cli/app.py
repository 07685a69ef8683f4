"""Assemble the ``pixlearn`` command tree."""

from __future__ import annotations

from typing import Annotated, Optional

from pixlearn.cli._clickmod import click
import typer

from pixlearn.cli._group import new_app

__all__ = ["app", "build_command"]

app = new_app("pixlearn: machine-learning image processing from the command line.")


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


def _register() -> None:
    from pixlearn.cli import info as _info
    from pixlearn.cli import ops_cmd as _ops

    _info.register(app)
    _ops.register(app)
    from pixlearn.cli import data as _data
    from pixlearn.cli import train as _train

    _data.register(app)
    _train.register(app)
    from pixlearn.cli import evaluate as _evaluate
    from pixlearn.cli import predict as _predict

    _predict.register(app)
    _evaluate.register(app)
    from pixlearn.cli import serve as _serve

    _serve.register(app)
    from pixlearn.cli import weights as _weights

    _weights.register(app)


_register()


def build_command() -> click.Command:
    """The click command behind :data:`app` (what ``main`` runs)."""
    return typer.main.get_command(app)
