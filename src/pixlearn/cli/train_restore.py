"""``pixlearn train restore``: train a denoiser, super-resolution or enhancement model on clean images (or pairs)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from pixlearn.cli.train_options import TaskHelp, TrainOptions, finish, train_command

__all__ = ["restore", "register"]


def _rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    split, n = metrics.get("split"), metrics.get("n")
    rows = []
    for method, s in sorted(metrics.get("methods", {}).items(), key=lambda kv: -kv[1]["psnr"]):
        rows.append({"method": method, f"psnr ({split}, n={n})": round(s["psnr"], 3), "ssim": round(s["ssim"], 4), "seconds": round(s["seconds"], 2)})
    return rows


HELP = TaskHelp(
    data="Clean images (optionally train/ val/ test/), or degraded/ + clean/ pairs.",
    model="dncnn (default), unet (the default of a --minutes run without --epochs), espcn or edsr (the last two upsample).",
    epochs="Maximum epochs (default 20).",
    img_size="Side of the clean training patches in pixels (default 48).",
    batch="Patches per batch (default 32).",
    lr="Peak learning rate (default 1e-3).",
    weights="Start from a restorer's weights (e.g. a run's weights/best.safetensors).",
    out="Run folder (default runs/restore/<model>-<task>).",
    set_example="data.clip=false",
)


def restore(
    opts: TrainOptions,
    task: Annotated[Optional[str], typer.Option("--task", help="denoise (default), super-resolution or enhance.", show_default=False)] = None,
    sigma: Annotated[Optional[str], typer.Option("--sigma", help="Gaussian noise in grey levels (default 25), or a range LOW..HIGH for a blind denoiser.", show_default=False)] = None,
    noise: Annotated[Optional[str], typer.Option("--noise", help="denoise: gaussian (default), poisson or salt_pepper.", show_default=False)] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", help="super-resolution factor (default 2).", min=2, max=8, show_default=False)] = None,
    degrade: Annotated[Optional[str], typer.Option("--degrade", help="Custom degradation, e.g. 'blur:sigma=1..2+jpeg:quality=20..60'.", show_default=False)] = None,
    patches_per_image: Annotated[Optional[int], typer.Option("--patches-per-image", help="Random patches per image per epoch (default 16).", min=1, show_default=False)] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="dncnn: layers (default 17).", min=2, show_default=False)] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Channels: dncnn / espcn / edsr (default 64), unet first level (default 32).", min=2, show_default=False)] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="l1, l2 or charbonnier (default: l2 for denoise, else l1).", show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="auto (default), L (grey) or RGB (colour).", show_default=False)] = None,
    accelerator: Annotated[Optional[str], typer.Option("--accelerator", help="auto, cpu or gpu.", show_default=False)] = None,
) -> None:
    """Train a restorer; writes runs/restore/<name>/ with weights, metrics, side-by-side crops and report.html.

    The final scores are PSNR / SSIM on whole held-out images (test split, else val), for the
    model, the degraded input and the classical methods on the same images.
    """
    from pixlearn.tasks.registry import task as get_task

    train_restorer = get_task("restore").load("train")

    own: dict[str, Any] = {
        "task": task, "sigma": sigma, "noise": noise, "scale": scale, "degrade": degrade, "patches_per_image": patches_per_image,
        "depth": depth, "width": width, "loss": loss, "mode": mode, "accelerator": accelerator,
    }
    opts.require_data()
    result = train_restorer(str(opts.data) if opts.data else None, out=opts.out, config=opts.config, resume=opts.resume,
                            extend=opts.extend, set=opts.set_ or (), progress=opts.progress, **opts.flat(),
                            **{k: v for k, v in own.items() if v is not None})
    finish(result, opts, _rows)


def register(app: typer.Typer) -> None:
    """Add ``restore`` to the ``train`` group."""
    train_command(app, "restore", HELP)(restore)
