"""A denoiser that has not learned: metrics.json, manifest.json and report.html say that it does not beat the noisy input
and the best classical method, and ``pixlearn predict`` warns once; ``pixlearn eval`` of the run says the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixlearn.cli import main
from tests.restore.conftest import TINY


@pytest.fixture(scope="module")
def untrained_run(grey_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """A DnCNN whose single epoch moves no weight (lr 1e-9): its output is the noisy input minus a random residual."""
    import torch

    from pixlearn.tasks.restore.train import train_restorer

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_restorer(grey_folder, task="denoise", model="dncnn", sigma=25, depth=4, width=8, val_fraction=0.25, lr=1e-9,
                              eval_methods=["nl_means", "bilateral"], out=tmp_path_factory.mktemp("runs") / "dn0", **TINY)
    finally:
        torch.set_num_threads(before)


def test_metrics_say_it_does_not_beat_the_noisy_input_or_non_local_means(untrained_run):
    m = untrained_run.metrics
    v = m["verdict"]
    assert v["metric"] == "PSNR" and v["key"] == "psnr" and v["split"] == m["split"] == "val" and v["n"] == m["n"]
    assert v["beats"] is False and v["outcome"] in ("worse", "tie")
    names = {b["name"]: b for b in v["baselines"]}
    assert names["the noisy input"]["value"] == pytest.approx(m["input"]["psnr"])
    best = max(("nl_means", "bilateral"), key=lambda k: m["methods"][k]["psnr"])
    label = {"nl_means": "non-local means", "bilateral": "the bilateral filter"}[best]
    assert names[f"the best classical method, {label}"]["value"] == pytest.approx(m["methods"][best]["psnr"])
    assert names[f"the best classical method, {label}"]["outcome"] == "worse"  # a real denoiser beats a model that never trained
    assert v["model_value"] == pytest.approx(m["psnr"])
    assert v["sentence"].startswith(f"Warning: on the val split (n={m['n']}), PSNR {m['psnr']:.2f} dB does not")
    run = untrained_run.run_dir
    assert json.loads((run / "metrics.json").read_text())["verdict"] == v
    assert json.loads((run / "manifest.json").read_text())["verdict"] == v
    page = (run / "report.html").read_text()
    assert "class='verdict warning'" in page and "Against the baselines (val split" in page


def test_predict_warns_once(untrained_run, grey_folder, tmp_path, capsys):
    run = untrained_run.run_dir
    image = sorted(grey_folder.glob("*.png"))[0]
    code = main(["predict", str(run), str(image), "-o", str(tmp_path / "out.png"), "--format", "json"])
    _, err = capsys.readouterr()
    assert code == 0 and (tmp_path / "out.png").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert f"run {run}" in warnings[0] and "PSNR" in warnings[0] and f"{untrained_run.metrics['psnr']:.2f} dB" in warnings[0]
    assert "the noisy input" in warnings[0]


def test_eval_of_the_run_carries_the_verdict(untrained_run, grey_folder):
    from pixlearn.tasks.restore.evaluate import evaluate_restore_folder

    res = evaluate_restore_folder(grey_folder, run=untrained_run.run_dir, methods=["nl_means"])
    assert res["split"] == "holdout"
    v = res["verdict"]
    assert v["split"] == "holdout" and v["beats"] is False
    assert [b["name"] for b in v["baselines"]] == ["the best classical method, non-local means", "the noisy input"]


def test_restoration_verdict_for_super_resolution_names_bicubic():
    from pixlearn.tasks.restore.evaluate import restoration_verdict

    s = {"model": {"psnr": 30.0, "n": 3}, "bicubic": {"psnr": 28.0, "n": 3}}
    v = restoration_verdict(s, split="test", task="super-resolution")
    assert v.beats and [c["name"] for c in v.comparisons] == ["bicubic upscaling"]
    tie = restoration_verdict({"model": {"psnr": 28.05, "n": 3}, "input": {"psnr": 20.0, "n": 3}, "tv": {"psnr": 28.0, "n": 3}},
                              split="test", task="enhance")
    assert tie.outcome == "tie" and "does not clearly beat the best classical method, total-variation denoising" in tie.sentence()
    assert "the degraded input (20.00 dB) by +8.05 dB" in tie.sentence()
