"""``pixlearn data ...``: sample, convert, check, split and preview datasets."""

from __future__ import annotations

import typer

from pixlearn.cli._group import new_app

__all__ = ["register"]

data_app = new_app("Datasets: built-in samples, format conversion, checks, splits and previews.")


def register(app: typer.Typer) -> None:
    from pixlearn.cli import data_check, data_convert, data_preview, data_sample

    for module in (data_sample, data_convert, data_check, data_preview):
        module.register(data_app)
    app.add_typer(data_app, name="data")
