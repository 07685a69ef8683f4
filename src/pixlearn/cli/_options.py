"""Options shared by the commands that read datasets."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["AllowOutsideRoot"]


def _allow_outside_root(ctx: typer.Context, value: bool) -> bool:
    """Let every dataset reader of this command (however deep, e.g. inside a training) read outside paths.

    The choice lives in a context variable for as long as the command runs (click closes the
    context, and so resets it, when the command returns), so nothing leaks to the next command
    run in the same process.
    """
    if value:
        from pixlearn.data.readers import outside_root_allowed

        ctx.with_resource(outside_root_allowed(True))
    return value


#: ``--allow-outside-root``: read dataset records whose paths lead outside the dataset folder.
AllowOutsideRoot = Annotated[
    bool,
    typer.Option(
        "--allow-outside-root",
        help="Read dataset records whose paths lead outside the dataset folder (absolute paths, '..', "
        "links pointing out); refused by default. For your own data on your own machine.",
        callback=_allow_outside_root,
    ),
]
