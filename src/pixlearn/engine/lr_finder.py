"""The learning-rate finder for any task: Lightning's range test on the task's module, one device.

:func:`find_lr` trains a throw-away copy of the run's first steps with an exponentially rising
learning rate and returns Lightning's suggestion (the steepest fall of the loss) with the curve;
the caller rebuilds a fresh, identically seeded model for the real run and plots the curve.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from typing import Any

from pixlearn._core.errors import ConfigError

__all__ = ["find_lr", "finder_steps"]


def finder_steps(steps_per_epoch: int) -> int:
    """How many steps the range test takes: three epochs' worth, between 50 and 100.

    >>> finder_steps(1), finder_steps(20), finder_steps(1000)
    (50, 60, 100)
    """
    return int(min(100, max(50, 3 * max(int(steps_per_epoch), 1))))


def find_lr(
    module: Any, trainer_kwargs: dict[str, Any], *, steps_per_epoch: int, devices: int = 1, progress: bool = False,
    min_lr: float = 1e-6, max_lr: float = 1.0,
) -> dict[str, Any]:
    """Run the range test on ``module`` (a LightningModule with an ``lr`` attribute its optimiser reads).

    Returns
    -------
    dict
        ``{"suggestion": float or None, "lrs": [...], "losses": [...], "num_training": int}``.

    Raises
    ------
    ConfigError
        More than one device (the test runs on one).
    """
    import lightning.pytorch as L
    from lightning.pytorch.tuner import Tuner

    from pixlearn.engine.fit import quiet_lightning

    if devices > 1:
        raise ConfigError("the LR finder runs on one device; run --find-lr without --devices/--num-nodes, then train with its --lr")
    kw = dict(trainer_kwargs)
    kw.update(callbacks=[], enable_checkpointing=False, enable_progress_bar=False, plugins=[], logger=False)
    kw.pop("max_time", None)
    num = finder_steps(steps_per_epoch)
    finder_log = logging.getLogger("lightning.pytorch.tuner.lr_finder")
    level = finder_log.level
    finder_log.setLevel(logging.CRITICAL)  # the caller reports a missing suggestion itself
    try:
        with quiet_lightning(), contextlib.redirect_stderr(sys.stderr if progress else io.StringIO()):
            trainer = L.Trainer(**kw)
            result = Tuner(trainer).lr_find(module, min_lr=min_lr, max_lr=max_lr, num_training=num, update_attr=False,
                                            early_stop_threshold=4.0)
            suggestion = None if result is None else result.suggestion()
    finally:
        finder_log.setLevel(level)
    if result is None:  # pragma: no cover - only when Lightning skips tuning
        return {"suggestion": None, "lrs": [], "losses": [], "num_training": num}
    return {"suggestion": None if suggestion is None else float(suggestion), "lrs": [float(v) for v in result.results["lr"]],
            "losses": [float(v) for v in result.results["loss"]], "num_training": num}
