"""``pixlearn process --engine ray``: a recipe over files on Ray Data, with the local path's plan, outputs and report.

:func:`pixlearn.ops.batch.process` plans the outputs, skips what exists, orders the results and writes the
report; only the chunks of ``(input, output)`` pairs run on Ray, in :class:`RecipeWorker` actors that call the
same :func:`pixlearn.ops.batch.run_chunk` the local worker processes call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pixlearn.ops.batch import BatchReport, FileResult, run_chunk
from pixlearn.ops.recipe import Recipe, load_recipe
from pixlearn.scale.cluster import quiet_ray_data, check_address, check_workers, ray_cluster

__all__ = ["RecipeWorker", "ray_process"]


class RecipeWorker:
    """One Ray actor: holds the recipe, runs chunks of ``(input, output)`` pairs with one OpenCV thread."""

    def __init__(self, recipe: Recipe) -> None:
        import cv2

        cv2.setNumThreads(1)
        self.recipe = recipe

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out = []
        for text in batch["pairs"]:
            pairs = [(Path(s), Path(d)) for s, d in json.loads(str(text))]
            out.append(json.dumps([asdict(r) for r in run_chunk(self.recipe, pairs)]))
        return {"results": out}


def _ray_chunks(workers: int):  # type: ignore[no-untyped-def]
    def run_chunks(recipe: Recipe, chunks: list[list[tuple[Path, Path]]]) -> Iterator[list[FileResult]]:
        import ray

        items = [{"pairs": json.dumps([[str(s), str(d)] for s, d in chunk])} for chunk in chunks]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), workers * 4)))
        pool = ray.data.ActorPoolStrategy(size=min(workers, len(items)))  # no worker that would get no chunk
        ds = ds.map_batches(RecipeWorker, fn_constructor_kwargs={"recipe": recipe}, compute=pool, num_cpus=1, batch_size=1,
                            batch_format="numpy")
        with quiet_ray_data():
            for row in ds.iter_rows():
                yield [FileResult(**r) for r in json.loads(str(row["results"]))]

    return run_chunks


def ray_process(
    recipe: Recipe | str | os.PathLike[str],
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    workers: int = 2,
    address: str | None = None,
    overwrite: bool = False,
    report: str | os.PathLike[str] | None = "report.csv",
    progress: bool = True,
) -> BatchReport:
    """``pixlearn process RECIPE INPUTS -o OUT --engine ray``: :func:`pixlearn.ops.batch.process` with its files
    run by ``workers`` Ray actors (1 CPU each).

    Parameters
    ----------
    workers : int, default 2
        Recipe workers, 1..64. Without ``address`` a local cluster of that many CPUs is started and stopped.
    address : str, optional
        ``ray://HOST:PORT``, ``HOST:PORT`` or ``auto``. Inputs and ``out`` must then be paths every node sees
        (a shared filesystem): the workers read and write them.

    Returns
    -------
    BatchReport
        The same results, order, outputs and report file as the local engine.

    Raises
    ------
    ConfigError
        Bad recipe, ``workers`` or ``address``; no inputs.
    RayNotInstalledError, RayConnectionError
        No Ray (``pip install 'pixlearn[ray]'``), or no cluster at ``address``.
    """
    from pixlearn.ops.batch import process

    recipe = load_recipe(recipe)  # validated before Ray starts
    check_workers(workers)
    check_address(address)
    with ray_cluster(address, workers):
        return process(recipe, inputs, out, workers=workers, overwrite=overwrite, report=report, progress=progress,
                       run_chunks=_ray_chunks(workers))
