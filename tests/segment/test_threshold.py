"""A binary segmenter's decision threshold: chosen on val at the end of training, recorded with the weights, used by predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError
from pixlearn.engine.run_card import read_model_card
from pixlearn.tasks.segment.evaluate import THRESHOLDS, choose_threshold
from pixlearn.tasks.segment.predict import Segmenter, load_segmenter

from .conftest import TINY


class _Seg:
    """Foreground probability ``fg`` where the image is bright and ``bg`` elsewhere."""

    classes, binary = ["background", "disc"], True

    def __init__(self, fg: float, bg: float) -> None:
        self.fg, self.bg = fg, bg

    def predict_proba(self, image):
        p = np.where(image[..., 0] > 0, self.fg, self.bg).astype(np.float32)
        return np.stack([1 - p, p])


class _Index:
    """Images whose bright pixels are the true foreground; ``mask_fn`` may alter the true masks."""

    classes, meta = ["background", "disc"], {}

    def __init__(self, mask_fn=lambda m: m, unreadable=()) -> None:
        self.mask_fn, self.unreadable = mask_fn, set(unreadable)
        self.records = [type("Record", (), {"path": f"image{i}.png"})() for i in range(2)]

    def load(self, i):
        if i in self.unreadable:
            raise OSError(f"image {i} is damaged")
        truth = np.zeros((6, 6), np.uint8)
        truth[:, :2] = 1  # a thin foreground
        image = np.repeat(truth[..., None] * 255, 3, axis=2)
        return type("Sample", (), {"image": image, "mask": self.mask_fn(truth.copy())})()


def test_the_cut_that_separates_the_classes_is_chosen_and_a_tie_keeps_the_one_nearest_half():
    c = choose_threshold(_Seg(0.62, 0.52), _Index(), [0, 1])
    assert c.value == 0.55 and c.scores[0.55] == 1.0 and c.scores[0.5] < 1.0  # 0.55 and 0.6 both separate: the nearer
    assert c.images == 2 and c.score == "mean_iou" and set(c.scores) == set(THRESHOLDS)
    assert choose_threshold(_Seg(0.9, 0.1), _Index(), [0]).value == 0.5  # every cut separates them: 0.5 stays
    row = c.to_dict()
    assert row["chosen_on"] == "val" and row["at_0.5"] == c.scores[0.5] and row["at_value"] == 1.0
    assert "0.55, chosen on val (2 images)" in c.sentence()


def test_monitored_score_ignored_pixels_and_unreadable_images():
    # the would-be errors of the cut at 0.5 sit on ignored pixels only: every cut scores the same, 0.5 stays
    def ignore_background(m):
        m[m == 0] = 255
        return m

    assert choose_threshold(_Seg(0.62, 0.52), _Index(ignore_background), [0]).value == 0.5
    c = choose_threshold(_Seg(0.62, 0.52), _Index(unreadable={0}), [0, 1], monitor="val_dice")
    assert c.images == 1 and c.score == "mean_dice" and c.value == 0.55
    assert choose_threshold(_Seg(0.62, 0.52), _Index(unreadable={0}), [0]) is None  # nothing to choose on
    multi = _Seg(0.6, 0.4)
    multi.binary = False
    assert choose_threshold(multi, _Index(), [0]) is None  # a softmax segmenter has no threshold


def test_a_threshold_outside_0_1_is_refused():
    import torch

    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        Segmenter(torch.nn.Identity(), ["background", "disc"], binary=True, tile=(32, 32), threshold=1.0)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory, binary_data):
    from pixlearn.tasks.segment.train import train_segmenter

    return train_segmenter(binary_data, model=TINY["arch"], encoder=TINY["encoder"], set=TINY["set"], epochs=1, img_size=32, batch=4,
                           out=tmp_path_factory.mktemp("runs") / "binary", progress=False)


def test_a_binary_run_chooses_its_threshold_on_val_and_predict_uses_it(binary_run, binary_data):
    from pixlearn.tasks.segment.data import read_segment_dataset

    run, m = binary_run.run_dir, binary_run.metrics
    t = m["threshold"]
    assert t["chosen_on"] == "val" and t["value"] in THRESHOLDS and t["images"] == m["n"]
    for where in (run, run / "weights" / "best.safetensors"):  # the card beside the weights and the one inside them
        assert read_model_card(where, what="segmentation", command="pixlearn train segment")[0]["inference"]["threshold"] == t["value"]
    seg = load_segmenter(run)
    assert seg.threshold == t["value"] and load_segmenter(run, threshold=0.3).threshold == 0.3
    # the headline scores are the saved segmenter's at that threshold on the val images, as the choice saw them
    assert m["mean_iou"] == pytest.approx(t["at_value"], abs=1e-3) and t["at_value"] >= t["at_0.5"]
    files = set(json.loads((run / "manifest.json").read_text())["data"]["splits"]["files"]["val"])
    index = read_segment_dataset(binary_data)
    val = [i for i, r in enumerate(index.records) if str(r.path) in files]
    again = choose_threshold(seg, index, val)
    assert again.value == t["value"] and again.scores[t["value"]] == pytest.approx(t["at_value"], abs=1e-9)
    assert t["text"] in (run / "report.html").read_text()


def test_a_given_threshold_and_test_time_augmentation_are_kept(binary_data, tmp_path):
    from pixlearn.tasks.segment.train import train_segmenter

    r = train_segmenter(binary_data, model=TINY["arch"], encoder=TINY["encoder"], set=[*TINY["set"], "train.threshold=0.7", "train.tta=flip"],
                        epochs=1, img_size=32, batch=4, out=tmp_path / "run", progress=False)
    assert r.metrics["threshold"]["value"] == 0.7 and r.metrics["threshold"]["chosen_on"] == "train.threshold"
    assert r.metrics["tta"] == {"value": "flip", "chosen_on": "train.tta", "text": "test-time augmentation flip (train.tta)"}
    seg = load_segmenter(r.run_dir)
    assert seg.threshold == 0.7 and seg.tta == "flip"
    with pytest.raises(ConfigError, match="threshold"):
        train_segmenter(binary_data, model=TINY["arch"], encoder=TINY["encoder"], set=[*TINY["set"], "train.threshold=1.5"], epochs=1,
                        img_size=32, batch=4, out=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_the_cli_summary_shows_the_threshold(binary_run):
    from pixlearn.cli.train_segment import summary_rows

    rows = summary_rows(binary_run.metrics)
    assert rows[-1]["metric"] == "threshold" and binary_run.metrics["threshold"]["value"] in rows[-1].values()
