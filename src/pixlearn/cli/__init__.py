"""The ``pixlearn`` command line (typer); ``main`` is the console entry point."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

__all__ = ["main"]


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 success, 1 failure, 2 usage error.

    Errors print as one line on stderr; ``--debug`` (anywhere on the line) adds the traceback.
    """
    import typer

    from pixlearn.cli._clickmod import click

    from pixlearn._core.errors import PixlearnError
    from pixlearn.cli.app import build_command

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = build_command()
    try:
        result = command.main(args=args, prog_name="pixlearn", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        _error("aborted")
        return 1
    except click.exceptions.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except click.exceptions.UsageError as exc:
        if debug:
            traceback.print_exc()
        where = f"pixlearn {exc.ctx.command_path.split(' ', 1)[1]} " if exc.ctx and " " in exc.ctx.command_path else "pixlearn "
        _error(f"{exc.format_message()} (see '{where.strip()} --help')")
        return 2
    except click.exceptions.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except PixlearnError as exc:
        if debug:
            traceback.print_exc()
        _error(getattr(exc, "cli_message", None) or str(exc))  # the fix in CLI words (--from, not format=)
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # an unexpected failure still prints one line
        if debug:
            traceback.print_exc()
        _error(f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)")
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
