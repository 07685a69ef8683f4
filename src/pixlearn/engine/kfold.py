"""k-fold cross-validation for any task: the folds of a split plan, the loop over them, the summary.

A task's split plan is a dataclass with ``train``, ``val`` and ``test`` lists (record indices,
file pairs...) and a ``sources`` dict. Fold ``i`` of ``k`` trains on ``train + val`` minus its
``1/k`` part and validates (early stopping, best epoch) on that part; the test split stays out of
every fold and is scored by each fold's model. :func:`run_folds` trains the folds one by one into
``RUN/fold_i/`` and writes the summary at the top: ``metrics.json`` (``kind: "k-fold"``, every
headline metric's mean, standard deviation and per-fold values), ``metrics.csv`` (the per-epoch
rows of every fold) and ``manifest.json``. When every fold's ``metrics.json`` holds a verdict against the task's
baselines, the summary holds the k-fold verdict (:func:`pixlearn.engine.verdict.folds_verdict`: the mean held-out
score against the baselines' means, with the folds' spread) in ``metrics.json`` and ``manifest.json``
(``"verdict"``), which the CLI summary prints and the report opens with.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError
from pixlearn.engine.verdict import folds_verdict

__all__ = ["fold_splits", "fold_of", "summarise_folds", "summarise_split_folds", "run_folds"]


def fold_splits(splits: Any, *, folds: int, seed: int, labels: Sequence[Hashable] | None = None) -> list[Any]:
    """The ``folds`` cross-validation plans of ``splits`` (a dataclass with ``train``/``val``/``test`` lists).

    Parameters
    ----------
    labels : sequence, optional
        One stratum per item of ``train + val`` (in that order) for stratified folds.

    Raises
    ------
    ConfigError
        Fewer than 2 folds, or fewer items than folds.

    Examples
    --------
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class S:
    ...     train: list
    ...     val: list
    ...     test: list
    ...     sources: dict = field(default_factory=dict)
    >>> fs = fold_splits(S(list(range(8)), [8, 9], [10]), folds=5, seed=0)
    >>> len(fs), sorted(v for f in fs for v in f.val), fs[0].test
    (5, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10])
    """
    from pixlearn.data.splits import kfold

    pool = list(splits.train) + list(splits.val)
    if folds < 2:
        raise ConfigError(f"k-fold needs folds >= 2, got {folds}")
    if len(pool) < folds:
        raise ConfigError(f"{folds}-fold cross-validation needs at least {folds} train + val items, there are {len(pool)}; use fewer --folds")
    strata = list(labels) if labels is not None else [0] * len(pool)
    out = []
    for k, (tr, va) in enumerate(kfold(strata, k=folds, seed=seed)):
        sources = dict(getattr(splits, "sources", {}) or {})
        sources["train"] = f"fold {k + 1}/{folds}: train + val minus this fold's part (kfold, seed {seed})"
        sources["val"] = f"fold {k + 1}/{folds}: its 1/{folds} part of train + val"
        changes: dict[str, Any] = {"train": [pool[i] for i in tr], "val": [pool[i] for i in va]}
        if hasattr(splits, "sources"):
            changes["sources"] = sources
        out.append(dataclasses.replace(splits, **changes))
    return out


def fold_of(splits: Any, *, folds: int, fold: int, seed: int, labels: Sequence[Hashable] | None = None) -> Any:
    """Fold ``fold`` (1-based) of :func:`fold_splits`."""
    if not 1 <= fold <= folds:
        raise ConfigError(f"train.fold={fold} but train.folds={folds}; fold must be in 1..{folds}")
    return fold_splits(splits, folds=folds, seed=seed, labels=labels)[fold - 1]


def summarise_folds(per_fold: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{key: {"mean", "std", "per_fold"}}`` for every key that is a number in every fold's metrics.

    >>> summarise_folds([{"psnr": 30.0}, {"psnr": 32.0}], ["psnr", "ssim"])
    {'psnr': {'mean': 31.0, 'std': 1.0, 'per_fold': [30.0, 32.0]}}
    """
    import numpy as np

    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        vals = [m.get(key) for m in per_fold]
        if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            arr = np.asarray(vals, dtype=np.float64)
            out[key] = {"mean": float(arr.mean()), "std": float(arr.std()), "per_fold": [float(v) for v in arr]}
    return out


