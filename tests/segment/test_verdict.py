"""A segmenter's final evaluation scores the classical segmenters on the same held-out images and says, in
metrics.json, manifest.json and report.html, whether the network beats the best of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixlearn.cli import main
from tests.segment.conftest import TINY


@pytest.fixture(scope="module")
def untrained_disc_run(binary_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Bright discs on a dark background (Otsu's threshold finds them) and a U-Net whose one epoch moves no weight."""
    from pixlearn.tasks.segment.train import train_segmenter

    return train_segmenter(binary_data, model=TINY["arch"], encoder=TINY["encoder"], set=TINY["set"], epochs=1, img_size=32, batch=4,
                           lr=1e-9, out=tmp_path_factory.mktemp("runs") / "discs", progress=False)


def test_classical_segmenters_are_scored_on_the_held_out_images(untrained_disc_run):
    m = untrained_disc_run.metrics
    rows = m["classic_baselines"]
    assert {r["method"] for r in rows} == {"otsu", "adaptive_threshold", "kmeans", "watershed"}
    for r in rows:
        assert r["split"] == m["split"] and r["n"] == m["n"]  # the very images the network was scored on
        assert 0.0 <= r["mean_iou"] <= 1.0 and 1 <= r["train_images"] <= 4
    assert [r["mean_iou"] for r in rows] == sorted((r["mean_iou"] for r in rows), reverse=True)
    otsu = next(r for r in rows if r["method"] == "otsu")
    assert otsu["mean_iou"] > 0.9  # the discs are a clean threshold


def test_verdict_says_the_untrained_network_does_not_beat_the_best_classical_segmenter(untrained_disc_run):
    m = untrained_disc_run.metrics
    v = m["verdict"]
    best = m["classic_baselines"][0]
    assert v["metric"] == "mean IoU" and v["key"] == "mean_iou" and v["split"] == m["split"] and v["n"] == m["n"]
    assert v["model_value"] == pytest.approx(m["mean_iou"])
    assert v["baselines"] == [{"name": f"the best classical segmenter, {best['method'].replace('_', ' ')}", "value": best["mean_iou"],
                               "difference": pytest.approx(m["mean_iou"] - best["mean_iou"]), "outcome": "worse"}]
    assert v["beats"] is False and v["sentence"].startswith(f"Warning: on the {m['split']} split (n={m['n']}), mean IoU ")
    run = untrained_disc_run.run_dir
    assert json.loads((run / "manifest.json").read_text())["verdict"] == v
    page = (run / "report.html").read_text()
    assert "class='verdict warning'" in page and "Classical baselines on the same images" in page


def test_predict_warns_once(untrained_disc_run, binary_data, tmp_path, capsys):
    run = untrained_disc_run.run_dir
    image = sorted((binary_data / "images").glob("*.png"))[0]
    code = main(["predict", str(run), str(image), "-o", str(tmp_path / "mask.png"), "--format", "json"])
    _, err = capsys.readouterr()
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"run {run}" in warnings[0] and "mean IoU" in warnings[0], err


def test_segmentation_verdict_margin_and_missing_baselines():
    from pixlearn.tasks.segment.evaluate import segmentation_verdict

    near = segmentation_verdict({"split": "test", "n": 6, "mean_iou": 0.703}, [{"method": "otsu", "mean_iou": 0.70}, {"method": "kmeans", "mean_iou": None}])
    assert near.outcome == "tie" and "does not clearly beat the best classical segmenter, otsu" in near.sentence()
    win = segmentation_verdict({"split": "test", "n": 6, "mean_iou": 0.80}, [{"method": "watershed", "mean_iou": 0.65}])
    assert win.beats and win.sentence() == ("On the test split (n=6), mean IoU 0.800 beats the best classical segmenter, watershed (0.650), "
                                            "by +0.150.")
    assert segmentation_verdict({"split": "test", "mean_iou": 0.5}, []) is None


def test_eval_of_a_run_scores_the_classical_segmenters_on_the_same_images_and_says_the_verdict(untrained_disc_run, binary_data,
                                                                                               tmp_path, capsys):
    run = untrained_disc_run.run_dir
    code = main(["eval", str(run), "--data", str(binary_data), "--out", str(tmp_path / "e"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    trained = untrained_disc_run.metrics
    assert res["split"] == trained["split"] and res["n"] == trained["n"]  # the run's own held-out images
    # fitted on the run's own training images and scored on the same held-out ones: the numbers of the training run's verdict
    assert [(b["method"], b["mean_iou"]) for b in res["classic_baselines"]] == [(b["method"], b["mean_iou"]) for b in trained["classic_baselines"]]
    assert all("the run's own training images" in b["fitted_on"] for b in res["classic_baselines"])
    v = res["verdict"]
    assert v["baselines"] == trained["verdict"]["baselines"] and v["beats"] is False
    assert v["sentence"].startswith(f"Warning: on the {res['split']} split (n={res['n']}), mean IoU ")
    assert v["sentence"] in err  # the CLI says it
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["verdict"] == v
    page = (tmp_path / "e" / "report.html").read_text()
    assert "class='verdict warning'" in page and "Classical baselines on the same images" in page


def test_eval_on_other_data_without_a_train_split_fits_the_baselines_on_the_scored_images_and_says_so(untrained_disc_run, tmp_path):
    from pixlearn.tasks.segment.evaluate import evaluate_segment_run
    from tests.segment.conftest import make_binary_dataset

    other = make_binary_dataset(tmp_path / "other", n=3, size=(32, 32), seed=5)
    res = evaluate_segment_run(untrained_disc_run.run_dir, other, out=tmp_path / "e")
    assert res["split"] == "all" and res["n"] == 3
    assert res["classic_baselines"] and all("the scored images" in b["fitted_on"] for b in res["classic_baselines"])
    assert res["verdict"]["split"] == "all" and res["verdict"]["n"] == 3
    assert "fitted on the scored images themselves" in (tmp_path / "e" / "report.html").read_text()
    assert "verdict" not in evaluate_segment_run(untrained_disc_run.run_dir, other, baselines=False)
