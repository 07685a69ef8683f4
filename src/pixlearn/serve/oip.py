"""Open Inference Protocol v2 (KServe / Triton REST) routes over the model registry."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
