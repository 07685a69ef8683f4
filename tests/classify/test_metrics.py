"""Classification metrics: hand-computed answers, the one schema, plots and the HTML report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.classify.metrics import (
    classification_metrics,
    plot_confusion_matrix,
    plot_roc_curves,
)
from pixlearn.tasks.classify.report import write_classification_report

CLASSES = ["cat", "dog", "bird"]
# true:  cat cat cat dog dog dog dog bird bird bird
# pred:  cat cat dog dog dog bird dog bird cat  bird
Y_TRUE = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 1, 2, 1, 2, 0, 2]


def test_known_confusion_matrix_and_per_class_scores():
    m = classification_metrics(Y_TRUE, Y_PRED, classes=CLASSES)
    # rows true, columns predicted
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 3, 1], [1, 0, 2]]
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    # cat: P = 2/3 (2 of 3 predicted cats), R = 2/3; dog: P = 3/4, R = 3/4; bird: P = 2/3, R = 2/3
    pc = m["per_class"]
    assert pc["cat"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert pc["dog"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    assert pc["bird"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 4 * 3 / 4 + 3 * 2 / 3) / 10)
    assert m["classes"] == CLASSES
    assert "roc_auc_macro" not in m and "top5_accuracy" not in m
    json.dumps(m)  # plain JSON types only


def test_labels_may_be_names_or_indices():
    names = [CLASSES[i] for i in Y_TRUE]
    preds = [CLASSES[i] for i in Y_PRED]
    assert classification_metrics(names, preds, classes=CLASSES) == classification_metrics(Y_TRUE, Y_PRED, classes=CLASSES)


def test_unequal_precision_and_recall_with_an_unpredicted_class():
    # class 2 is never predicted: its precision is 0/0 -> 0, recall 0
    m = classification_metrics([0, 1, 2, 2], [0, 1, 1, 0], classes=["a", "b", "c"])
    pc = m["per_class"]
    assert pc["a"]["precision"] == pytest.approx(0.5) and pc["a"]["recall"] == 1.0
    assert pc["a"]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert pc["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}


def test_classes_absent_from_both_are_listed_but_not_averaged():
    m = classification_metrics([0, 0, 1], [0, 0, 1], classes=["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert m["per_class"]["c"]["support"] == 0
    assert m["confusion_matrix"][2] == [0, 0, 0]


def test_roc_auc_with_probabilities_and_decision_scores():
    y = [0, 0, 1, 1, 2, 2]
    perfect = np.eye(3)[y] * 0.8 + 0.1
    m = classification_metrics(y, y, classes=["a", "b", "c"], scores=perfect)
    assert m["roc_auc_macro"] == pytest.approx(1.0)
    # decision values (not probabilities, any range) work too; one mis-ranked pair for class a
    dec = np.array([[3.0, -1, -1], [0.5, 0, -2], [1.0, 2, -1], [-1, 2, 0], [-2, 0, 3], [-1, -1, 2]])
    m = classification_metrics(y, dec.argmax(1), classes=["a", "b", "c"], scores=dec)
    # class a: positives {3, 0.5} vs negatives {1, -1, -2, -1}: 7 of 8 pairs ranked right
    auc_a = 7 / 8
    assert m["roc_auc_macro"] == pytest.approx((auc_a + 1.0 + 1.0) / 3)


def test_top5_only_with_more_than_five_classes():
    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(8)]
    y = np.arange(40) % 8
    scores = rng.random((40, 8))
    scores[np.arange(40), y] += 0.0  # random ranking
    s_true = scores.copy()
    # make the true class rank exactly 6th for the first 10 samples, 1st for the rest
    for i in range(40):
        order = np.argsort(-s_true[i])
        s_true[i, y[i]] = s_true[i, order[5]] - 1e-9 if i < 10 else 10.0
    m = classification_metrics(y, s_true.argmax(1), classes=classes, scores=s_true)
    assert m["top5_accuracy"] == pytest.approx(30 / 40)
    m3 = classification_metrics([0, 1, 2], [0, 1, 2], classes=["a", "b", "c"], scores=np.eye(3))
    assert "top5_accuracy" not in m3


def test_binary_scores_may_be_one_column():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], classes=["neg", "pos"], scores=np.array([-2, 0.5, 1, 3]))
    assert m["roc_auc_macro"] == pytest.approx(1.0)


def test_roc_auc_is_none_without_positives_and_negatives():
    m = classification_metrics([0, 0], [0, 0], classes=["a", "b"], scores=np.array([[1.0, 0], [1, 0]]))
    assert m["roc_auc_macro"] is None


def test_input_errors():
    with pytest.raises(ConfigError, match="'fish', which is not one of the classes"):
        classification_metrics(["cat", "fish"], ["cat", "cat"], classes=CLASSES)
    with pytest.raises(ConfigError, match="outside 0..2"):
        classification_metrics([0, 3], [0, 0], classes=CLASSES)
    with pytest.raises(ShapeError, match="same length"):
        classification_metrics([0, 1], [0], classes=CLASSES)
    with pytest.raises(ShapeError, match=r"scores must have shape \(N, C\) = \(2, 3\)"):
        classification_metrics([0, 1], [0, 1], classes=CLASSES, scores=np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="empty"):
        classification_metrics([], [], classes=CLASSES)


def test_plots_and_report(tmp_path):
    m = classification_metrics(Y_TRUE, Y_PRED, classes=CLASSES, scores=np.eye(3)[Y_PRED])
    cm_png = plot_confusion_matrix(m["confusion_matrix"], CLASSES, tmp_path / "plots" / "cm.png")
    norm_png = plot_confusion_matrix(m["confusion_matrix"], CLASSES, tmp_path / "plots" / "cmn.png", normalize=True)
    roc_png = plot_roc_curves(Y_TRUE, np.eye(3)[Y_PRED], CLASSES, tmp_path / "plots" / "roc.png")
    for p in (cm_png, norm_png, roc_png):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ShapeError, match=r"\(3, 3\)"):
        plot_confusion_matrix([[1, 2], [3, 4]], CLASSES, tmp_path / "x.png")
    report = write_classification_report(
        tmp_path / "report.html", {**m, "split": "test", "cv": {"folds": 5, "accuracy_mean": 0.7, "accuracy_std": 0.1,
                                                                  "macro_f1_mean": 0.6, "macro_f1_std": 0.1}},
        title="t <1>", details={"model": "svm"}, plots=[cm_png, roc_png],
    )
    html = report.read_text()
    assert "<b>test</b> split" in html and "t &lt;1&gt;" in html
    assert html.count("data:image/png;base64,") == 2
    assert "0.7000 &plusmn; 0.1000" in html
    assert all(c in html for c in CLASSES)


def test_plotting_does_not_touch_the_global_backend(tmp_path):
    import subprocess
    import sys

    code = (
        "import matplotlib;"
        "from pixlearn.tasks.classify.metrics import plot_confusion_matrix;"
        f"plot_confusion_matrix([[1]], ['a'], r'{tmp_path / 'cm.png'}');"
        "import sys; print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
