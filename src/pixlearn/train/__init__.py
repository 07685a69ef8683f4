"""Training entry points, re-exported from the engine and the task packages (this facade holds no code).

``train_classifier(data, model=..., epochs=...)`` trains an image classifier and writes its run folder;
``train_segmenter`` and ``train_restorer`` do the same for segmentation and restoration. Importing this package
starts nothing and loads no torch: names resolve on first use. The code lives in ``pixlearn.engine`` (the loop,
callbacks, run folder, config base) and ``pixlearn.tasks.<task>`` (each task's config, data, module and trainer);
an old module path such as ``pixlearn.tasks.segment.train`` raises an error naming its new place.
"""

from __future__ import annotations

from pixlearn._core.facade import lazy_exports, moved_modules

_LAZY = {
    "train_classifier": "pixlearn.tasks.classify.train",
    "TrainResult": "pixlearn.engine.trainer",
    "ClassifyConfig": "pixlearn.tasks.classify.config",
    "DataConfig": "pixlearn.tasks.classify.config",
    "ModelConfig": "pixlearn.tasks.classify.config",
    "OptimConfig": "pixlearn.engine.config",
    "ScheduleConfig": "pixlearn.engine.config",
    "TrainConfig": "pixlearn.tasks.classify.config",
    "RunConfig": "pixlearn.engine.config",
    "load_config": "pixlearn.tasks.classify.config",
    "save_config": "pixlearn.tasks.classify.config",
    "EngineModule": "pixlearn.engine.module",
    "EngineOptions": "pixlearn.engine.module",
    "TrainingDivergedError": "pixlearn.engine.module",
    "EpochSampler": "pixlearn.engine.sampling",
    "train_segmenter": "pixlearn.tasks.segment.train",
    "SegmentConfig": "pixlearn.tasks.segment.config",
    "train_restorer": "pixlearn.tasks.restore.train",
    "RestoreResult": "pixlearn.tasks.restore.train",
    "RestoreConfig": "pixlearn.tasks.restore.config",
}

_MOVED = {
    "pixlearn.train.engine": "pixlearn.engine.module",
    "pixlearn.train.callbacks": "pixlearn.engine.callbacks",
    "pixlearn.train.runs": "pixlearn.engine.runs",
    "pixlearn.train.sampling": "pixlearn.engine.sampling",
    "pixlearn.train.config": "pixlearn.tasks.classify.config (the RunConfig base: pixlearn.engine.config)",
    "pixlearn.train.classify": "pixlearn.tasks.classify.train",
    "pixlearn.train.segment": "pixlearn.tasks.segment.train",
    "pixlearn.train.segment_config": "pixlearn.tasks.segment.config",
    "pixlearn.train.restore": "pixlearn.tasks.restore.train",
    "pixlearn.train.restore_config": "pixlearn.tasks.restore.config",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
moved_modules(_MOVED)
