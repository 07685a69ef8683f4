"""Apply a recipe to files, folders and globs: in parallel, resumable, with a per-file report.

One bad file never stops the batch: it is recorded in the report with its error and
the rest go on. Outputs mirror the sub-folder structure of each input folder, are
written atomically, and existing outputs are skipped unless ``overwrite=True``, so
an interrupted run resumes where it stopped. Inputs are never modified.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn.io import expand_sources, read_image, write_image
from pixlearn.ops.recipe import Recipe, load_recipe

__all__ = ["FileResult", "BatchReport", "plan_outputs", "process", "run_chunk"]

REPORT_COLUMNS = ("input", "output", "status", "error", "ms")


@dataclass
class FileResult:
    """What happened to one input: status is "ok", "skipped" (output existed) or "error"."""

    input: str
    output: str
    status: str
    error: str = ""
    ms: float = 0.0


@dataclass
class BatchReport:
    """Every file's result plus totals; ``path`` is where the report file was written."""

    results: list[FileResult] = field(default_factory=list)
    path: Path | None = None
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "skipped": 0, "error": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def summary(self) -> str:
        c = self.counts
        where = f" -> report {self.path}" if self.path else ""
        return f"{len(self.results)} file(s): {c['ok']} ok, {c['skipped']} skipped, {c['error']} error(s) in {self.seconds:.1f} s{where}"

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.results]

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        if path.suffix.lower() == ".json":
            tmp.write_text(json.dumps({"summary": self.counts, "seconds": round(self.seconds, 3), "files": self.rows()}, indent=2))
        else:
            with tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=REPORT_COLUMNS, lineterminator="\n")
                writer.writeheader()
                writer.writerows(self.rows())
        os.replace(tmp, path)
        self.path = path
        return path


def plan_outputs(sources: Iterable[tuple[Path, Path | None]], out_dir: Path, recipe: Recipe) -> list[tuple[Path, Path]]:
    """Pair every input with its output path, mirroring folders and never letting two inputs share an output."""
    plan: list[tuple[Path, Path]] = []
    taken: set[Path] = set()
    data = recipe.returns == "data"
    for path, root in sources:
        rel = path.relative_to(root) if root is not None else Path(path.name)
        ext = ".json" if data else recipe.output.extension(path)
        target = out_dir / rel.with_suffix(ext)
        n = 1
        while target in taken:  # two inputs with the same name: keep both
            n += 1
            target = out_dir / rel.with_name(f"{rel.stem}_{n}{ext}")
        taken.add(target)
        plan.append((path, target))
    return plan


