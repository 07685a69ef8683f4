"""Semantic segmentation on the engine: one package, one module per concern (importing it loads no torch).

``config`` (:class:`~pixlearn.tasks.segment.config.SegmentConfig`), ``data`` (mask datasets, splits, tiles),
``module`` (:class:`~pixlearn.tasks.segment.module.SegmentTask`: loss and metrics around the network), ``train``
(:func:`~pixlearn.tasks.segment.train.train_segmenter`), ``metrics`` (one confusion matrix: IoU, Dice),
``evaluate``, ``predict`` (a run folder as a :class:`~pixlearn.tasks.segment.predict.Segmenter`), ``plots``,
``report`` and ``classic`` (the classical baselines every report compares against).
"""

from pixlearn._core.facade import lazy_exports
from pixlearn.tasks.registry import TaskSpec, register

#: What ``pixlearn.tasks.segment`` held when it was one module keeps resolving, lazily, from ``.module``.
_LAZY = dict.fromkeys(("SegmentTask", "LOSSES", "parse_loss", "SegmentLoss", "confusion_metric_class", "logits_to_mask"), "pixlearn.tasks.segment.module")
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

#: This task's registry entry: how ``pixlearn train/predict/eval`` and the service reach it.
SPEC = register(TaskSpec(
    name="segment",
    summary="Semantic segmentation: images and masks in, a segmenter run folder out (beside the classical baselines).",
    package=__name__,
    entry={
        "train": "pixlearn.tasks.segment.train:train_segmenter",
        "config": "pixlearn.tasks.segment.config:SegmentConfig",
        "load": "pixlearn.tasks.segment.predict:load_segmenter",
        "predict": "pixlearn.tasks.segment.predict:predict_segment_files",
        "evaluate": "pixlearn.tasks.segment.evaluate:evaluate_segment_run",
        "is_run": "pixlearn.tasks.segment.predict:is_segment_run",
        "classical": "pixlearn.tasks.segment.classic:evaluate_classic_segmentation",
    },
    serves=("segment",),
    predicts=("a mask per image written under --out in the training masks' coding (0/255 for a binary 0/255 set, else a palette "
              "PNG of class ids), with --overlay the tinted image; the row gives each class's share of the pixels."),
))
