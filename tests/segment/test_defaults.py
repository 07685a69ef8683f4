"""The defaults of `train segment`: a pretrained encoder when its weights are local, the fine-tuning recipe, the budget plan.

A fake weights folder holds timm's tiny ``test_efficientnet`` (random weights, saved in the test) and
stands in for ../shared/weights; the list of default encoders is pointed at it. Nothing downloads.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
import torch
import yaml

from pixlearn.cli import main

from .conftest import TINY

ENC = "tu-test_efficientnet"
DECODER = TINY["set"][0]


@pytest.fixture
def weights_env(tmp_path, monkeypatch):
    """PIXLEARN_WEIGHTS -> an empty folder, a fresh cache, offline; the default encoders are the tiny test network."""
    from pixlearn.tasks.segment import config

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIXLEARN_OFFLINE", "1")
    monkeypatch.setattr(config, "PRETRAINED_ENCODERS", (ENC,))
    monkeypatch.setattr(config, "DEFAULT_ENCODER", ENC)  # the random-init default, kept tiny for speed
    return folder


def save_timm_weights(folder: Path, name: str = "test_efficientnet", *, seed: int = 1) -> Path:
    """A tiny timm classifier's state dict as ``<folder>/<name>.safetensors`` (as `pixlearn weights add` would place it)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    for k, v in state.items():  # running statistics that a fresh network would never have, to recognise them later
        if k.endswith("running_mean"):
            v.uniform_(-0.5, 0.5)
        elif k.endswith("running_var"):
            v.uniform_(0.5, 2.0)
    path = folder / f"{name}.safetensors"
    save_file(state, str(path))
    return path


def _train(args: list[str], out: Path, capsys) -> tuple[int, str, dict, dict, dict]:
    code = main(["train", "segment", *args, "--set", DECODER, "--img-size", "32", "--batch", "4", "-o", str(out), "--format", "json"])
    captured = capsys.readouterr()
    if code != 0:
        return code, captured.err, {}, {}, {}
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return code, captured.err, cfg, manifest, json.loads(captured.out)


def _lrs(run: Path) -> list[tuple[float, float]]:
    return [(float(r["lr"]), float(r["backbone_lr"])) for r in csv.DictReader((run / "metrics.csv").open())]


def test_without_backbone_a_local_pretrained_encoder_is_the_default(weights_env, binary_data, tmp_path, capsys):
    """Weights present, no --backbone: that encoder, pretrained, a line saying so; encoder LR a tenth; BN statistics kept."""
    from safetensors.torch import load_file

    from pixlearn.tasks.segment.predict import load_segmenter

    path = save_timm_weights(weights_env)
    code, err, cfg, manifest, _ = _train(["--data", str(binary_data), "--epochs", "1"], tmp_path / "run", capsys)
    assert code == 0, err
    assert f"backbone: {ENC}, pretrained: its weights are in {path}" in err
    assert "fine-tuning: encoder lr" in err and "BatchNorm statistics kept" in err
    assert cfg["model"]["encoder"] == ENC and cfg["model"]["pretrained"] is True and cfg["model"]["freeze_bn"] is True
    assert manifest["defaults"]["encoder"] == ENC and manifest["defaults"]["pretrained"] is True
    assert manifest["fine_tune"]["backbone_lr_mult"] == 0.1
    for lr, backbone_lr in _lrs(tmp_path / "run"):  # discriminative rates: the encoder learns at a tenth of the decoder's
        assert backbone_lr == pytest.approx(0.1 * lr)
    # the kept weights: the encoder's BatchNorm statistics are the file's, untouched by a batch of 4 crops
    enc = load_segmenter(tmp_path / "run").model.encoder.model
    file = load_file(str(path))
    bn = "bn1.running_mean"
    assert torch.equal(dict(enc.named_buffers())[bn], file[bn])


