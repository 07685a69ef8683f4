"""Image classification on the engine: one package, one module per concern (importing it loads no torch).

``config`` (:class:`~pixlearn.tasks.classify.config.ClassifyConfig`), ``data`` (checking and splitting a labelled
dataset), ``module`` (:class:`~pixlearn.tasks.classify.module.ClassifyTask`: loss, mixup/CutMix, metrics), ``train``
(:func:`~pixlearn.tasks.classify.train.train_classifier`), ``metrics`` (one JSON schema for every classifier),
``evaluate``, ``predict`` (a run folder as a :class:`~pixlearn.tasks.classify.predict.Classifier`), ``plots`` and
``report``.
"""

from pixlearn._core.facade import lazy_exports
from pixlearn.tasks.registry import TaskSpec, register

#: What ``pixlearn.tasks.classify`` held when it was one module keeps resolving, lazily, from ``.module``.
_LAZY = dict.fromkeys(("ClassifyTask", "inverse_frequency_weights", "mix_batch"), "pixlearn.tasks.classify.module")
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

#: This task's registry entry: how ``pixlearn train/predict/eval`` and the service reach it.
SPEC = register(TaskSpec(
    name="classify",
    summary="Image classification: a folder per class in, a classifier run folder out.",
    package=__name__,
    entry={
        "train": "pixlearn.tasks.classify.train:train_classifier",
        "config": "pixlearn.tasks.classify.config:ClassifyConfig",
        "load": "pixlearn.tasks.classify.predict:load_classifier",
        "predict": "pixlearn.tasks.classify.predict:predict_files",
        "evaluate": "pixlearn.tasks.classify.evaluate:evaluate_run",
        "read_dataset": "pixlearn.tasks.classify.data:read_classify_dataset",
    },
    serves=("classify",),
    predicts="the predicted class and score of each image (--top-k for more).",
))
