"""Training jobs of the service: ``/v1/trainings`` (work in progress; the full manager follows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

__all__ = ["JobManager", "router"]

router = APIRouter()


class JobManager:
    """Queue and run training jobs in separate processes (stub until the manager lands)."""

    def __init__(self, settings: Any, engine: Any, registry: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.storage = Path(settings.storage)

    def start(self) -> None:
        """Start dispatching queued jobs (no-op for now)."""

    def shutdown(self) -> None:
        """Stop dispatching (no-op for now)."""
