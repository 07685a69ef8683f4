"""``pixlearn info`` and ``pixlearn show``: the environment, and what images are."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["register", "environment_report"]

_PACKAGES = (
    "numpy",
    "pillow",
    "opencv-python-headless",
    "scikit-image",
    "scikit-learn",
    "torch",
    "torchvision",
    "timm",
    "lightning",
    "onnxruntime",
    "fastapi",
)


def _version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _torch_report() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # not installed, or a broken install
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    cuda = torch.cuda.is_available()
    report: dict[str, Any] = {
        "available": True,
        "device": "cuda" if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
    }
    if cuda:
        report["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        report["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    return report


def environment_report() -> dict[str, Any]:
    """Versions, torch device and threads, offline status, cache folders and local weights folders, as a dict."""
    from pixlearn import __version__
    from pixlearn._core.paths import cache_dir, hf_cache_dir, offline_mode, torch_hub_dir
    from pixlearn.io import DEFAULT_MAX_PIXELS

    return {
        "pixlearn": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": {name: _version_of(name) for name in _PACKAGES},
        "torch": _torch_report(),
        "offline": {
            "requested": offline_mode(),
            "policy": "nothing is downloaded unless asked (pretrained=True / --pretrained)",
        },
        "caches": {
            "pixlearn": str(cache_dir()),
            "torch_hub": str(torch_hub_dir()),
            "huggingface": str(hf_cache_dir()),
        },
        "weights": _weights_report(),
        "max_pixels": int(os.environ.get("PIXLEARN_MAX_PIXELS") or DEFAULT_MAX_PIXELS),
    }


def _weights_report() -> dict[str, Any]:
    """The local pretrained-weights folders in search order, each with its number of files (no torch import)."""
    from pixlearn._core.paths import weights_dirs

    folders = []
    for folder in weights_dirs():
        try:
            files = sum(1 for p in folder.iterdir() if p.name.endswith(".safetensors") and not p.name.startswith("."))
        except OSError:  # not created yet, or unreadable
            files = 0
        folders.append({"folder": str(folder), "files": files})
    return {
        "folders": folders,
        "policy": "--pretrained looks here (PIXLEARN_WEIGHTS, then the cache) for <model>.<tag>.safetensors or "
                  "<model>.safetensors before any download; add files with pixlearn weights add FILE --model NAME",
    }


def info(
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Show versions, the torch device and threads, offline status, cache folders and the local weights folders
    (with how many .safetensors files each holds)."""
    emit(environment_report(), format)


def show(
    images: Annotated[list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    decode: Annotated[bool, typer.Option(help="Also decode the pixels to prove the file is whole.")] = True,
) -> None:
    """Show each image's format, size, mode, EXIF orientation, or why it is refused.

    Exits 1 when any image was refused.
    """
    from pixlearn._core.errors import PixlearnError
    from pixlearn.io import expand_sources, image_info, read_image

    rows: list[dict[str, Any]] = []
    failed = 0
    sources = expand_sources(images)
    if not sources:
        raise typer.BadParameter(f"no images found in {', '.join(images)}", param_hint="IMAGES")
    for path, _root in sources:
        row: dict[str, Any] = {"path": str(path)}
        try:
            meta = image_info(path)
            if decode:
                read_image(path, mode="unchanged")
            row.update(
                status="ok",
                format=meta.format,
                width=meta.width,
                height=meta.height,
                mode=meta.mode,
                bit_depth=meta.bit_depth,
                frames=meta.frames,
                orientation=meta.orientation,
                bytes=meta.nbytes,
            )
        except PixlearnError as exc:
            failed += 1
            row.update(status="refused", error=type(exc).__name__, reason=str(exc))
        rows.append(row)
    columns = ["path", "status", "format", "width", "height", "mode", "bit_depth", "frames", "orientation", "bytes", "error", "reason"]
    emit(rows, format, columns=columns)
    if failed:
        sys.stderr.write(f"{failed} of {len(rows)} image(s) refused\n")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("show")(show)
