"""``pixlearn train restore``: train a denoiser, super-resolution or enhancement model on clean images (or pairs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["restore", "register"]


def _rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    split, n = metrics.get("split"), metrics.get("n")
    rows = []
    for method, s in sorted(metrics.get("methods", {}).items(), key=lambda kv: -kv[1]["psnr"]):
        rows.append({"method": method, f"psnr ({split}, n={n})": round(s["psnr"], 3), "ssim": round(s["ssim"], 4), "seconds": round(s["seconds"], 2)})
    return rows


def restore(
    data: Annotated[Optional[Path], typer.Option("--data", help="Clean images (optionally train/ val/ test/), or degraded/ + clean/ pairs.", show_default=False)] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="denoise (default), super-resolution or enhance.", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="dncnn (default), unet, espcn or edsr (the last two upsample).", show_default=False)] = None,
    sigma: Annotated[Optional[str], typer.Option("--sigma", help="Gaussian noise in grey levels (default 25), or a range LOW..HIGH for a blind denoiser.", show_default=False)] = None,
    noise: Annotated[Optional[str], typer.Option("--noise", help="denoise: gaussian (default), poisson or salt_pepper.", show_default=False)] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", help="super-resolution factor (default 2).", min=2, max=8, show_default=False)] = None,
    degrade: Annotated[Optional[str], typer.Option("--degrade", help="Custom degradation, e.g. 'blur:sigma=1..2+jpeg:quality=20..60'.", show_default=False)] = None,
    patch: Annotated[Optional[int], typer.Option("--patch", help="Training patch side in pixels (default 48).", min=8, show_default=False)] = None,
    patches_per_image: Annotated[Optional[int], typer.Option("--patches-per-image", help="Random patches per image per epoch (default 16).", min=1, show_default=False)] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="dncnn: layers (default 17).", min=2, show_default=False)] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Channels: dncnn / espcn / edsr (default 64), unet first level (default 32).", min=2, show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs (default 20).", min=1, show_default=False)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Patches per batch (default 32).", min=1, show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (default 1e-3).", show_default=False)] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="l1, l2 or charbonnier (default: l2 for denoise, else l1).", show_default=False)] = None,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="Stop training after this wall time.", show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="auto (default), L (grey) or RGB (colour).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (sections data, model, optim, schedule, train); flags override it.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (default runs/restore/<model>-<task>).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the split, initialisation, patches and degradations (default 0).", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Data-loading worker processes (default 0).", min=0, show_default=False)] = None,
    accelerator: Annotated[Optional[str], typer.Option("--accelerator", help="auto, cpu or gpu.", show_default=False)] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config field: --set data.clip=false (repeatable).", show_default=False)] = None,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).", show_default=False)] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output: table, json (the whole metrics.json) or csv.")] = OutputFormat.table,
) -> None:
    """Train a restorer; writes runs/restore/<name>/ with weights, metrics, side-by-side crops and report.html.

    The final scores are PSNR / SSIM on whole held-out images (test split, else val), for the
    model, the degraded input and the classical methods on the same images.
    """
    import yaml

    from pixlearn._core.errors import ConfigError
    from pixlearn.train.restore import train_restorer
    from pixlearn.train.restore_config import RESTORE_FLAT_KEYS

    options: dict[str, Any] = {
        "task": task, "model": model, "sigma": sigma, "noise": noise, "scale": scale, "degrade": degrade, "patch": patch,
        "patches_per_image": patches_per_image, "depth": depth, "width": width, "epochs": epochs, "batch": batch, "lr": lr,
        "loss": loss, "max_minutes": max_minutes, "mode": mode, "seed": seed, "workers": workers, "accelerator": accelerator,
    }
    for text in set_ or []:
        key, eq, raw = text.partition("=")
        name = key.strip().split(".")[-1]
        if not eq:
            raise ConfigError(f"--set needs KEY=VALUE, got {text!r}")
        if name not in RESTORE_FLAT_KEYS:
            from pixlearn._core.names import check_name

            check_name(name, RESTORE_FLAT_KEYS, what="config key")
        options[name] = yaml.safe_load(raw) if raw.strip() else None
    result = train_restorer(str(data) if data else None, out=out, config=config, progress=progress, **options)
    metrics = result.metrics or {}
    if format is OutputFormat.json:
        emit(metrics, format)
    else:
        emit(_rows(metrics), format)
    sys.stderr.write(f"run folder: {result.run_dir}\n")


def register(app: typer.Typer) -> None:
    app.command("restore")(restore)
