"""One ``train`` section base for every task: the fields the engine reads, each task's own defaults kept."""

from __future__ import annotations

import pytest

from pixlearn._core.errors import ConfigError
from pixlearn.engine.config import EngineTrainConfig
from pixlearn.tasks.classify.config import ClassifyConfig
from pixlearn.tasks.detect.config import DetectConfig
from pixlearn.tasks.restore.config import RestoreConfig
from pixlearn.tasks.segment.config import SegmentConfig

CONFIGS = [ClassifyConfig, DetectConfig, RestoreConfig, SegmentConfig]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.TASK)
def test_every_task_train_section_holds_the_engine_fields(config):
    section = config.SECTIONS["train"]
    assert issubclass(section, EngineTrainConfig) and isinstance(config().train, EngineTrainConfig)
    assert set(EngineTrainConfig.model_fields) <= set(section.model_fields)
    for name in ("minutes", "folds", "find_lr", "accumulate", "num_nodes", "strategy"):  # flat options reach them
        assert config.FLAT[name] == ("train", name)


def test_restoration_keeps_its_defaults_and_takes_the_engine_options(tmp_path):
    from pixlearn.engine.trainer import trainer_kwargs

    t = RestoreConfig().train
    assert (t.epochs, t.patience, t.channels_last) == (20, 0, True)  # restoration's own defaults
    assert (SegmentConfig().train.epochs, SegmentConfig().train.patience) == (30, 10)  # the engine's
    cfg = RestoreConfig.from_overrides(accumulate=2, precision="32", accelerator="cpu")
    kw = trainer_kwargs(cfg, tmp_path)
    assert kw["accumulate_grad_batches"] == 2 and kw["num_nodes"] == 1 and kw["max_epochs"] == 20


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.TASK)
def test_engine_fields_are_bounded_in_every_task(config):
    with pytest.raises(ConfigError, match="train.epochs"):
        config.from_overrides(epochs=10**6)
    with pytest.raises(ConfigError, match="train.accumulate"):
        config.from_overrides(accumulate=0)
    with pytest.raises(ConfigError, match="did you mean 'train.accumulate'"):
        config.from_dict({"train": {"acumulate": 2}})
