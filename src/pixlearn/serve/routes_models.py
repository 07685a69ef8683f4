"""``/v1/health`` and ``/v1/models``: list, show and delete registered models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from pixlearn import __version__
from pixlearn.serve.deps import get_registry, run_blocking
from pixlearn.serve.registry import ModelRegistry

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get("/v1/health", summary="Liveness and version (no key needed)")
def health(request: Request) -> dict[str, Any]:
    """``{"status": "ok", "version", "ready", "models"}``; ``ready`` is false until start-up has finished.

    With ``--demo``, ``demo`` tells how the demo model is doing: training, ready or failed.
    """
    state = request.app.state
    registry = getattr(state, "registry", None)
    out: dict[str, Any] = {"status": "ok", "version": __version__, "ready": bool(getattr(state, "ready", False)),
                           "models": len(registry.names()) if registry is not None else 0}
    demo = getattr(state, "demo", None)
    if demo is not None:
        out["demo"] = {"status": demo.status, "error": demo.error}
    return out


@router.get("/v1/models", summary="List the registered models")
async def list_models(registry: ModelRegistry = Depends(get_registry)) -> dict[str, Any]:
    """``{"models": [record, ...]}``, oldest first.

    A record: ``{"name", "task", "classes", "metrics", "created", "source", "run_dir", "architecture", "input_shape"}``.
    """
    return {"models": await run_blocking(registry.list)}


@router.get("/v1/models/{name}", summary="Show one model")
async def show_model(name: str, registry: ModelRegistry = Depends(get_registry)) -> dict[str, Any]:
    """The model's record; 404 (naming the closest models) when there is none."""
    return await run_blocking(registry.get, name)


@router.delete("/v1/models/{name}", status_code=204, summary="Delete a model", response_class=Response)
async def delete_model(name: str, registry: ModelRegistry = Depends(get_registry)) -> Response:
    """Remove the model from the registry: a run folder given with ``--model`` is never deleted; the files of a
    model the service trained are."""
    await run_blocking(registry.delete, name)
    return Response(status_code=204)
