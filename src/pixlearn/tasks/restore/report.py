"""A restoration run's ``report.html``: the verdict against the degraded input and the best classical method, then the
model beside every method (PSNR, SSIM, seconds), on the engine's shared page head and finish (:mod:`pixlearn.engine.report`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_restore_report"]


def write_restore_report(
    run_dir: Path, cfg: Any, data: Any, metrics: Mapping[str, Any], result: Any, *, model_kwargs: Any, fit_seconds: float,
    plots: Sequence[tuple[str | os.PathLike[str], str]] = (),
) -> Path:
    """Write ``run_dir/report.html`` from a finished run's ``metrics.json`` content, its config, data plan and result."""
    from pixlearn.engine.budget import describe_stop
    from pixlearn.engine.report import write_run_report
    from pixlearn.tasks.restore.metrics import method_table

    table = method_table(metrics["methods"])
    split = metrics["split"]
    details = {
        "restoration task": cfg.data.task,
        "model": f"{cfg.model.name} {model_kwargs}",
        "degradation": metrics["degradation"],
        "grey / colour": "grey (L)" if data.mode == "L" else "colour (RGB)",
        "patches": f"{cfg.data.patch} px, {cfg.data.patches_per_image} per image per epoch, batch {cfg.data.batch_size}",
        "loss": cfg.train.loss,
        "epochs run": f"{result.epochs_run} of {cfg.train.epochs}",
        "stopped by": describe_stop(result.stop_reason, epochs_run=result.epochs_run, epochs=cfg.train.epochs, minutes=cfg.train.minutes),
        "best epoch": result.best_epoch,
        "fit seconds": round(fit_seconds, 1),
        **{f"{r['method']} ({split}, n={r['n']})": f"PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, {r['seconds']:.1f} s" for r in table},
        "data": str(Path(data.root).resolve()),
        "run folder": str(run_dir.resolve()),
    }
    return write_run_report(
        run_dir / "report.html", title=f"pixlearn train restore: {cfg.model.name} ({cfg.data.task}) on {Path(data.root).name}",
        scores=[], splits=[{"split": k, **v} for k, v in metrics["splits"].items()], details=details,
        plots=plots, notes=[metrics["note"]], verdict=metrics.get("verdict"),
    )
