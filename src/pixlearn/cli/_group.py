"""A typer group whose unknown-command errors suggest the closest command."""

from __future__ import annotations

from pixlearn.cli._clickmod import click
import typer
from typer.core import TyperGroup

from pixlearn._core.names import closest

__all__ = ["SuggestingGroup", "new_app"]


class SuggestingGroup(TyperGroup):
    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            hint = closest(name, self.list_commands(ctx))
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            choices = ", ".join(self.list_commands(ctx))
            raise click.exceptions.UsageError(f"no such command '{name}'{suggestion} Commands: {choices}", ctx)
        return super().resolve_command(ctx, args)


def new_app(help: str) -> typer.Typer:
    """A typer app with the house settings: suggestions, no rich tracebacks, -h for help."""
    return typer.Typer(
        cls=SuggestingGroup,
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
