"""A fake clock for budget tests: time moves only when a training step starts."""

from __future__ import annotations

import lightning.pytorch as L

__all__ = ["FakeClock", "Tick"]


class FakeClock:
    """Time that moves only when a training step starts: ``dt`` seconds per step."""

    def __init__(self, dt: float) -> None:
        self.t, self.dt = 1000.0, dt

    def __call__(self) -> float:
        return self.t


class Tick(L.Callback):
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.clock.t += self.clock.dt
