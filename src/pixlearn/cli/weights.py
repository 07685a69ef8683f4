"""``pixlearn weights ...``: local pretrained weights (timm's names) that ``--pretrained`` finds offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixlearn.cli._group import new_app
from pixlearn.cli._output import OutputFormat, emit

__all__ = ["register"]

weights_app = new_app(
    "Local pretrained weights: --pretrained looks in $PIXLEARN_WEIGHTS (folders separated by the path separator), "
    "then <cache>/weights, for <model>.<tag>.safetensors or <model>.safetensors before any download."
)

_LIST_COLUMNS = ["model", "tag", "size", "sha256", "folder", "serves", "shadowed_by"]


@weights_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="A .safetensors file (e.g. ../shared/weights/tf_efficientnet_lite0.in1k.safetensors).", show_default=False)],
    model: Annotated[str, typer.Option("--model", help="The model the file is for (a timm name such as tf_efficientnet_lite0, or a pixlearn name).", show_default=False)],
    tag: Annotated[Optional[str], typer.Option("--tag", help="Pretrained tag, as timm's (in1k, a1_in1k); default: from --model NAME.TAG or the file's own name.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a different file already there under that name.")] = False,
    to: Annotated[Optional[Path], typer.Option("--to", help="Folder to put it in (default: the first weights folder).", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Check FILE strictly against --model (built with random weights, every tensor's name and shape) and copy it
    into the first weights folder as <model>.<tag>.safetensors, where --pretrained finds it.

    The source file is only read; the copy is written atomically. Exits 1 (nothing written) when the file does not
    fit the model, or when another file is there under that name and --force is not given.
    """
    from pixlearn.models.registry import add_weights

    result = add_weights(file, model, tag=tag, force=force, folder=to)
    row = {k: result[k] for k in ("status", "model", "tag", "num_classes", "tensors", "parameters", "size", "path")}
    row["sha256"] = str(result["sha256"])[:12]
    row["tag"] = row["tag"] or ""
    emit(row, format)
    if result.get("warning"):
        sys.stderr.write(f"warning: {result['warning']}\n")
    name = f"{model.partition('.')[0]}.{result['tag']}" if result["tag"] else model
    sys.stderr.write(f"{result['status']}: {result['path']}; use it with --pretrained --model {name} (Python: pretrained=True)\n")


@weights_app.command("list")
def list_(
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    checksum: Annotated[bool, typer.Option("--checksum/--no-checksum", help="Read each file for its sha256 (first 12 hex digits).")] = True,
) -> None:
    """List the weights files in the local weights folders: model, tag, size, sha256, folder, and the names each serves."""
    from pixlearn._core.paths import weights_dirs
    from pixlearn.models.registry import list_local_weights

    rows = list_local_weights(checksum=checksum)
    emit(rows, format, columns=None if format is OutputFormat.json else _LIST_COLUMNS)
    if not rows:
        sys.stderr.write(
            f"no weights files in {', '.join(str(d) for d in weights_dirs())}; add one with "
            "pixlearn weights add FILE --model NAME\n"
        )


@weights_app.command("path")
def path(
    name: Annotated[str, typer.Argument(help="A model name, optionally with a tag (tf_efficientnet_lite0.in1k), or tu-<name>.", show_default=False)],
) -> None:
    """Print the local file --pretrained uses for NAME; exits 1 (saying where it looked) when there is none."""
    from pixlearn.models.registry import _looked_for, check_model_name, find_pretrained

    bare = name[3:] if name.startswith("tu-") else name
    check_model_name(bare)
    found = find_pretrained(bare)
    if found is None:
        sys.stderr.write(f"no local weights for {name}: looked for {_looked_for(bare)}\n")
        raise typer.Exit(1)
    typer.echo(str(found))


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
