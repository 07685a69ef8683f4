"""Tiny end-to-end runs: denoise on clean images, x2 super-resolution on lr/ + hr/ pairs; the run folder rebuilds the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixlearn import ConfigError
from pixlearn.tasks.restore.predict import is_restore_run, load_restorer, restore_files

from .conftest import TINY


def test_denoise_run_folder_and_scores(denoise_run) -> None:
    run = denoise_run.run_dir
    for name in ("config.yaml", "manifest.json", "metrics.csv", "metrics.json", "weights/best.safetensors",
                 "weights/model.json", "checkpoints/last.ckpt", "plots/crops.png", "plots/curves.png", "report.html"):
        assert (run / name).is_file(), name
    card = json.loads((run / "weights" / "model.json").read_text())
    assert card["task"] == "restore" and card["mode"] == "L" and card["model"]["name"] == "dncnn"
    assert card["degradation"]["steps"] == [{"gaussian": {"sigma": 25.0}}]
    m = json.loads((run / "metrics.json").read_text())
    assert m["split"] == "val" and m["n"] == 2 and m["scale"] == 1
    assert set(m["methods"]) == {"model", "input", "nl_means", "bilateral", "tv", "wavelet"}
    # the same images, the same degradation: every classical denoiser beats the noisy input
    assert all(m["methods"][k]["psnr"] > m["input"]["psnr"] + 2 for k in ("nl_means", "bilateral", "tv", "wavelet"))
    assert 15 < m["input"]["psnr"] < 25  # sigma 25 on [0, 255]: about 20 dB
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_psnr", "val_ssim", "val_input_psnr", "train_loss"} <= set(header)
    assert denoise_run.epochs_run == 1 and denoise_run.best_epoch == 1
    assert is_restore_run(run) and not is_restore_run(run / "nothing")


def test_model_rebuilt_from_the_folder_alone_gives_the_logged_scores(denoise_run, grey_folder: Path) -> None:
    r = load_restorer(denoise_run.run_dir)
    assert r.mode == "L" and r.scale == 1
    m = denoise_run.metrics
    from pixlearn.tasks.restore.evaluate import evaluate_restore_folder

    again = evaluate_restore_folder(grey_folder, run=denoise_run.run_dir, seed=1)
    assert again["split"] == "holdout" and again["n"] == 2
    assert again["methods"]["model"]["psnr"] == pytest.approx(m["psnr"], abs=1e-6)


def test_predict_on_an_odd_sized_image(denoise_run, tmp_path: Path, gray_photo: np.ndarray, photo: np.ndarray) -> None:
    from pixlearn.io import read_image, write_image

    write_image(tmp_path / "odd.png", gray_photo[:37, :53])
    write_image(tmp_path / "colour.png", photo[:29, :41])
    rows = restore_files(denoise_run.run_dir, [tmp_path / "odd.png", tmp_path / "colour.png", tmp_path / "missing.png"], out=tmp_path / "out")
    assert [r["error"] is None for r in rows] == [True, True, False]
    assert read_image(tmp_path / "out" / "odd.png", mode="unchanged").shape == (37, 53)
    assert read_image(tmp_path / "out" / "colour.png").shape == (29, 41, 3)  # a grey model restores colour channel by channel
    one = restore_files(denoise_run.run_dir, tmp_path / "odd.png", out=tmp_path / "single.png")
    assert one[0]["output"] == str(tmp_path / "single.png")
    with pytest.raises(ConfigError, match="give a folder"):
        restore_files(denoise_run.run_dir, [tmp_path / "odd.png", tmp_path / "colour.png"], out=tmp_path / "x.png")


def test_x2_super_resolution_on_pairs(sr_pairs: Path, tmp_path: Path) -> None:
    from pixlearn.tasks.restore.train import train_restorer

    res = train_restorer(sr_pairs, task="super-resolution", model="espcn", width=8, val_fraction=0.34, out=tmp_path / "sr", **TINY)
    m = res.metrics
    assert m["scale"] == 2 and m["input"]["method"] == "bicubic" and m["degradation"] == "paired folders"
    assert json.loads((res.run_dir / "weights" / "model.json").read_text())["mode"] == "RGB"
    r = load_restorer(res.run_dir)
    out = r.restore(np.zeros((11, 13, 3), np.uint8))
    assert out.shape == (22, 26, 3)


def test_mismatched_model_and_task_are_refused(grey_folder: Path, tmp_path: Path) -> None:
    from pixlearn.tasks.restore.train import train_restorer

    with pytest.raises(ConfigError, match="espcn or edsr"):
        train_restorer(grey_folder, task="super-resolution", model="dncnn", degrade="downscale:scale=2", out=tmp_path / "a", **TINY)
    with pytest.raises(ConfigError, match="--task super-resolution"):
        train_restorer(grey_folder, task="denoise", model="edsr", out=tmp_path / "b", **TINY)
    with pytest.raises(ConfigError, match="did you mean"):
        train_restorer(grey_folder, modle="dncnn", out=tmp_path / "c", **TINY)


def test_a_time_budget_stops_training_and_anneals_by_the_clock(grey_folder: Path, tmp_path: Path, monkeypatch) -> None:
    import csv

    from pixlearn.engine import budget as budget_mod
    from pixlearn.tasks.restore.train import train_restorer
    from tests.engine.clock import FakeClock, Tick

    clock = FakeClock(0.05)  # 0.05 s per step against a 0.02-minute (1.2 s) budget: 24 steps at most
    monkeypatch.setattr(budget_mod, "monotonic", clock)
    res = train_restorer(grey_folder, depth=3, width=4, minutes=0.02, eval_methods=[], val_fraction=0.25,
                         out=tmp_path / "timed", callbacks=[Tick(clock)], **{**TINY, "epochs": 500})
    assert 1 <= res.epochs_run < 500 and res.stop_reason == "budget" and not res.stopped_early  # the clock, not early stopping
    rows = list(csv.DictReader((res.run_dir / "metrics.csv").open()))
    assert float(rows[-1]["lr"]) < 1e-4  # the cosine followed the clock down from the peak 1e-3 to its end


def test_enhance_with_the_unet_and_a_custom_degradation(grey_folder: Path, tmp_path: Path) -> None:
    from pixlearn.tasks.restore.train import train_restorer

    res = train_restorer(grey_folder, task="enhance", model="unet", width=4, levels=2, val_fraction=0.25, out=tmp_path / "en", **TINY)
    assert res.metrics["degradation"].startswith("low_light") and {"clahe", "equalize", "nl_means", "model"} <= set(res.metrics["methods"])
    res = train_restorer(grey_folder, task="enhance", model="unet", width=4, levels=1, degrade="blur:sigma=0.5..1.5+jpeg:quality=20..50",
                         loss="charbonnier", eval_methods=["median"], val_fraction=0.25, out=tmp_path / "deblur", **TINY)
    assert res.metrics["degradation"] == "blur:sigma=0.5..1.5+jpeg:quality=20.0..50.0"
    assert set(res.metrics["methods"]) == {"model", "input", "median"}
