"""``pixlearn data check`` and ``pixlearn data split``: find dataset problems; write split manifests."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit, output_dir, output_file
from pixlearn.cli._options import AllowOutsideRoot

__all__ = ["register"]


def _read(data: Path, fmt: str | None):
    from pixlearn.data.readers import read_dataset

    return read_dataset(data, format=fmt)


def check(
    data: Annotated[Path, typer.Argument(help="Dataset folder (or annotation file).", show_default=False)],
    from_: Annotated[
        Optional[str], typer.Option("--from", help="Dataset format; detected when left out.")
    ] = None,
    format: Annotated[
        OutputFormat,
        typer.Option(
            "--format", help="table: a human summary; json: the full report; csv: one row per finding."
        ),
    ] = OutputFormat.table,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any error-severity problem is found.")] = False,
    workers: Annotated[int, typer.Option(help="Parallel worker processes decoding images.", min=1)] = 1,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Also write the full report as JSON to this file.")
    ] = None,
    min_per_class: Annotated[
        int, typer.Option(help="Classes with fewer images are reported as tiny.", min=0)
    ] = 10,
    near_duplicate_distance: Annotated[
        int,
        typer.Option(
            help="Largest perceptual-hash distance (of 64 bits) for near-duplicates.", min=0, max=64
        ),
    ] = 4,
    imbalance_ratio: Annotated[
        float, typer.Option(help="Warn when the largest class is this many times the smallest.", min=1.0)
    ] = 10.0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Check a dataset: counts per class and split, image sizes, unreadable files, exact and
    near duplicates, leaks across splits, empty/tiny classes, imbalance, bad boxes and masks.

    Mask values (the rule every pixlearn command uses): if every mask holds only 0 and 255 (and a class map, if any, names two classes), the set is binary -- 0 is background, 255 is foreground (class 1); otherwise each value is a class index and 255 marks pixels to ignore. Palette PNG masks are read by index, not colour.

    Files are only read. Exit 0 unless --strict is given and an error was found (exit 1).
    """
    from pixlearn.data.check import check_dataset

    if out is not None:
        output_file(out)
    index = _read(data, from_)
    report = check_dataset(
        index,
        near_duplicate_distance=near_duplicate_distance,
        min_per_class=min_per_class,
        imbalance_ratio=imbalance_ratio,
        workers=workers,
        progress=progress,
    )
    if format is OutputFormat.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    elif format is OutputFormat.csv:
        rows = [
            {**f.to_dict(), "files": ";".join(f.files), "details": json.dumps(f.details)}
            for f in report.findings
        ]
        emit(rows, format, columns=["severity", "code", "message", "files", "details"])
    else:
        sys.stdout.write(report.summary() + "\n")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        sys.stderr.write(f"wrote {out}\n")
    if strict and report.has_errors:
        sys.stderr.write(f"{len(report.errors)} error(s) found (--strict)\n")
        raise typer.Exit(1)


def _parse_ratios(text: str) -> tuple[float, ...]:
    from pixlearn._core.errors import ConfigError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"--ratios expects comma-separated numbers such as 0.8,0.1,0.1, got {text!r}"
        ) from None


def _class_name(index: Any, label: int | None) -> str:
    if label is None:
        return "(no class)" if index.classes else "(all)"
    return index.classes[label] if 0 <= label < len(index.classes) else str(label)


def _count_rows(index: Any, labels: list[int | None], parts: dict[str, list[int]]) -> list[dict[str, Any]]:
    names = [_class_name(index, v) for v in labels]
    order = list(
        dict.fromkeys([*(_class_name(index, i) for i in range(len(index.classes))), *sorted(set(names))])
    )
    order = [c for c in order if c in set(names)]
    counts = {p: Counter(names[i] for i in idx) for p, idx in parts.items()}
    rows = []
    for c in order:
        row: dict[str, Any] = {"class": c}
        row.update({p: counts[p].get(c, 0) for p in parts})
        row["total"] = sum(row[p] for p in parts)
        rows.append(row)
    total: dict[str, Any] = {"class": "total"}
    total.update({p: len(idx) for p, idx in parts.items()})
    total["total"] = sum(total[p] for p in parts)
    rows.append(total)
    return rows


