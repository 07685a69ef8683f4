"""Evaluation moved into the task packages (``pixlearn.tasks.<task>.metrics`` / ``.evaluate`` / ``.report``) and the
engine (``pixlearn.engine.report``); this package holds no code: an old module path raises an error naming its new place."""

from pixlearn._core.facade import moved_modules

moved_modules({
    "pixlearn.eval.classification": "pixlearn.tasks.classify.metrics (its report: pixlearn.tasks.classify.report)",
    "pixlearn.eval.classify_eval": "pixlearn.tasks.classify.evaluate",
    "pixlearn.eval.classify_plots": "pixlearn.tasks.classify.plots",
    "pixlearn.eval.classify_report": "pixlearn.engine.report",
    "pixlearn.eval.segmentation": "pixlearn.tasks.segment.metrics",
    "pixlearn.eval.segmentation_eval": "pixlearn.tasks.segment.evaluate",
    "pixlearn.eval.segmentation_classic": "pixlearn.tasks.segment.classic",
    "pixlearn.eval.restoration": "pixlearn.tasks.restore.metrics",
    "pixlearn.eval.restoration_eval": "pixlearn.tasks.restore.evaluate",
})
