"""train classic judges its held-out accuracy against chance and the majority class, as classification does."""

from __future__ import annotations

import html
import json

import numpy as np

from pixlearn.io import write_image
from tests.classic.test_classic import make_folder


def test_a_classic_model_that_beats_its_baselines_says_by_how_much(tmp_path, capsys):
    from pixlearn.cli import main

    data = make_folder(tmp_path / "patterns", per_class=10)
    run = tmp_path / "run"
    code = main(["train", "classic", "--data", str(data), "--img-size", "32", "--folds", "0", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 0, err
    m = json.loads((run / "metrics.json").read_text())
    v = m["verdict"]
    assert v["split"] == "holdout" and v["n"] == m["n"] == 6 and v["model_value"] == m["accuracy"]
    names = [b["name"] for b in v["baselines"]]
    assert names[1] == "chance" and names[0].startswith("the majority class '")
    assert v["baselines"][1]["value"] == 1 / 3 and v["baselines"][0]["value"] == 2 / 6  # 2 held-out images per class
    assert v["beats"] and v["sentence"].startswith("On the holdout split (n=6), accuracy ")
    assert v["sentence"] in err  # the CLI summary
    assert json.loads((run / "manifest.json").read_text())["verdict"] == v
    assert html.escape(v["sentence"]) in (run / "report.html").read_text()


def test_a_classic_model_that_does_not_beat_the_majority_class_is_warned_about(tmp_path, capsys):
    from pixlearn.cli import main

    rng = np.random.default_rng(0)
    for cls, n in (("many", 24), ("few", 6)):  # noise: nothing to learn, and one class 4x the other
        for i in range(n):
            write_image(tmp_path / "noise" / cls / f"{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    run = tmp_path / "run"
    code = main(["train", "classic", "--data", str(tmp_path / "noise"), "--img-size", "16", "--folds", "0", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 0, err
    v = json.loads((run / "metrics.json").read_text())["verdict"]
    assert not v["beats"] and v["baselines"][0]["name"] == "the majority class 'many'" and v["baselines"][0]["value"] == 5 / 6
    assert v["sentence"].startswith("Warning: on the holdout split (n=6), accuracy ") and "--features" in v["sentence"]
    assert "--minutes" not in v["sentence"]  # advice a classic model can follow
    assert v["sentence"] in err
    assert "class='verdict warning'" in (run / "report.html").read_text()
