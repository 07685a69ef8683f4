"""Scoring a run folder on a dataset (which split, which classes), its plots, and a report that names every split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.classify.metrics import classification_metrics
from pixlearn.tasks.classify.evaluate import evaluate_run
from pixlearn.tasks.classify.plots import plot_mistakes, plot_per_class, plot_pr_curves, plot_training_curves, worst_mistakes
from pixlearn.engine.report import write_run_report
from pixlearn.tasks.classify.report import HEADLINE_METRICS
from pixlearn.models import create_model, save_weights
from pixlearn.tasks.classify.predict import model_card
from tests.classify.helpers import make_dataset


def _fake_run(root, classes=("blue", "green", "red")):
    torch.manual_seed(0)
    m = create_model("pixlearn_smallcnn_tiny", num_classes=len(classes), img_size=12)
    card = model_card(m, classes)
    save_weights(m, root / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(card)})
    (root / "weights" / "model.json").write_text(json.dumps(card))
    return root


def test_eval_picks_the_test_split_or_every_image(tmp_path):
    run = _fake_run(tmp_path / "run")
    with_test = make_dataset(tmp_path / "split", splits={"train": 4, "test": 3})
    m = evaluate_run(run, with_test)
    assert m["split"] == "test" and m["n"] == 9 and m["source"].startswith("the test split")
    flat = make_dataset(tmp_path / "flat", per_class=3)
    m = evaluate_run(run, flat, out=tmp_path / "out")
    assert m["split"] == "all" and m["n"] == 9
    assert {"metrics.json", "report.html", "plots"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["split"] == "all"
    with pytest.raises(ConfigError, match="not that data"):
        evaluate_run(run, flat, split="holdout")
    with pytest.raises(ConfigError, match="has no 'val' split"):
        evaluate_run(run, flat, split="val")


def test_eval_matches_classes_by_name(tmp_path):
    run = _fake_run(tmp_path / "run", classes=("green", "red", "blue"))  # another order than the folder's sorted names
    data = make_dataset(tmp_path / "d", per_class=2, classes=("red", "green"))
    m = evaluate_run(run, data)
    assert m["classes"] == ["green", "red", "blue"] and m["per_class"]["blue"]["support"] == 0
    assert m["per_class"]["red"]["support"] == 2


def test_eval_refuses_unknown_classes(tmp_path):
    run = _fake_run(tmp_path / "run", classes=("red", "green"))
    data = make_dataset(tmp_path / "d", per_class=2, classes=("red", "blue"))
    with pytest.raises(ConfigError, match=r"class\(es\) \['blue'\] that the model was not trained on"):
        evaluate_run(run, data)


def test_plots_are_written(tmp_path):
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10, "val_macro_f1": 0.4 + e / 10,
             "lr": 0.1 / e, "backbone_lr": 0.01 / e} for e in (1, 2, 3)]
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    m = classification_metrics(y, p.argmax(1), classes=["a", "b", "c"], scores=p)
    paths = [
        plot_training_curves(rows, tmp_path / "curves.png"),
        plot_pr_curves(y, p, ["a", "b", "c"], tmp_path / "pr.png"),
        plot_per_class(m, tmp_path / "pc.png"),
        plot_mistakes([np.zeros((8, 8, 3), np.uint8)] * 3, ["x"] * 3, tmp_path / "m.png"),
        plot_mistakes([], [], tmp_path / "none.png"),
    ]
    assert all(q.read_bytes()[:4] == b"\x89PNG" for q in paths)
    assert worst_mistakes(y, p) == [1, 3]  # wrong with 0.7, then with 0.6: most confident first
    assert worst_mistakes(y, p, k=1) == [1]


def test_report_names_the_split_of_every_number(tmp_path):
    test = {**classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], classes=["a", "b"]), "split": "test"}
    val = {**classification_metrics([0, 1], [0, 1], classes=["a", "b"]), "split": "val", "note": "chose the epoch"}
    splits = [{"split": "train", "images": 10, "source": "train/", "used_for": "fitting"},
              {"split": "test", "images": 4, "source": "test/", "used_for": "final scores only"}]
    cv = {"folds": 3, "split": "test", "metrics": {"test_accuracy": {"mean": 0.7, "std": 0.1, "per_fold": [0.6, 0.7, 0.8]}}}
    html = write_run_report(tmp_path / "r.html", title="t", scores=[test, val], splits=splits, cv=cv,
                            notes=["a note"], details={"model": "x"}, headline=HEADLINE_METRICS).read_text()
    assert "test (4 images)" in html and "val (2 images)" in html and "accuracy (test) = 0.7500" in html
    assert "Per class (test split)" in html and "final scores only" in html and "chose the epoch" in html
    assert "0.7000 ± 0.1000" in html and "a note" in html
