"""The training engine: Lightning loop, callbacks, checkpoints, cross-validation.

``train_classifier(data, model=..., epochs=...)`` trains an image classifier and writes its run
folder. Importing this package starts nothing and loads no torch: names resolve on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "train_classifier": "classify",
    "TrainResult": "classify",
    "ClassifyConfig": "config",
    "DataConfig": "config",
    "ModelConfig": "config",
    "OptimConfig": "config",
    "ScheduleConfig": "config",
    "TrainConfig": "config",
    "load_config": "config",
    "save_config": "config",
    "EngineModule": "engine",
    "EngineOptions": "engine",
    "TrainingDivergedError": "engine",
    "EpochSampler": "sampling",
    "train_segmenter": "segment",
    "SegmentConfig": "segment_config",
    "train_restorer": "restore",
    "RestoreResult": "restore",
    "RestoreConfig": "restore_config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pixlearn.train' has no attribute {name!r}")
    value = getattr(import_module(f"pixlearn.train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
