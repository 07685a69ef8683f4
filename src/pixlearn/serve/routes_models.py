"""``/v1/health`` and ``/v1/models``: list, show and delete registered models."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from pixlearn import __version__
from pixlearn.serve.deps import get_registry, run_blocking
from pixlearn.serve.registry import ModelRegistry

__all__ = ["router", "Health", "ModelRecord", "ModelList"]

router = APIRouter(tags=["models"])


class DemoStatus(BaseModel):
    status: str = Field(description="training, ready or failed")
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    ready: bool = Field(description="False until start-up has finished (models registered and loaded).")
    models: int = Field(description="Registered models.")
    demo: DemoStatus | None = Field(None, description="With --demo: how the demo model is doing.")


class ModelRecord(BaseModel):
    name: str
    task: str = Field(examples=["classify"])
    classes: list[str]
    metrics: dict[str, Any] = Field(description="The run's final metrics summary (split, accuracy, macro_f1...; verdict: "
                                                "whether it beats chance and the majority class on that split, in words).")
    created: str = Field(description="ISO 8601 time of registration (UTC).")
    source: Literal["cli", "training"] = Field(description="cli: --model at start-up; training: trained by the service.")
    run_dir: str = Field(description="The run folder: relative to the server's storage folder for a model the service "
                                     "trained, else the folder's name (the server's paths are not shown).")
    architecture: str
    input_shape: list[int] = Field(description="[C, H, W]")
    general: bool = Field(False, description="Labels any photo: /v1/analyze shows its labels without being asked "
                                             "(pixlearn serve --general-model RUN_DIR); else only with models=NAME.")
    backend: Literal["torch", "onnxruntime"] = Field("torch", description="What runs the model: torch (a run folder) or "
                                                     "onnxruntime (an exported model: pixlearn export RUN --format onnx).")


class ModelList(BaseModel):
    models: list[ModelRecord]


@router.get("/v1/health", summary="Liveness and version (no key needed)", response_model=Health,
            response_model_exclude_none=True)
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
        error = demo.error
        if error and registry is not None:
            from pixlearn.serve.security import hide_paths

            error = hide_paths(str(error), registry.storage)
        out["demo"] = {"status": demo.status, "error": error}
    return out


@router.get("/v1/models", summary="List the registered models", response_model=ModelList)
async def list_models(registry: ModelRegistry = Depends(get_registry)) -> dict[str, Any]:
    """``{"models": [record, ...]}``, oldest first.

    A record: ``{"name", "task", "classes", "metrics", "created", "source", "run_dir", "architecture", "input_shape", "general",
    "backend"}``;
    ``run_dir`` is relative to the storage folder (models the service trained) or the folder's name.
    """
    return {"models": [registry.public(r) for r in await run_blocking(registry.list)]}


@router.get("/v1/models/{name}", summary="Show one model", response_model=ModelRecord)
async def show_model(name: str, registry: ModelRegistry = Depends(get_registry)) -> dict[str, Any]:
    """The model's record; 404 (naming the closest models) when there is none."""
    return registry.public(await run_blocking(registry.get, name))


@router.delete("/v1/models/{name}", status_code=204, summary="Delete a model", response_class=Response)
async def delete_model(name: str, registry: ModelRegistry = Depends(get_registry)) -> Response:
    """Remove the model from the registry: a run folder given with ``--model`` is never deleted; the files of a
    model the service trained are."""
    await run_blocking(registry.delete, name)
    return Response(status_code=204)