def _run_one(recipe: Recipe, src: Path, dst: Path) -> FileResult:
    t0 = time.perf_counter()
    try:
        image = read_image(src)
        result = recipe(image)
        if isinstance(result, (dict, list)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp")
            tmp.write_text(json.dumps(result, indent=2))
            os.replace(tmp, dst)
        else:
            write_image(dst, result, quality=recipe.output.quality)
        status, error = "ok", ""
    except PixlearnError as exc:
        status, error = "error", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # an op failing on one odd image must not stop the batch
        status, error = "error", f"{type(exc).__name__}: {exc}"
    return FileResult(str(src), str(dst), status, error, round((time.perf_counter() - t0) * 1e3, 3))


def run_chunk(recipe: Recipe, pairs: Sequence[tuple[Path, Path]]) -> list[FileResult]:
    """Apply ``recipe`` to each ``(input, output)`` pair: the one per-file path of every engine (never raises)."""
    return [_run_one(recipe, s, d) for s, d in pairs]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one thread per process: the processes are the parallelism


def process(
    recipe: Recipe | str | os.PathLike[str],
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    overwrite: bool = False,
    report: str | os.PathLike[str] | None = "report.csv",
    progress: bool = True,
    run_chunks: Callable[[Recipe, list[list[tuple[Path, Path]]]], Iterable[list[FileResult]]] | None = None,
) -> BatchReport:
    """Apply ``recipe`` to every image in ``inputs`` and write the results under ``out``.

    Parameters
    ----------
    recipe : Recipe, path or built-in recipe name
        Validated before any image is read.
    inputs : path, glob, or a list of them
        Files (any name), folders (searched recursively for image files) and globs.
    out : path
        Output folder; each input folder's sub-folder structure is kept below it.
    workers : int, default 1
        Processes to use; 1 runs in this process.
    overwrite : bool, default False
        Re-process inputs whose output already exists (otherwise they are "skipped").
    report : path, optional
        Per-file report (input, output, status, error, ms), CSV or JSON by extension;
        relative paths are inside ``out``. ``None`` writes none.
    progress : bool, default True
        Show a progress bar on stderr.
    run_chunks : callable, optional
        Runs the work elsewhere (``--engine ray``): called with the recipe and the chunks of ``(input, output)``
        pairs, it yields each chunk's :class:`FileResult` list (computed by :func:`run_chunk`) in any order.
        The plan, skips, order and report stay this function's.

    Returns
    -------
    BatchReport

    Examples
    --------
    >>> import tempfile, numpy as np, pixlearn
    >>> d = tempfile.mkdtemp()
    >>> _ = pixlearn.write_image(f"{d}/in/a.png", np.zeros((8, 8, 3), np.uint8))
    >>> rep = process({"steps": ["grayscale"]}, f"{d}/in", f"{d}/out", progress=False)
    >>> rep.counts
    {'ok': 1, 'skipped': 0, 'error': 0}
    """
    recipe = load_recipe(recipe)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    out_dir = Path(out)
    sources = expand_sources(inputs if not isinstance(inputs, (str, os.PathLike)) else [inputs])
    if not sources:
        raise ConfigError(f"no images found in {inputs!r}; give files, folders or globs of image files")
    out_resolved = out_dir.resolve()
    sources = [(p, r) for p, r in sources if out_resolved not in p.resolve().parents]  # never eat our own outputs
    plan = plan_outputs(sources, out_dir, recipe)
    t0 = time.perf_counter()
    batch = BatchReport()
    todo: list[tuple[Path, Path]] = []
    for src, dst in plan:
        if not src.exists():
            batch.results.append(FileResult(str(src), str(dst), "error", f"ImageNotFoundError: {src}: no such file or folder"))
        elif dst.exists() and not overwrite:
            batch.results.append(FileResult(str(src), str(dst), "skipped", "output exists (use overwrite to redo)"))
        else:
            todo.append((src, dst))
    out_dir.mkdir(parents=True, exist_ok=True)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        disable=not progress,
        transient=False,
    )
    with bar:
        task = bar.add_task(f"{recipe.name}", total=len(todo))
        if run_chunks is not None and todo:
            size = max(1, min(32, len(todo) // (workers * 8)))
            for results in run_chunks(recipe, [todo[i : i + size] for i in range(0, len(todo), size)]):
                batch.results.extend(results)
                bar.advance(task, len(results))
        elif workers == 1 or len(todo) <= 1:
            for src, dst in todo:
                batch.results.append(_run_one(recipe, src, dst))
                bar.advance(task)
        else:
            size = max(1, min(32, len(todo) // (workers * 8)))
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            # forkserver: workers never inherit this process's threads (the progress bar's among them)
            ctx = multiprocessing.get_context("forkserver")
            # the fork server imports the ops once; each worker forks from it ready to run (a pool then
            # starts in milliseconds instead of every worker importing OpenCV and scikit-image itself)
            ctx.set_forkserver_preload(["cv2", "pixlearn.ops.batch"])
            with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, mp_context=ctx) as pool:
                for results in pool.map(run_chunk, [recipe] * len(chunks), chunks):
                    batch.results.extend(results)
                    bar.advance(task, len(results))
    order = {str(src): i for i, (src, _dst) in enumerate(plan)}
    batch.results.sort(key=lambda r: order.get(r.input, len(order)))
    batch.seconds = time.perf_counter() - t0
    if report is not None:
        report_path = Path(report)
        batch.write(report_path if report_path.is_absolute() else out_dir / report_path)
    return batch
