"""Training configuration: typed sections, unknown keys with suggestions, YAML round trips, flat overrides."""

from __future__ import annotations

import pytest

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn.tasks.classify.config import FLAT_KEYS, ClassifyConfig, load_config, save_config


def test_defaults_and_flat_overrides():
    cfg = ClassifyConfig.from_overrides(model="resnet18", epochs=5, batch=32, img_size=64, lr=0.01, mixup=0.2, schedule="onecycle", data="/d")
    assert (cfg.model.name, cfg.train.epochs, cfg.data.batch_size, cfg.data.img_size) == ("resnet18", 5, 32, 64)
    assert (cfg.optim.lr, cfg.train.mixup_alpha, cfg.schedule.name, cfg.data.path) == (0.01, 0.2, "onecycle", "/d")
    assert ClassifyConfig().optim.optimizer == "adamw"


def test_every_field_has_one_flat_name():
    for section in ("data", "model", "optim", "schedule", "train"):
        fields = getattr(ClassifyConfig.model_fields[section].annotation, "model_fields")
        for f in fields:
            assert f in FLAT_KEYS or (section, f) in FLAT_KEYS.values(), (section, f)


@pytest.mark.parametrize("data, hint", [
    ({"train": {"epocs": 3}}, "did you mean 'train.epochs'"),
    ({"train": {"lr": 0.1}}, "did you mean 'optim.lr'"),  # right key, wrong section
    ({"optimizer": {"lr": 0.1}}, "did you mean 'optim"),
])
def test_unknown_keys_get_suggestions(data, hint):
    with pytest.raises(ConfigError, match=hint):
        ClassifyConfig.from_dict(data)


def test_bad_values_name_the_field_and_the_input():
    with pytest.raises(ConfigError, match=r"optim\.optimizer.*'adam'"):
        ClassifyConfig.from_dict({"optim": {"optimizer": "adam"}})
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        ClassifyConfig.from_overrides(epochs=0)
    with pytest.raises(ConfigError, match="at least 10% for training"):
        ClassifyConfig.from_overrides(val_fraction=0.5, test_fraction=0.45)
    with pytest.raises(UnknownNameError, match="did you mean 'epochs'"):
        ClassifyConfig.from_overrides(epoch=3)


def test_yaml_round_trip_and_partial_files(tmp_path):
    cfg = ClassifyConfig.from_overrides(epochs=7, label_smoothing=0.0, augment=[{"hflip": {"p": 1.0}}])
    path = save_config(cfg, tmp_path / "c.yaml")
    assert load_config(path) == cfg
    (tmp_path / "partial.yaml").write_text("train:\n  epochs: 2\n")
    assert load_config(tmp_path / "partial.yaml").train.epochs == 2
    (tmp_path / "bad.yaml").write_text("train:\n  patiense: 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*did you mean 'train.patience'"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_set_assignments():
    cfg = ClassifyConfig().with_set(["train.mixup_alpha=0.4", "optim.grad_clip=1.5", "augment=[hflip]", "data.class_weights=[1, 2]"])
    assert cfg.train.mixup_alpha == 0.4 and cfg.optim.grad_clip == 1.5 and cfg.data.augment == ["hflip"]
    assert cfg.data.class_weights == [1.0, 2.0]
    with pytest.raises(UnknownNameError, match="did you mean 'optim'"):
        ClassifyConfig().with_set(["optm.lr=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        ClassifyConfig().with_set(["train.epochs"])
