"""The LR finder, written once in pixlearn.engine.lr_finder, on every task."""

from __future__ import annotations

import json

import pytest

from pixlearn._core.errors import ConfigError
from pixlearn.engine.lr_finder import find_lr, finder_steps


def test_finder_steps_and_one_device_only():
    assert finder_steps(0) == 50 and finder_steps(30) == 90
    with pytest.raises(ConfigError, match="one device"):
        find_lr(object(), {}, steps_per_epoch=1, devices=2)


def test_every_task_finds_a_learning_rate_then_trains_with_it(task, tmp_path):
    res = task.run(tmp_path / "lr", epochs=1, find_lr=True)
    manifest = json.loads((tmp_path / "lr" / "manifest.json").read_text())
    found = manifest["lr_find"]
    assert found["num_training"] >= 50 and (tmp_path / "lr" / "plots" / "lr_find.png").is_file()
    if found["suggestion"] is not None:
        assert res.config.optim.lr == pytest.approx(found["suggestion"])
    assert res.stop_reason == "last_epoch"
