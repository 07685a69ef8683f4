"""(being written)"""

import typer


def register(app: typer.Typer) -> None:
    """Adds no command yet."""
