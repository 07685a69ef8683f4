"""Metrics, plots and reports (never imports train); an old module path that moved raises an error naming its new place."""

from pixlearn._core.facade import moved_modules

moved_modules({
    "pixlearn.eval.classify_report": "pixlearn.engine.report",
    "pixlearn.eval.segmentation": "pixlearn.tasks.segment.metrics",
    "pixlearn.eval.segmentation_eval": "pixlearn.tasks.segment.evaluate",
    "pixlearn.eval.segmentation_classic": "pixlearn.tasks.segment.classic",
    "pixlearn.eval.restoration": "pixlearn.tasks.restore.metrics",
    "pixlearn.eval.restoration_eval": "pixlearn.tasks.restore.evaluate",
})
