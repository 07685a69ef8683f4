"""Test-time augmentation chosen on val at the end of training (none or transpose), recorded with the weights, used by predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixlearn.engine.run_card import read_model_card
from pixlearn.tasks.segment.evaluate import TTA_CHOICES, choose_tta
from pixlearn.tasks.segment.predict import load_segmenter


class _RowSeg:
    """Sees only whole rows (the foreground share of each row); the transposed view adds the columns it misses."""

    classes = ["background", "disc"]

    def __init__(self, binary: bool = True, helps: bool = True) -> None:
        self.binary, self.helps, self.tta, self.seen = binary, helps, "none", []

    def predict_proba(self, image):
        self.seen.append(self.tta)
        x = image[..., 0] > 0
        p = x.mean(axis=1, keepdims=True) * np.ones(x.shape)
        if self.tta == "transpose":
            p = (p + (x.mean(axis=0, keepdims=True) if self.helps else p)) / 2
        return np.stack([1 - p, p]).astype(np.float32)

    def predict(self, image):  # a multi-class segmenter's masks (here: the foreground above 0.3)
        return (self.predict_proba(image)[1] > 0.3).astype(np.uint8)


class _Index:
    classes, meta = ["background", "disc"], {}

    def __init__(self, unreadable=()) -> None:
        self.unreadable = set(unreadable)
        self.records = [type("Record", (), {"path": f"image{i}.png"})() for i in range(2)]

    def load(self, i):
        if i in self.unreadable:
            raise OSError(f"image {i} is damaged")
        mask = np.zeros((8, 8), np.uint8)
        mask[2:5, 3:6] = 1  # a square: rows alone cannot place it
        return type("Sample", (), {"image": np.repeat(mask[..., None] * 255, 3, axis=2), "mask": mask})()


@pytest.mark.parametrize("binary", [True, False])
def test_the_view_that_scores_higher_on_val_is_kept(binary):
    seg = _RowSeg(binary=binary)
    c = choose_tta(seg, _Index(), [0, 1])
    assert c.value == seg.tta == "transpose" and set(c.scores) == set(TTA_CHOICES) and c.images == 2
    assert c.scores["transpose"] == 1.0 > c.scores["none"]
    assert set(c.thresholds) == (set(TTA_CHOICES) if binary else set())  # a binary cut is chosen with each view
    assert c.to_dict()["chosen_on"] == "val" and "transpose (2 passes per tile), chosen on val (2 images)" in c.sentence()


def test_a_tie_keeps_the_cheaper_none_and_a_given_threshold_is_the_only_cut():
    seg = _RowSeg(helps=False)  # the transposed view answers the same
    c = choose_tta(seg, _Index(), [0, 1], threshold=0.3)
    assert c.value == seg.tta == "none" and c.scores["none"] == c.scores["transpose"]
    assert all(list(t.scores) == [0.3] for t in c.thresholds.values())
    assert c.sentence().startswith("no test-time augmentation")


def test_no_readable_val_image_chooses_nothing_and_leaves_the_segmenter_as_it_was():
    seg = _RowSeg()
    seg.tta = "flip"
    assert choose_tta(seg, _Index(unreadable={0, 1}), [0, 1]) is None and seg.tta == "flip"
    c = choose_tta(seg, _Index(unreadable={0}), [0, 1], monitor="val_dice")  # one damaged image: chosen on the other
    assert c.images == 1 and c.score == "mean_dice" and c.value == "transpose"


def test_a_run_records_the_chosen_view_and_its_val_scores_are_the_saved_segmenters(trained_run):
    """A 4-class run: both views score the val images; the saved segmenter reproduces each score and predicts with the winner."""
    from pixlearn.tasks.segment.data import read_segment_dataset
    from pixlearn.tasks.segment.evaluate import evaluate_split

    run, m = trained_run.run_dir, trained_run.metrics
    t = m["tta"]
    assert trained_run.config.train.tta == "auto" and t["chosen_on"] == "val" and set(t["scores"]) == set(TTA_CHOICES)
    best = max(t["scores"].values())
    assert t["value"] == next(v for v in TTA_CHOICES if t["scores"][v] >= best - 1e-12)
    for where in (run, run / "weights" / "best.safetensors"):  # the card beside the weights and the one inside them
        assert read_model_card(where, what="segmentation", command="pixlearn train segment")[0]["inference"]["tta"] == t["value"]
    assert load_segmenter(run).tta == t["value"] and m["mean_iou"] == pytest.approx(t["scores"][t["value"]], abs=1e-9)
    files = set(json.loads((run / "manifest.json").read_text())["data"]["splits"]["files"]["val"])
    index = read_segment_dataset(trained_run.config.data.path)
    val = [i for i, r in enumerate(index.records) if str(r.path) in files]
    for view, score in t["scores"].items():
        again = evaluate_split(load_segmenter(run, tta=view), index, val, split="val", progress=False).metrics["mean_iou"]
        assert again == pytest.approx(score, abs=1e-9), view
    assert t["text"] in (run / "report.html").read_text()


def test_the_cli_summary_shows_the_view(trained_run):
    from pixlearn.cli.train_segment import summary_rows

    rows = summary_rows(trained_run.metrics)
    assert rows[-1]["metric"] == "tta" and trained_run.metrics["tta"]["value"] in rows[-1].values()
