"""The fine-tuning recipe and the auto backbone: on with pretrained weights, off without; the head-only share of a
time budget under a fake clock; BatchNorm frozen for small batches; the first loss of a zero-initialised head."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import yaml

from pixlearn.engine.module import EngineModule, EngineOptions
from pixlearn.models import create_model, read_state_dict, save_weights
from pixlearn.models.freeze import backbone_depths, split_parameters
from pixlearn.tasks.classify.config import ClassifyConfig
from pixlearn.tasks.classify.recipe import AUTO_BACKBONE, pick_backbone
from pixlearn.train import train_classifier
from tests.engine.clock import FakeClock, Tick
from tests.classify.helpers import make_dataset

FAST = {"model": "pixlearn_smallcnn_tiny", "img_size": 12, "batch": 8, "progress": False}
STEM = "features.0.stem.0.weight"


@pytest.fixture(autouse=True)
def _one_thread_and_no_weights_folders(monkeypatch, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))  # the cache's weights folder: empty
    monkeypatch.delenv("PIXLEARN_WEIGHTS", raising=False)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "colours", per_class=16)


def _weights(path: Path, *, feature_scale: float = 1.0) -> Path:
    """A 'pretrained' pixlearn_smallcnn_tiny; ``feature_scale`` makes its pooled features that much larger, as an
    ImageNet backbone's are compared with a freshly drawn head's scale."""
    model = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("features.4.branch.4."):  # the backbone's last norm layer: its scale and shift
                p.mul_(feature_scale).add_(feature_scale * 0.5 if name.endswith("bias") else 0.0)
    return save_weights(model, path)


class Steps(L.Callback):
    """After every step: is the backbone trainable, are its BatchNorm layers in train mode, the stem's weights."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        model = pl_module.task.model
        backbone, _ = split_parameters(model)
        bns = [m.training for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.rows.append({"trainable": all(p.requires_grad for _, p in backbone), "bn_train": any(bns),
                          "stem": model.state_dict()[STEM].clone(), "epoch": trainer.current_epoch + 1})


def _config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


# ---------------------------------------------------------------- the recipe switches on with weights, off without
def test_recipe_is_on_from_weights_and_off_from_scratch(data_dir, tmp_path):
    w = _weights(tmp_path / "w.safetensors")
    ft = train_classifier(data_dir, out=tmp_path / "ft", epochs=1, weights=str(w), **FAST)
    m = _config(ft.run_dir)["model"]
    assert (m["head_init"], m["freeze_fraction"], m["backbone_lr_mult"], m["layer_decay"], m["bn_eval"]) == ("zero", 0.1, 0.3, 0.8, True)
    assert _config(ft.run_dir)["data"]["augment"] == "light"
    man = json.loads((ft.run_dir / "manifest.json").read_text())
    assert man["fine_tune"]["text"].startswith("fine-tune recipe: head warm-up 10 % of the steps, head zero-init")
    assert "BN frozen (batch 8 < 16)" in man["fine_tune"]["text"]

    scratch = train_classifier(data_dir, out=tmp_path / "s", epochs=1, **FAST)
    m = _config(scratch.run_dir)["model"]
    assert (m["head_init"], m["freeze_fraction"], m["backbone_lr_mult"], m["layer_decay"], m["bn_eval"]) == ("model", 0.0, 1.0, 1.0, False)
    assert "fine_tune" not in json.loads((scratch.run_dir / "manifest.json").read_text())


def test_user_choices_win_over_the_recipe(data_dir, tmp_path):
    w = _weights(tmp_path / "w.safetensors")
    res = train_classifier(data_dir, out=tmp_path / "ft", epochs=1, weights=str(w), augment="none", lr=0.01,
                           set=["model.layer_decay=1.0", "model.head_init=model"], **FAST)
    cfg = _config(res.run_dir)
    assert (cfg["data"]["augment"], cfg["optim"]["lr"], cfg["model"]["layer_decay"], cfg["model"]["head_init"]) == ("none", 0.01, 1.0, "model")


def test_param_groups_give_the_head_lr_and_decay_down_the_backbone():
    model = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    opts = EngineOptions(lr=1e-3, backbone_lr_mult=0.1, layer_decay=0.5)
    from pixlearn.tasks.classify.module import ClassifyTask

    groups = EngineModule(ClassifyTask(model, num_classes=3), opts)._param_groups(1e-3)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["head"] == pytest.approx(1e-3)
    depth = backbone_depths(model)
    top = max(depth.values())
    assert lrs[f"backbone_{top}"] == pytest.approx(1e-4)
    assert lrs[f"backbone_{top - 1}"] == pytest.approx(0.5e-4)
    assert lrs["backbone_0"] == pytest.approx(1e-4 * 0.5 ** top)
    stem = next(p for n, p in model.named_parameters() if n == STEM)
    assert any(stem is p for g in groups if g["name"] == "backbone_0" for p in g["params"])
    plain = EngineModule(ClassifyTask(model, num_classes=3), EngineOptions(lr=1e-3, backbone_lr_mult=0.1))._param_groups(1e-3)
    assert {g["name"] for g in plain} == {"head", "head_no_decay", "backbone", "backbone_no_decay"}


# ---------------------------------------------------------------- head-only share of the time budget, then everything
def test_head_only_for_the_first_share_of_the_budget_then_unfrozen(data_dir, tmp_path, monkeypatch):
    clock = FakeClock(10.0)  # every step costs 10 s of fake time; the budget is 60 s
    monkeypatch.setattr("pixlearn.engine.budget.monotonic", clock)
    w = _weights(tmp_path / "w.safetensors")
    start = read_state_dict(w)[STEM]
    steps = Steps()
    train_classifier(data_dir, out=tmp_path / "ft", epochs=3, minutes=1.0, weights=str(w), freeze_fraction=0.4, batch=8,
                     callbacks=[Tick(clock), steps], **{k: v for k, v in FAST.items() if k != "batch"})
    rows = steps.rows
    assert 3 <= len(rows) <= 6  # the budget stopped it
    # steps 1-2 start at 10 s and 20 s (< 40 % of 60 s), step 3 at 30 s: head only, BatchNorm in eval mode
    assert [r["trainable"] for r in rows[:3]] == [False, False, True]
    assert all(torch.equal(r["stem"], start) for r in rows[:2])
    assert not rows[0]["bn_train"] and not rows[1]["bn_train"]
    assert not torch.equal(rows[-1]["stem"], start)  # trained after the unfreezing


def test_metrics_csv_says_how_much_of_each_epoch_the_backbone_was_frozen_under_a_time_budget(data_dir, tmp_path, monkeypatch):
    import csv

    clock = FakeClock(10.0)  # every step costs 10 s of fake time; the budget is 60 s, its first 40 % head-only
    monkeypatch.setattr("pixlearn.engine.budget.monotonic", clock)
    w = _weights(tmp_path / "w.safetensors")
    steps = Steps()
    res = train_classifier(data_dir, out=tmp_path / "ft", epochs=3, minutes=1.0, weights=str(w), freeze_fraction=0.4, batch=8,
                           callbacks=[Tick(clock), steps], **{k: v for k, v in FAST.items() if k != "batch"})
    epochs = sorted({r["epoch"] for r in steps.rows})
    want = [sum(not r["trainable"] for r in steps.rows if r["epoch"] == e) / sum(r["epoch"] == e for r in steps.rows) for e in epochs]
    assert 0.0 < want[0] < 1.0 and want[1:] == [0.0] * (len(want) - 1)  # unfrozen inside epoch 1 (its 3rd step)
    assert [r["backbone_frozen"] for r in res.history] == pytest.approx(want)
    with open(res.run_dir / "metrics.csv", newline="") as fh:
        assert [float(r["backbone_frozen"]) for r in csv.DictReader(fh)] == pytest.approx(want)


def test_batchnorm_trains_at_batch_16_and_stays_frozen_below(data_dir, tmp_path):
    w = _weights(tmp_path / "w.safetensors")
    small, big = Steps(), Steps()
    kw = {k: v for k, v in FAST.items() if k != "batch"}
    train_classifier(data_dir, out=tmp_path / "a", epochs=1, weights=str(w), batch=8, freeze_fraction=0.0, callbacks=[small], **kw)
    train_classifier(data_dir, out=tmp_path / "b", epochs=1, weights=str(w), batch=16, freeze_fraction=0.0, callbacks=[big], **kw)
    assert not any(r["bn_train"] for r in small.rows) and all(r["trainable"] for r in small.rows)
    assert all(r["bn_train"] for r in big.rows)


# ---------------------------------------------------------------- the head's initialisation
def test_first_epoch_loss_starts_near_ln_classes_from_a_pretrained_backbone(data_dir, tmp_path):
    # a backbone with large features (as an ImageNet one): a freshly drawn head starts far above ln(3)
    w = _weights(tmp_path / "w.safetensors", feature_scale=40.0)
    kw = {**FAST, "weights": str(w), "epochs": 1, "lr": 1e-5, "augment": "none"}
    fresh = train_classifier(data_dir, out=tmp_path / "fresh", set=["model.head_init=model"], **kw)
    assert fresh.history[0]["train_loss"] > math.log(3) + 1.0
    recipe = train_classifier(data_dir, out=tmp_path / "zero", **kw)
    assert recipe.history[0]["train_loss"] == pytest.approx(math.log(3), abs=0.05)


# ---------------------------------------------------------------- the auto backbone
def test_auto_backbone_with_local_weights_and_without(tmp_path, monkeypatch):
    cfg = ClassifyConfig.from_overrides(minutes=10)
    picked, why = pick_backbone(cfg, given=set())
    assert picked.model.name == "pixlearn_smallcnn" and not picked.model.pretrained
    assert "from scratch" in why and f"no local weights for {AUTO_BACKBONE}" in why and "pixlearn weights add" in why

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / f"{AUTO_BACKBONE}.in1k.safetensors").write_bytes(b"only its name is looked at here")
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    picked, why = pick_backbone(cfg, given=set())
    assert picked.model.name == AUTO_BACKBONE and picked.model.pretrained
    assert why.startswith(f"model: {AUTO_BACKBONE}, fine-tuned from its ImageNet weights") and str(folder) in why

    # not without a budget, nor when a model was named
    assert pick_backbone(ClassifyConfig(), given=set()) == (ClassifyConfig(), None)
    named = ClassifyConfig.from_overrides(minutes=10, model="pixlearn_smallcnn_tiny")
    assert pick_backbone(named, given={"model"})[1] is None


def test_cli_budget_run_without_weights_says_why_and_prints_its_plan(data_dir, tmp_path, capsys):
    from pixlearn.cli import main

    code = main(["train", "classify", "--data", str(data_dir), "--minutes", "0.02", "--img-size", "12", "--batch", "8",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0
    assert "model: pixlearn_smallcnn from scratch (no local weights for tf_efficientnet_lite0" in err
    assert "plan: 0.02 min; measured" in err and "chose img_size 12" in err
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["plan"]["choice"] == {"img_size": 12} and man["auto_model"]["model"] == "pixlearn_smallcnn"
