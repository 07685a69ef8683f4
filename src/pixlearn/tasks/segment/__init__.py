"""Semantic segmentation on the engine: one package, one module per concern (importing it loads no torch).

``config`` (:class:`~pixlearn.tasks.segment.config.SegmentConfig`), ``data`` (mask datasets, splits, tiles),
``module`` (:class:`~pixlearn.tasks.segment.module.SegmentTask`: loss and metrics around the network), ``train``
(:func:`~pixlearn.tasks.segment.train.train_segmenter`), ``metrics`` (one confusion matrix: IoU, Dice),
``evaluate``, ``predict`` (a run folder as a :class:`~pixlearn.tasks.segment.predict.Segmenter`), ``plots``,
``report`` and ``classic`` (the classical baselines every report compares against).
"""

from pixlearn._core.facade import lazy_exports

#: What ``pixlearn.tasks.segment`` held when it was one module keeps resolving, lazily, from ``.module``.
_LAZY = dict.fromkeys(("SegmentTask", "LOSSES", "parse_loss", "SegmentLoss", "confusion_metric_class", "logits_to_mask"), "pixlearn.tasks.segment.module")
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
