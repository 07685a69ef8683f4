"""Segmentation metrics: known answers for IoU, Dice and pixel accuracy; empty masks; the ignore label."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.segment.metrics import SegmentationScorer, confusion_matrix, scores_from_confusion, segmentation_metrics
from pixlearn.tasks.segment.module import confusion_metric_class


def test_known_binary_masks():
    true = np.zeros((10, 10), np.uint8)
    true[2:6, 2:6] = 1  # 16 px
    pred = np.zeros((10, 10), np.uint8)
    pred[4:8, 4:8] = 1  # 16 px, 4 shared
    m = segmentation_metrics(pred, true, num_classes=2, classes=["bg", "fg"])
    fg, bg = m["per_class"]["fg"], m["per_class"]["bg"]
    assert fg["iou"] == pytest.approx(4 / 28)
    assert fg["dice"] == pytest.approx(8 / 32)
    assert bg["iou"] == pytest.approx(72 / 96)  # 84 true bg, 84 predicted bg, 72 shared
    assert m["mean_iou"] == pytest.approx((4 / 28 + 72 / 96) / 2)
    assert m["pixel_accuracy"] == pytest.approx(76 / 100)
    assert m["foreground_iou"] == pytest.approx(4 / 28)
    assert m["confusion_matrix"] == [[72, 12], [12, 4]]


def test_perfect_and_disjoint_predictions():
    true = np.array([[0, 1], [2, 2]])
    assert segmentation_metrics(true, true, num_classes=3)["mean_iou"] == 1.0
    m = segmentation_metrics(np.array([[1, 0], [0, 0]]), np.array([[0, 1], [1, 1]]), num_classes=2)
    assert m["mean_iou"] == 0.0 and m["mean_dice"] == 0.0 and m["pixel_accuracy"] == 0.0


def test_empty_masks_are_undefined_not_zero_or_one():
    empty = np.zeros((4, 4), int)
    m = segmentation_metrics(empty, empty, num_classes=2, classes=["bg", "fg"])
    assert m["per_class"]["fg"]["iou"] is None and m["per_class"]["fg"]["dice"] is None
    assert m["mean_iou"] == 1.0  # only the background is defined
    assert m["foreground_iou"] is None
    # a false positive on an image with an empty truth scores 0 for that class
    fp = empty.copy()
    fp[0, 0] = 1
    m = segmentation_metrics(fp, empty, num_classes=2, classes=["bg", "fg"])
    assert m["per_class"]["fg"]["iou"] == 0.0
    assert m["mean_iou"] == pytest.approx((15 / 16 + 0.0) / 2)


def test_ignore_label_is_left_out():
    true = np.array([[0, 1, 255, 255]])
    pred = np.array([[0, 1, 1, 0]])
    m = segmentation_metrics(pred, true, num_classes=2)
    assert m["pixels"] == 2 and m["mean_iou"] == 1.0
    with pytest.raises(ConfigError, match="class id 255"):
        segmentation_metrics(pred, true, num_classes=2, ignore_index=None)


def test_dataset_level_accumulation_pools_pixels():
    a_true, a_pred = np.ones((2, 2), int), np.ones((2, 2), int)
    b_true = np.zeros((4, 4), int)
    b_true[0, :2] = 1
    b_pred = np.zeros((4, 4), int)
    pooled = segmentation_metrics([a_pred, b_pred], [a_true, b_true], num_classes=2)
    cm = confusion_matrix(np.concatenate([a_pred.ravel(), b_pred.ravel()]), np.concatenate([a_true.ravel(), b_true.ravel()]), num_classes=2)
    assert pooled["confusion_matrix"] == cm.tolist() and pooled["n"] == 2
    assert pooled["per_class"]["1"]["iou"] == pytest.approx(4 / 6)


def test_errors_name_the_problem():
    with pytest.raises(ShapeError, match="same shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), num_classes=2)
    with pytest.raises(ConfigError, match="class id 3"):
        confusion_matrix(np.full((2, 2), 3), np.zeros((2, 2), int), num_classes=2)
    with pytest.raises(ShapeError, match="integer"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2), int), num_classes=2)
    with pytest.raises(ShapeError, match="square"):
        scores_from_confusion(np.zeros((2, 3)))


def test_training_metric_agrees_with_the_report_metric(rng):
    metric = confusion_metric_class()
    true = rng.integers(0, 3, (2, 16, 16))
    true[0, :2] = 255
    pred = rng.integers(0, 3, (2, 16, 16))
    ref = segmentation_metrics(list(pred), list(true), num_classes=3)
    for kind, key in (("miou", "mean_iou"), ("dice", "mean_dice"), ("pixel_accuracy", "pixel_accuracy")):
        m = metric(3, kind=kind)
        m.update(torch.as_tensor(pred), torch.as_tensor(true))
        assert float(m.compute()) == pytest.approx(ref[key], abs=1e-6)
    empty = metric(2, kind="miou")
    with pytest.warns(UserWarning, match="before the"):  # torchmetrics' own warning about an unused metric
        assert math.isnan(float(empty.compute()))


def test_scorer_counts_images():
    s = SegmentationScorer(num_classes=2)
    for _ in range(3):
        s.update(np.zeros((3, 3), int), np.zeros((3, 3), int))
    assert s.scores()["n"] == 3 and s.scores()["pixels"] == 27
