"""One package per task on the engine: ``classify/``, ``segment/``, ``restore/``.

Each holds its ``config``, ``data``, ``module`` (model + loss + metrics), ``train``, ``metrics``, ``evaluate`` and
``predict`` (and ``plots``, ``report``, ``classic`` or ``degrade`` as the task needs) and registers itself in
:mod:`pixlearn.tasks.registry`, which is how the CLI and the service reach it. Tasks never import each other;
what they share lives in :mod:`pixlearn.engine`. Importing this package loads no torch; an old module path
(``pixlearn.tasks.classify_predict``) raises an error naming its new place.
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
