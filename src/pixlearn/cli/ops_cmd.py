"""``pixlearn op``, ``pixlearn ops``, ``pixlearn process`` and ``pixlearn demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit, output_dir, output_file
from pixlearn.scale.cluster import Engine

__all__ = ["register"]


def _parse_extra(args: list[str]) -> dict[str, Any]:
    """Turn ``--low 50 --high=150 --flag`` into ``{"low": "50", "high": "150", "flag": "true"}``."""
    from pixlearn._core.errors import ConfigError

    options: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}; op options look like --name value")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 1
        else:
            value = "true"
        options[key.replace("-", "_")] = value
        i += 1
    return options


def op(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Op name (see 'pixlearn ops').", show_default=False)],
    image: Annotated[Path, typer.Argument(help="Input image.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output image (.png/.jpg/.webp/.tiff).")] = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality of the output.", min=1, max=100)] = 95,
) -> None:
    """Apply one op to one image: pixlearn op canny IMG -o out.png --low 50 --high 150.

    Op options follow as --name value; 'pixlearn ops NAME' lists their types, defaults and ranges.

    Ops that return data (dominant_colors, quality) print JSON on stdout instead of writing an image.
    """
    from pixlearn._core.errors import ConfigError
    from pixlearn.io import read_image, write_image
    from pixlearn.ops import get_op

    spec = get_op(name)
    options = spec.validate(_parse_extra(list(ctx.args)))
    if spec.returns != "data" and out is None:
        raise ConfigError(f"op '{name}' returns an image; give the output file with -o OUT.png")
    if out is not None:
        output_file(out)  # before any work: no folders created outside the current one
    result = spec(read_image(image), **options)  # checks the image-relative bounds (kernel sizes) first
    if spec.returns == "data":
        text = json.dumps(result, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
            sys.stderr.write(f"wrote {out}\n")
        else:
            sys.stdout.write(text + "\n")
        return
    written = write_image(out, result, quality=quality)
    sys.stderr.write(f"wrote {written} ({result.shape[1]}x{result.shape[0]})\n")


def ops(
    name: Annotated[Optional[str], typer.Argument(help="Show this op's options (type, default, range).", show_default=False)] = None,
    category: Annotated[Optional[str], typer.Option(help="Only this category.")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """List every op with its category, what it returns and its options; 'pixlearn ops NAME' shows one op's
    options with their types, defaults and documented ranges.
    """
    from pixlearn._core.names import check_name
    from pixlearn.ops import get_op, list_ops

    if name is not None:
        spec = get_op(name)
        if format is OutputFormat.json:  # typed values, as in 'pixlearn ops --format json'
            emit({"op": spec.name, "category": spec.category, "returns": spec.returns, "summary": spec.summary,
                  "options": spec.describe_options()}, format)
            return
        opts = [_option_row(o) for o in spec.describe_options()]
        sys.stderr.write(f"{spec.name} ({spec.category}, returns {spec.returns}): {spec.summary}\n")
        if not opts:
            sys.stderr.write(f"op '{spec.name}' takes no options\n")
            return
        emit(opts, format, columns=["option", "type", "default", "range"])
        return
    specs = list_ops()
    if category is not None:
        check_name(category, sorted({s.category for s in specs}), what="op category")
        specs = [s for s in specs if s.category == category]
    rows = []
    for s in specs:
        opts = s.describe_options()
        options: Any = opts if format is OutputFormat.json else " ".join(
            f"{o['option']}={o['default']}" for o in map(_option_row, opts))
        rows.append({"op": s.name, "category": s.category, "returns": s.returns, "options": options, "summary": s.summary})
    emit(rows, format, columns=["op", "category", "returns", "options", "summary"])
    if format is OutputFormat.table:
        sys.stderr.write(f"{len(rows)} ops; 'pixlearn ops NAME' shows an op's options with their types, defaults "
                         "and ranges\n")


def _option_row(o: dict[str, Any]) -> dict[str, Any]:
    """One option as shown by 'pixlearn ops NAME': the --flag name, type, default (as typed on the CLI), range."""
    default = o["default"]
    if isinstance(default, (tuple, list)):
        default = ",".join(str(v) for v in default)
    return {"option": o["name"].replace("_", "-"), "type": o["type"],
            "default": "" if default is None else str(default), "range": o["range"] or ""}


def process(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML file or built-in recipe name.", show_default=False)],
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (sub-folders mirror the inputs).")],
    workers: Annotated[Optional[int], typer.Option(help="Parallel worker processes (default 1); with --engine ray, the recipe workers, 1..64 (default 2).", min=1, show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo inputs whose output already exists.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any file failed.")] = False,
    report: Annotated[str, typer.Option(help="Per-file report inside OUT (.csv or .json).")] = "report.csv",
    format: Annotated[Optional[OutputFormat], typer.Option("--format", help="Also print the per-file report on stdout.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    engine: Annotated[Engine, typer.Option("--engine", help="local: worker processes here; ray: recipe workers on Ray Data (pip install 'pixlearn[ray]'; on a cluster, inputs and OUT on a shared filesystem).")] = Engine.local,
    address: Annotated[Optional[str], typer.Option("--address", help="--engine ray: ray://HOST:PORT, HOST:PORT or auto (default: start a local cluster of --workers CPUs).", show_default=False)] = None,
) -> None:
    """Apply a recipe to files, folders and globs, in parallel, with a per-file report.

    Bad files are reported and skipped; outputs already present are skipped unless
    --overwrite, so a second run resumes. Exit 0 when some file succeeded, 1 when none
    did (or, with --strict, when any failed).
    """
    from pixlearn.ops.batch import REPORT_COLUMNS
    from pixlearn.ops.batch import process as run_process
    from pixlearn.ops.recipe import Recipe

    output_dir(out)
    if engine is Engine.ray:
        from pixlearn.scale.cluster import DEFAULT_WORKERS, MAX_WORKERS, check_address

        workers = DEFAULT_WORKERS if workers is None else workers
        if not 1 <= workers <= MAX_WORKERS:  # a usage error, before Ray starts
            raise typer.BadParameter(f"{workers}: with --engine ray, --workers is the number of recipe workers, 1..{MAX_WORKERS}",
                                     param_hint="--workers")
        try:
            check_address(address)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--address") from exc
        from pixlearn.scale.process import ray_process

        batch = ray_process(Recipe.load(recipe), inputs, out, workers=workers, address=address, overwrite=overwrite,
                            report=report, progress=progress)
    else:
        if address is not None:
            raise typer.BadParameter("--address names a Ray cluster: add --engine ray", param_hint="--address")
        batch = run_process(Recipe.load(recipe), inputs, out, workers=workers or 1, overwrite=overwrite, report=report,
                            progress=progress)
    if format is not None:
        emit(batch.rows(), format, columns=list(REPORT_COLUMNS))
    for r in batch.results:
        if r.status == "error":
            sys.stderr.write(f"  {r.input}: {r.error}\n")
    sys.stderr.write(batch.summary() + "\n")
    counts = batch.counts
    if (strict and counts["error"]) or (counts["error"] and counts["ok"] + counts["skipped"] == 0):
        raise typer.Exit(1)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the sample inputs, outputs and report.")] = Path("runs/demo"),
    workers: Annotated[int, typer.Option(help="Parallel worker processes.", min=1)] = 2,
) -> None:
    """Write the built-in sample photos and run the built-in recipes over them, end to end."""
    from pixlearn.data.samples import write_skimage_samples
    from pixlearn.ops.batch import process as run_process
    from pixlearn.ops.recipe import Recipe

    output_dir(out)
    inputs = out / "input"
    written = write_skimage_samples(inputs)
    broken = inputs / "broken.jpg"
    broken.write_bytes(written[0].read_bytes()[:300])  # a truncated copy: shows the per-file error report
    sys.stderr.write(f"wrote {len(written)} sample photos and one deliberately truncated JPEG to {inputs}\n")
    for name in ("edges", "quality"):
        batch = run_process(Recipe.load(name), inputs, out / name, workers=workers, overwrite=True, progress=True)
        sys.stderr.write(f"recipe '{name}': {batch.summary()}\n")
        for r in batch.results:
            if r.status == "error":
                sys.stderr.write(f"  {r.input}: {r.error}\n")
    sys.stdout.write(f"outputs under {out}/edges and {out}/quality; reports in each folder's report.csv\n")


def register(app: typer.Typer) -> None:
    app.command("op", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(op)
    app.command("ops")(ops)
    app.command("process")(process)
    app.command("demo")(demo)
