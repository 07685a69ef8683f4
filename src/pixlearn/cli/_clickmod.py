"""The click that typer runs on: newer typer releases vendor their own copy."""

from __future__ import annotations

import typer.core

try:
    click = typer.core._click  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - older typer uses the click package
    import click  # type: ignore[no-redef]

__all__ = ["click"]
