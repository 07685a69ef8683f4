"""``pixlearn index build|add|remove|info`` and ``pixlearn search``: search by image over a FAISS index folder."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._group import new_app
from pixlearn.cli._output import OutputFormat, emit

__all__ = ["register"]

index_app = new_app(
    "Search-by-image indexes: build one from a folder with a pretrained model, a classification run or phash, "
    "add or remove images, show what an index holds."
)


class IndexKind(str, enum.Enum):
    """What the index becomes from --threshold images on (below it: the exact flat index)."""

    auto = "auto"
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"


_NPROBE_HELP = "IVF lists visited per query (more: slower, nearer to exact; clamped to the index's nlist)."
_EF_HELP = "HNSW candidates kept per query (more: slower, nearer to exact)."

_MODEL_HELP = ("phash (64-bit perceptual hash: near-duplicates), a pretrained timm name whose weights are local "
               "(tf_efficientnet_lite0; see pixlearn weights list), or a classification run folder.")


def _check_index_folder(path: Path) -> None:
    from pixlearn._core.errors import ConfigError

    if not (path / "manifest.json").is_file() or not (path / "index.faiss").is_file():
        raise ConfigError(f"INDEX {path}: not a pixlearn search index (needs index.faiss and manifest.json); "
                          "build one with pixlearn index build DIR --model NAME -o INDEX")


def _report(report: Any, total: int, out: Path, fmt: OutputFormat) -> None:
    row = {"index": str(out), **{k: v for k, v in report.to_dict().items() if k != "errors"}, "images": total}
    emit(row, fmt)
    for path, error in report.failed.items():
        sys.stderr.write(f"unreadable: {path}: {error}\n")


@index_app.command("build")
def build(
    source: Annotated[Path, typer.Argument(help="A folder of images (searched recursively) or one image.", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The index folder to write (index.faiss + manifest.json).", show_default=False)],
    kind: Annotated[IndexKind, typer.Option("--kind", help="flat: always exact; hnsw / ivf: approximate from --threshold images on; auto: the measured choice (docs/search.md). phash indexes take auto or flat.")] = IndexKind.auto,
    threshold: Annotated[int, typer.Option("--threshold", "--hnsw-threshold", min=1, max=1_000_000_000, help="From this many images on, the --kind index instead of the exact flat one.")] = 50_000,
    nprobe: Annotated[int, typer.Option("--nprobe", min=1, max=65536, help="IVF: lists visited per query by default (search --nprobe overrides).")] = 32,
    ef_search: Annotated[int, typer.Option("--ef-search", min=1, max=4096, help="HNSW: candidates per query by default (search --ef-search overrides).")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1024, help="Images embedded per batch.")] = 32,
    force: Annotated[bool, typer.Option("--force", help="Replace an index already in --out.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Embed every image under SOURCE with --model and write a FAISS index folder to --out.

    Below --threshold images the index is exact (flat); from there on it is the --kind index. Unreadable files are
    listed on stderr and left out; files with the same bytes are indexed once.
    """
    from pixlearn._core.errors import ConfigError, ImageNotFoundError
    from pixlearn.cli._output import output_dir
    from pixlearn.search.embed import load_embedder
    from pixlearn.search.index import Index, list_images

    if not source.exists():
        raise ImageNotFoundError(f"SOURCE {source}: no such file or folder; pass a folder of images")
    output_dir(out, option="--out")
    if (out / "manifest.json").exists() and not force:
        raise ConfigError(f"--out {out}: already holds an index; pass --force to replace it, or add images with "
                          f"pixlearn index add {out} FILES")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; the index is a folder")
    paths = list_images(source)
    if not paths:
        raise ConfigError(f"SOURCE {source}: holds no images (extensions .png .jpg .jpeg .webp .bmp .tif .tiff .gif)")
    embedder = load_embedder(model, batch_size=batch_size)
    index = Index(embedder, kind=kind.value, threshold=threshold, nprobe=nprobe, ef_search=ef_search)
    report = index.add(paths, progress=progress, batch_size=batch_size)
    index.save(out)
    _report(report, len(index), out, format)


@index_app.command("add")
def add(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder written by pixlearn index build.", show_default=False)],
    files: Annotated[list[Path], typer.Argument(help="Image files or folders to add.", show_default=False)],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1024, help="Images embedded per batch.")] = 32,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Add FILES to INDEX with the index's own model; files already indexed (same sha256) are skipped."""
    from pixlearn._core.errors import ImageNotFoundError
    from pixlearn.search.index import Index, list_images

    _check_index_folder(index_dir)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ImageNotFoundError(f"FILES: no such file or folder: {', '.join(missing[:5])}; nothing was added")
    paths = [p for f in files for p in list_images(f)]
    index = Index.load(index_dir, batch_size=batch_size)
    report = index.add(paths, progress=progress, batch_size=batch_size)
    if report.added:
        index.save(index_dir)
    _report(report, len(index), index_dir, format)


@index_app.command("remove")
def remove(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder written by pixlearn index build.", show_default=False)],
    paths: Annotated[list[Path], typer.Argument(help="Indexed image paths, or folders (every image indexed under them); the files need not exist any more.", show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Remove PATHS from INDEX (matched by absolute path); paths the index does not hold are listed on stderr.

    Flat and IVF indexes remove in place; an HNSW index is rebuilt from its stored vectors (as long as a build).
    """
    from pixlearn.search.index import Index

    _check_index_folder(index_dir)
    index = Index.read(index_dir)
    before = len(index)
    _, unmatched = index.match(paths)
    removed = index.remove(paths)
    if removed:
        index.save(index_dir)
    for p in unmatched:
        sys.stderr.write(f"not in the index: {p}\n")
    emit({"index": str(index_dir), "removed": removed, "images": len(index), "before": before,
          "index_type": index.index_type}, format)


@index_app.command("info")
def info(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder.", show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Show INDEX's model (name or run, weights sha256, dimension, preprocessing), index type and image count."""
    import json

    _check_index_folder(index_dir)
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest.pop("entries", None)
    emit(manifest, format)


def search(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder written by pixlearn index build.", show_default=False)],
    image: Annotated[Path, typer.Argument(help="The query image.", show_default=False)],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=1000, help="How many nearest images to list.")] = 10,
    nprobe: Annotated[Optional[int], typer.Option("--nprobe", min=1, max=65536, help=_NPROBE_HELP + " Default: the index's.", show_default=False)] = None,
    ef_search: Annotated[Optional[int], typer.Option("--ef-search", min=1, max=4096, help=_EF_HELP + " Default: the index's.", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """List the images of INDEX nearest to IMAGE: rank, path, and score (cosine similarity) or distance (Hamming bits).

    --nprobe (IVF indexes) and --ef-search (HNSW indexes) trade speed for exactness; other index types ignore them.
    """
    from pixlearn._core.errors import ImageNotFoundError
    from pixlearn.search.index import Index

    _check_index_folder(index_dir)
    if not image.is_file():
        raise ImageNotFoundError(f"IMAGE {image}: no such file; pass an image file")
    index = Index.load(index_dir)
    rows = index.search(image, top_k=top_k, nprobe=nprobe, ef_search=ef_search)
    column = "distance" if index.index_type == "binary_flat" else "score"
    emit(rows, format, columns=["rank", "path", column])


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search", help=search.__doc__)(search)
