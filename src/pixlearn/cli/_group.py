"""A typer group whose unknown-command errors suggest the closest command, and commands that name renamed options."""

from __future__ import annotations

from pixlearn.cli._clickmod import click
import typer
from typer.core import TyperCommand, TyperGroup

from pixlearn._core.names import closest

__all__ = ["SuggestingGroup", "SuggestingCommand", "RENAMED_OPTIONS", "new_app"]

#: Options that were renamed: the old spelling -> the new one (the error says which to use).
RENAMED_OPTIONS: dict[str, str] = {
    "--max-minutes": "--minutes",
    "--arch": "--model",
    "--encoder": "--backbone",
    "--patch": "--img-size",
}


class SuggestingCommand(TyperCommand):
    """A command whose unknown-option errors point a renamed option at its new name (else the closest option)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoSuchOption as exc:
            name = exc.option_name
            known = [o for p in self.params for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))]
            new = RENAMED_OPTIONS.get(name)
            if new and new in known:
                raise click.exceptions.NoSuchOption(
                    name, message=f"no such option {name}: it is now {new}; did you mean '{new}'?", ctx=ctx,
                ) from None
            hint = closest(name, known, n=1)
            if hint:
                raise click.exceptions.NoSuchOption(name, message=f"no such option {name}; did you mean '{hint[0]}'?", ctx=ctx) from None
            raise


class SuggestingGroup(TyperGroup):
    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            hint = closest(name, self.list_commands(ctx))
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            choices = ", ".join(self.list_commands(ctx))
            raise click.exceptions.UsageError(f"no such command '{name}'{suggestion} Commands: {choices}", ctx)
        return super().resolve_command(ctx, args)


def new_app(help: str, *, cls: type[TyperGroup] | None = None, rich: bool = True) -> typer.Typer:
    """A typer app with the house settings: suggestions, no rich tracebacks, -h for help (``rich=False``: click's plain
    help, which imports no rich)."""
    extra = {} if rich else {"rich_markup_mode": None}
    return typer.Typer(
        cls=cls or SuggestingGroup,
        help=help,
        **extra,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