def summarise_split_folds(per_fold: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`summarise_folds` of the headline split's metrics (named ``<split>_<key>``) and of each fold's own val
    part (``metrics["val"]``, named ``val_<key>``).

    >>> summarise_split_folds([{"split": "test", "acc": 0.5, "val": {"acc": 1.0}}, {"split": "test", "acc": 0.7, "val": {"acc": 0.8}}], ["acc"])
    {'test_acc': {'mean': 0.6, 'std': 0.09999999999999998, 'per_fold': [0.5, 0.7]}, 'val_acc': {'mean': 0.9, 'std': 0.09999999999999998, 'per_fold': [1.0, 0.8]}}
    """
    split = (per_fold[0] if per_fold else {}).get("split", "test")
    out = {f"{split}_{k}": v for k, v in summarise_folds(per_fold, keys).items()}
    out.update({f"val_{k}": v for k, v in summarise_folds([m.get("val") or {} for m in per_fold], keys).items()})
    return out


def run_folds(
    folds: int, run_dir: Path, train_fold: Callable[[int, Path], Any], *, task: str, keys: Sequence[str], config_yaml: str,
    manifest: dict[str, Any], write_text: Callable[[Path, str], Any], write_json: Callable[[Path, Any], Any],
    with_val: bool = False, headline: Sequence[str] = (), write: bool = True,
) -> tuple[dict[str, Any], list[Any]]:
    """Train fold 1..``folds`` with ``train_fold(i, run_dir / f"fold_{i}")`` and write the summary.

    Returns ``metrics.json``'s content and the folds' results.

    ``train_fold`` returns a result with ``metrics``, ``history``, ``best_epoch``, ``epochs_run``
    and ``stop_reason`` (every task's training result has them). ``write_text`` / ``write_json``
    write a file atomically (the run folder's writers). ``with_val`` summarises each fold's own val
    scores too (:func:`summarise_split_folds`); ``headline`` keys also get ``cv["<key>_mean"]`` and
    ``cv["<key>_std"]``. ``write=False`` (a DDP process other than rank 0) trains and writes nothing.
    """
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", config_yaml)
        manifest.update(status="running", task=task, kind="k-fold", folds=folds, run_dir=str(run_dir.resolve()))
        write_json(run_dir / "manifest.json", manifest)
    t0 = time.perf_counter()
    results = [train_fold(i, run_dir / f"fold_{i}") for i in range(1, folds + 1)]
    per_fold = [r.metrics or {} for r in results]
    summary = summarise_split_folds(per_fold, keys) if with_val else summarise_folds(per_fold, keys)
    split = per_fold[0].get("split")
    where = (f"{split}: the same held-out images scored by each fold's model" if split != "val" else
             "val: each fold scored on its own held-out part (no test split)")
    cv: dict[str, Any] = {"folds": folds, "metrics": summary,
                          "split": where + ("; val: each fold's own held-out part" if with_val and split != "val" else "")}
    for key in headline:
        s = summary.get(f"{split}_{key}" if with_val else key) or {}
        cv[f"{key}_mean"], cv[f"{key}_std"] = s.get("mean"), s.get("std")
    metrics: dict[str, Any] = {
        "task": task,
        "kind": "k-fold",
        "split": per_fold[0].get("split"),
        "cv": cv,
        "folds": [{"fold": i + 1, "run_dir": str(r.run_dir), "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                   "stop_reason": getattr(r, "stop_reason", None), **{k: (r.metrics or {}).get(k) for k in keys if k in (r.metrics or {})}}
                  for i, r in enumerate(results)],
        "fit_seconds": round(time.perf_counter() - t0, 3),
    }
    verdict = folds_verdict([m.get("verdict") for m in per_fold])
    if verdict is not None:
        metrics["verdict"] = verdict.to_dict()
    if not write:
        return metrics, results
    write_json(run_dir / "metrics.json", metrics)
    rows = [{"fold": i + 1, **row} for i, r in enumerate(results) for row in r.history]
    cols = list(dict.fromkeys(c for row in rows for c in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({c: "" if row.get(c) is None else row.get(c) for c in cols})
    write_text(run_dir / "metrics.csv", buf.getvalue())
    manifest.update(status="finished", timings={"fit_seconds": metrics["fit_seconds"]})
    if "verdict" in metrics:
        manifest["verdict"] = metrics["verdict"]
    write_json(run_dir / "manifest.json", manifest)
    return metrics, results