def split(
    data: Annotated[Path, typer.Argument(help="Dataset folder (or annotation file).", show_default=False)],
    from_: Annotated[
        Optional[str], typer.Option("--from", help="Dataset format; detected when left out.")
    ] = None,
    ratios: Annotated[str, typer.Option(help="train,val[,test] shares summing to 1.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Same seed, same split.")] = 0,
    group_near_duplicates: Annotated[
        bool, typer.Option(help="Keep near-identical images in one split (decodes every image).")
    ] = False,
    near_duplicate_distance: Annotated[
        int, typer.Option(help="Largest perceptual-hash distance for --group-near-duplicates.", min=0, max=64)
    ] = 4,
    folds: Annotated[
        Optional[int],
        typer.Option(help="Write K stratified folds (fold_<i>.csv) instead of one split.", min=2),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help="Manifest file, or folder for splits.csv / fold_<i>.csv (default: the dataset root).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Parallel worker processes for hashing.", min=1)] = 1,
    format: Annotated[
        OutputFormat, typer.Option("--format", help="How the class counts print.")
    ] = OutputFormat.table,
    overwrite: Annotated[bool, typer.Option(help="Replace manifests that already exist.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    allow_outside_root: AllowOutsideRoot = False,
) -> None:
    """Make a seeded, stratified train/val/test split (or K folds) and write it as a CSV manifest.

    The manifest lists path,label,split with paths relative to the dataset root (plus a group
    column when grouping); the dataset's files are never moved or changed. Classes keep their
    proportions; groups the dataset gives (and, with --group-near-duplicates, near-identical
    images) never straddle two splits. Prints the class counts per split.
    """
    from pixlearn._core.errors import ConfigError
    from pixlearn._core.types import Task
    from pixlearn.data.splits import (
        group_ids_from_hashes,
        kfold,
        stratified_split,
        stratify_labels,
        write_split_manifest,
    )

    shares = _parse_ratios(ratios)
    if out is not None:
        output_file(out) if out.suffix.lower() == ".csv" else output_dir(out)
    index = _read(data, from_)
    if not len(index):
        raise ConfigError(f"{data}: the dataset has no records to split")
    root = Path(index.root)
    had = [s for s in index.splits() if s is not None]
    if had:
        sys.stderr.write(
            f"note: the existing splits ({', '.join(had)}) are ignored; "
            f"the new split covers all {len(index)} records\n"
        )
    labels = stratify_labels(index)
    if index.task in (Task.DETECT, Task.INSTANCE):
        sys.stderr.write("stratified on each image's most frequent box class (the table counts images)\n")
    elif all(v is None for v in labels):
        sys.stderr.write(f"no class to stratify on for {index.task.value} data: a seeded random split\n")
    groups: list[str] | None = None
    if group_near_duplicates:
        groups = group_ids_from_hashes(index, near_duplicate_distance, workers=workers, progress=progress)
        merged = len(index) - len(set(groups))
        sys.stderr.write(
            f"grouped near-identical images: {len(set(groups))} groups for {len(index)} images "
            f"({merged} joined)\n"
        )
    elif any(r.group is not None for r in index.records):
        groups = [str(r.group) if r.group is not None else f"_record{i}" for i, r in enumerate(index.records)]
        sys.stderr.write(f"keeping the dataset's {len(set(groups))} groups together\n")

    if folds is None:
        dest = out if out is not None else root
        if dest.suffix.lower() != ".csv":
            dest = dest / "splits.csv"
        parts = stratified_split(labels, ratios=shares, seed=seed, groups=groups)
        written = write_split_manifest(index, parts, dest, groups=groups, overwrite=overwrite)
        emit(_count_rows(index, labels, parts), format)
        sys.stderr.write(f"wrote {written} ({', '.join(f'{k} {len(v)}' for k, v in parts.items())})\n")
        _note_outside(Path(written).parent, root)
        return

    dest_dir = out if out is not None else root
    if dest_dir.suffix.lower() == ".csv":
        raise ConfigError(f"--folds writes one file per fold; give --out a folder, not {dest_dir}")
    paths = [dest_dir / f"fold_{i}.csv" for i in range(folds)]
    clash = [p for p in paths if p.exists()]
    if clash and not overwrite:
        raise ConfigError(f"{clash[0]} already exists; choose another --out folder or pass --overwrite")
    result = kfold(labels, k=folds, seed=seed, groups=groups)
    for path, (train_idx, val_idx) in zip(paths, result):
        write_split_manifest(
            index, {"train": train_idx, "val": val_idx}, path, groups=groups, overwrite=overwrite
        )
    emit(_count_rows(index, labels, {f"fold_{i}": val for i, (_, val) in enumerate(result)}), format)
    sys.stderr.write(
        f"wrote {len(paths)} folds to {dest_dir} "
        "(fold_<i>.csv: train + val; the table shows each fold's val counts)\n"
    )
    _note_outside(dest_dir, root)


def _note_outside(manifest_dir: Path, root: Path) -> None:
    """Say how to read a manifest written outside the dataset folder (its paths lead out of its own folder)."""
    from pixlearn._core.paths import is_inside

    if not is_inside(root, manifest_dir):
        sys.stderr.write(
            "note: the manifest lies outside the dataset folder, so its paths lead out of the manifest's folder; "
            "read it with --allow-outside-root\n"
        )


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("split")(split)
