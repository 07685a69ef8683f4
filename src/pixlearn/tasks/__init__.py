"""One module per task: model, loss, pre/post-processing and metrics meet here.

``classify``: :class:`~pixlearn.tasks.classify.ClassifyTask` (loss, mixup/CutMix, metrics);
``classify_data``: checking and splitting a labelled dataset; ``classify_predict``: a trained
classifier rebuilt from its run folder, and prediction over files, folders and globs.
"""

from pixlearn._core.facade import moved_modules

moved_modules({
    "pixlearn.tasks.classify_data": "pixlearn.tasks.classify.data",
    "pixlearn.tasks.classify_predict": "pixlearn.tasks.classify.predict",
    "pixlearn.tasks.run_card": "pixlearn.engine.run_card",
    "pixlearn.tasks.tiling": "pixlearn.engine.tiling",
    "pixlearn.tasks.segment_data": "pixlearn.tasks.segment.data",
    "pixlearn.tasks.segment_predict": "pixlearn.tasks.segment.predict",
    "pixlearn.tasks.restore_data": "pixlearn.tasks.restore.data",
    "pixlearn.tasks.restore_predict": "pixlearn.tasks.restore.predict",
    "pixlearn.tasks.degrade": "pixlearn.tasks.restore.degrade",
})
