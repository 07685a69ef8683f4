"""Detection branch of ``pixlearn eval``: a detection run (or a detector ``.onnx``) scored with COCO's metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["is_detect_eval", "evaluate_detect", "DETECT_ROWS"]

#: The rows ``pixlearn eval`` prints for a detection run: COCO's names, pixlearn's keys.
DETECT_ROWS = (("AP", "map"), ("AP50", "map50"), ("AP75", "map75"), ("AP small", "map_small"),
               ("AP medium", "map_medium"), ("AP large", "map_large"), ("AR@100", "mar_100"))


def is_detect_eval(run: Optional[Path]) -> bool:
    """A detection run folder (its model card says ``detect``) or a detector ``.onnx`` file."""
    if run is None:
        return False
    if Path(run).suffix.lower() == ".onnx":
        return True
    from pixlearn.tasks.registry import task as get_task

    return bool(get_task("detect").load("is_run")(run))


def evaluate_detect(run: Path, data: Path, *, split: str, out: Optional[Path], device: str, progress: Optional[bool],
                    format: OutputFormat) -> dict[str, Any]:
    """Score the detector on DIR: one row per COCO score, box and (instance segmentation) mask columns, the split named."""
    from pixlearn.tasks.registry import task as get_task

    res = get_task("detect").load("evaluate")(run, data, split=split, out=out, device=device, progress=progress)
    if format is OutputFormat.json:
        emit(res, format)
    else:
        head = f"{res['split']} (n={res['n']}, {res['objects']} objects)"
        rows = []
        for label, key in DETECT_ROWS:
            row: dict[str, Any] = {"metric": label, f"box {head}": res.get(key)}
            if res.get("masks"):
                row[f"mask {head}"] = res.get(f"mask_{key}")
            rows.append(row)
        emit(rows, format)
    sys.stderr.write(f"scored on: {res['source']}" + (f"; {res['skipped']} unreadable image(s) left out" if res.get("skipped") else "")
                     + ("; an empty cell: nothing to average there, e.g. no object of that size (COCO's -1)" if any(res.get(k) is None for _, k in DETECT_ROWS) else "") + "\n")
    if res.get("dropped"):
        sys.stderr.write(f"{res['dropped']} detection(s) of classes {data} does not have were not scored\n")
    if out is not None:
        sys.stderr.write(f"report: {Path(out) / 'report.html'}\n")
    return res
