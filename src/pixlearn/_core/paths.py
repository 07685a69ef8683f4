"""Where pixlearn and the libraries it uses keep their caches (computed, never created at import)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "torch_hub_dir", "hf_cache_dir", "offline_mode"]


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_dir() -> Path:
    """pixlearn's own cache: ``$PIXLEARN_CACHE``, else ``$XDG_CACHE_HOME/pixlearn`` (``~/.cache/pixlearn``)."""
    env = os.environ.get("PIXLEARN_CACHE")
    return Path(env) if env else _xdg_cache() / "pixlearn"


def torch_hub_dir() -> Path:
    """Where torchvision/timm look for downloaded weights (``$TORCH_HOME/hub``)."""
    env = os.environ.get("TORCH_HOME")
    return (Path(env) if env else _xdg_cache() / "torch") / "hub"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    env = os.environ.get("HF_HOME")
    return (Path(env) if env else _xdg_cache() / "huggingface") / "hub"


def offline_mode() -> bool:
    """True when the user asked for no network at all (``PIXLEARN_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true)."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("PIXLEARN_OFFLINE", "HF_HUB_OFFLINE")
    )