def test_without_local_weights_the_default_stays_and_says_how_to_add_them(weights_env, binary_data, tmp_path, capsys):
    code, err, cfg, manifest, _ = _train(["--data", str(binary_data), "--epochs", "1"], tmp_path / "run", capsys)
    assert code == 0, err
    assert f"backbone: {ENC} from random weights: no local pretrained weights" in err
    assert "pixlearn weights add FILE --model test_efficientnet" in err and str(weights_env) in err
    assert cfg["model"]["pretrained"] is False and cfg["model"]["freeze_bn"] is False and cfg["model"]["backbone_lr_mult"] == 1.0
    assert manifest["defaults"]["pretrained"] is False and "fine_tune" not in manifest
    for lr, backbone_lr in _lrs(tmp_path / "run"):  # random initialisation: one rate for the whole network
        assert backbone_lr == pytest.approx(lr)


def test_pretrained_flag_without_local_weights_is_refused_before_training(weights_env, binary_data, tmp_path, capsys):
    code = main(["train", "segment", "--data", str(binary_data), "--pretrained", "--epochs", "1", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "no local weights" in err and "pixlearn weights add FILE --model test_efficientnet" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_backbone_and_pretrained_find_the_local_file(weights_env, binary_data, tmp_path, capsys):
    from pixlearn.tasks.segment import config

    path = save_timm_weights(weights_env)
    config.DEFAULT_ENCODER = "tu-resnet18"  # (restored by monkeypatch) a named backbone does not depend on the defaults
    code, err, cfg, _, _ = _train(["--data", str(binary_data), "--backbone", ENC, "--pretrained", "--epochs", "1"], tmp_path / "run", capsys)
    assert code == 0, err
    assert cfg["model"]["encoder"] == ENC and cfg["model"]["pretrained"] is True
    code, err, cfg, _, _ = _train(["--data", str(binary_data), "--backbone", ENC, "--epochs", "1"], tmp_path / "run2", capsys)
    assert code == 0, err  # named without --pretrained: random weights as before, with a hint
    assert cfg["model"]["pretrained"] is False and f"its pretrained weights are in {path}: add --pretrained" in err


def test_weights_naming_an_encoder_file_starts_the_encoder_from_it(weights_env, binary_data, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    path = save_timm_weights(other)
    code, err, cfg, manifest, _ = _train(["--data", str(binary_data), "--weights", str(path), "--epochs", "1"], tmp_path / "run", capsys)
    assert code == 0, err
    assert cfg["model"]["encoder"] == ENC and cfg["model"]["encoder_weights"] == str(path) and cfg["model"]["weights"] is None
    assert manifest["fine_tune"]["backbone_lr_mult"] == 0.1 and f"from the encoder weights in {path}" in err
    # a whole network's weights (a run's best.safetensors) still start the whole network
    best = tmp_path / "run" / "weights" / "best.safetensors"
    code, err, cfg, _, _ = _train(["--data", str(binary_data), "--backbone", ENC, "--weights", str(best), "--epochs", "1"], tmp_path / "run3",
                                  capsys)
    assert code == 0, err
    assert cfg["model"]["weights"] == str(best) and cfg["model"]["encoder_weights"] is None


def test_encoder_file_with_an_unknown_name_asks_for_the_backbone(weights_env, tmp_path):
    from pixlearn._core.errors import ConfigError
    from pixlearn.tasks.segment.config import SegmentConfig, choose_encoder

    path = save_timm_weights(tmp_path)
    odd = path.rename(tmp_path / "my-encoder.safetensors")
    with pytest.raises(ConfigError, match="--backbone tu-<timm name>"):
        choose_encoder(SegmentConfig.from_overrides(weights=str(odd)).model)


def test_the_shipped_defaults():
    from pixlearn.tasks.segment.config import DEFAULT_ENCODER, PRETRAINED_ENCODERS

    assert PRETRAINED_ENCODERS[0] == "tu-tf_efficientnet_lite0" and DEFAULT_ENCODER == "tu-resnet18"


def test_frozen_encoder_batchnorm_keeps_its_statistics_while_the_decoder_learns():
    from pixlearn.models import create_segmentation_model
    from pixlearn.tasks.segment.module import SegmentTask

    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 2, (4, 32, 32))
    for freeze in (True, False):
        net = create_segmentation_model("unet", encoder=ENC, num_classes=1, img_size=32, decoder_channels=[16, 16, 8, 8, 8])
        task = SegmentTask(net, num_classes=2, tile=32, freeze_encoder_bn=freeze).train()
        enc_bn = task.encoder_norms()
        dec_bn = [m for m in net.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        before = [m.running_mean.clone() for m in enc_bn]
        task.training_loss(x, y).backward()
        moved = [not torch.equal(b, m.running_mean) for b, m in zip(before, enc_bn)]
        assert enc_bn and dec_bn and all(m.training for m in dec_bn)
        if freeze:
            assert not any(m.training for m in enc_bn) and not any(moved)
            assert all(m.weight.grad is not None for m in enc_bn if m.affine)  # scales and shifts still learn
        else:
            assert all(m.training for m in enc_bn) and all(moved)


def test_budget_plan_is_measured_printed_and_recorded(weights_env, binary_data, tmp_path, capsys, monkeypatch):
    """--minutes without --epochs: crop size, batch and crops per image come from timed steps (a fake clock: 0.5 s a step)."""
    from pixlearn.engine import budget as engine_budget
    from pixlearn.tasks.segment import budget
    from pixlearn.tasks.segment.train import train_segmenter

    ticks = itertools.count()
    monkeypatch.setattr(budget, "probe_clock", lambda: float(next(ticks)))  # each reading one second later
    fit_ticks = itertools.count()
    monkeypatch.setattr(engine_budget, "monotonic", lambda: float(next(fit_ticks)))  # the fit's budget runs out in a few steps
    res = train_segmenter(binary_data, minutes=3, set=[DECODER], out=tmp_path / "run")
    err = capsys.readouterr().err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    plan = manifest["plan"]
    # 8 training images of 40 px: 32-px crops; 0.5 s a step gives 3 min x 0.85 / 0.5 = 306 steps >= 250 at batch 8 (25 crops an image)
    assert plan["choice"] == {"img_size": 32, "batch": 8, "crops_per_image": 25}
    assert plan["seconds_per_step"] == 0.5 and plan["steps"] == 306 and plan["steps_per_epoch"] == 25
    assert [p["choice"]["batch"] for p in plan["probed"]] == [8]  # the most expensive candidate sufficed: nothing else timed
    assert "plan: 3 min; measured 0.5 s/step at img_size 32, batch 8, crops_per_image 25" in err
    d = res.config.data
    assert (d.img_size, d.batch_size, d.crops_per_image) == (32, 8, 25)
    assert manifest["stop_reason"] == "budget"


def test_budget_plan_falls_back_to_the_cheapest_when_time_is_short(weights_env, binary_data, tmp_path, monkeypatch):
    from pixlearn.engine import budget as engine_budget
    from pixlearn.tasks.segment import budget
    from pixlearn.tasks.segment.train import train_segmenter

    ticks = itertools.count()
    monkeypatch.setattr(budget, "probe_clock", lambda: float(next(ticks)))
    fit_ticks = itertools.count()
    monkeypatch.setattr(engine_budget, "monotonic", lambda: float(next(fit_ticks)))
    train_segmenter(binary_data, minutes=1, set=[DECODER], out=tmp_path / "run", progress=False)
    plan = json.loads((tmp_path / "run" / "manifest.json").read_text())["plan"]
    assert plan["choice"] == {"img_size": 32, "batch": 4, "crops_per_image": 13}
    assert [p["choice"]["batch"] for p in plan["probed"]] == [8, 4] and "even the cheapest" in plan["text"]


def test_no_plan_when_the_user_sized_the_run(weights_env, binary_data, tmp_path, monkeypatch):
    from pixlearn.engine import budget as engine_budget
    from pixlearn.tasks.segment.train import train_segmenter

    fit_ticks = itertools.count()
    monkeypatch.setattr(engine_budget, "monotonic", lambda: float(next(fit_ticks)))
    res = train_segmenter(binary_data, minutes=1, img_size=32, set=[DECODER], out=tmp_path / "run", progress=False)
    assert "plan" not in json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (res.config.data.img_size, res.config.data.batch_size, res.config.data.crops_per_image) == (32, 8, 1)
