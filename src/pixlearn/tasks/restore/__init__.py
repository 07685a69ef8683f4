"""Image restoration (denoising, deblurring, super-resolution) on the engine (importing it loads no torch).

``config`` (:class:`~pixlearn.tasks.restore.config.RestoreConfig`), ``degrade`` (the synthetic degradations a model
learns to undo), ``data`` (clean images, patches), ``module`` (:class:`~pixlearn.tasks.restore.module.RestoreTask`:
loss and PSNR/SSIM around the network), ``train`` (:func:`~pixlearn.tasks.restore.train.train_restorer`),
``metrics`` (PSNR/SSIM, the classical baselines, crops and curves), ``report``, ``evaluate`` and ``predict`` (a run folder as a
tiled :class:`~pixlearn.tasks.restore.predict.Restorer`).
"""

from pixlearn._core.facade import lazy_exports
from pixlearn.tasks.registry import TaskSpec, register

#: What ``pixlearn.tasks.restore`` held when it was one module keeps resolving, lazily, from ``.module``.
_LAZY = dict.fromkeys(("LOSSES", "PSNR_CAP_DB", "RestoreTask", "batch_mse", "batch_psnr", "batch_ssim", "charbonnier", "restoration_loss"), "pixlearn.tasks.restore.module")
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

#: This task's registry entry: how ``pixlearn train/predict/eval`` and the service reach it.
SPEC = register(TaskSpec(
    name="restore",
    summary="Image restoration: clean images in (degraded on the fly), a denoiser / deblurrer / super-resolver run folder out.",
    package=__name__,
    entry={
        "train": "pixlearn.tasks.restore.train:train_restorer",
        "config": "pixlearn.tasks.restore.config:RestoreConfig",
        "load": "pixlearn.tasks.restore.predict:load_restorer",
        "predict": "pixlearn.tasks.restore.predict:restore_files",
        "evaluate": "pixlearn.tasks.restore.evaluate:evaluate_restore_folder",
        "is_run": "pixlearn.tasks.restore.predict:is_restore_run",
        "classical_methods": "pixlearn.tasks.restore.metrics:CLASSICAL_METHODS",
    },
    serves=("restore",),
    predicts="the restored image (denoise, super-resolution, enhance) written to --out.",
))
