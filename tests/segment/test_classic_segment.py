"""Classical segmenters fitted on train images and scored on held-out ones under the network's metrics."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn._core.errors import UnknownNameError
from pixlearn.tasks.segment.classic import evaluate_classic_segmentation, fit_classic_segmenter


def test_fit_learns_which_side_is_the_object():
    img = np.zeros((6, 6), np.uint8)
    img[:, :3] = 220
    bright_obj = (img > 100).astype(int)
    assert fit_classic_segmenter("otsu", [(img, bright_obj)], num_classes=2).mapping == [0, 1]
    assert fit_classic_segmenter("otsu", [(img, 1 - bright_obj)], num_classes=2).mapping == [1, 0]


def test_otsu_on_bright_discs_is_near_perfect(binary_data):
    m = evaluate_classic_segmentation(binary_data, "otsu", val_fraction=0.3, seed=0)
    assert m["split"] == "val" and m["n"] == 3 and m["train_images"] == 7
    assert m["mean_iou"] > 0.9 and m["per_class"]["foreground"]["iou"] > 0.85
    assert m["fit_seconds"] >= 0 and "fitted on 7 train images" in m["source"]


@pytest.mark.parametrize("method", ["kmeans", "watershed", "adaptive_threshold"])
def test_other_methods_score_in_range(binary_data, method):
    m = evaluate_classic_segmentation(binary_data, method, val_fraction=0.3, seed=0)
    assert 0.0 <= m["mean_iou"] <= 1.0 and m["method"] == method and len(m["mapping"]) >= 2


def test_kmeans_handles_several_classes(shapes_data):
    m = evaluate_classic_segmentation(shapes_data, "kmeans", val_fraction=0.25, seed=0)
    assert len(m["mapping"]) == 4 and set(m["per_class"]) == {"background", "circle", "square", "triangle"}


def test_unknown_method():
    with pytest.raises(UnknownNameError, match="did you mean 'otsu'"):
        fit_classic_segmenter("otzu", [(np.zeros((2, 2), np.uint8), np.zeros((2, 2), int))], num_classes=2)
