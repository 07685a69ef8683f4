"""Detections drawn over images: boxes in the class colour, tags readable, masks tinted, bounds checked."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.detect.detections import Detections
from pixlearn.tasks.detect.draw import class_color, draw_detections

NAMES = ("cat", "dog")


def _det(boxes, scores, labels, masks=None):
    return Detections(np.array(boxes, np.float32), np.array(scores), np.array(labels), NAMES, masks)


def test_boxes_in_class_colours_and_input_untouched():
    image = np.full((100, 120, 3), 50, np.uint8)
    before = image.copy()
    out = draw_detections(image, _det([[10, 20, 60, 80], [70, 10, 110, 50]], [0.9, 0.8], [0, 1]), labels=False)
    assert (image == before).all() and out.shape == image.shape and out.dtype == np.uint8
    assert out[50, 10].tolist() == list(class_color(0))  # left edge of the cat box
    assert out[30, 110].tolist() == list(class_color(1))  # right edge of the dog box
    assert out[50, 35].tolist() == [50, 50, 50]  # inside a box: untouched without masks


def test_min_score_hides_weak_boxes():
    image = np.zeros((64, 64, 3), np.uint8)
    out = draw_detections(image, _det([[5, 5, 40, 40]], [0.3], [0]), min_score=0.5)
    assert (out == 0).all()


def test_tags_are_written_and_grow_with_the_image():
    def tag_pixels(size):
        image = np.zeros((size, size, 3), np.uint8)
        box = [size * 0.2, size * 0.4, size * 0.6, size * 0.8]
        plain = draw_detections(image, _det([box], [0.93], [0]), labels=False)
        tagged = draw_detections(image, _det([box], [0.93], [0]))
        return int((plain != tagged).any(2).sum())

    small, large = tag_pixels(96), tag_pixels(2000)
    assert small > 0 and large > 4 * small


def test_a_tag_at_the_top_edge_goes_inside_the_box():
    image = np.zeros((200, 200, 3), np.uint8)
    out = draw_detections(image, _det([[20, 0, 180, 150]], [0.9], [0]))
    assert (out[5:12, 25:60] != 0).any()  # the tag's fill sits inside the box, under its top edge


def test_masks_are_tinted_and_grey_images_drawn_in_colour():
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 10:20, 10:20] = True
    out = draw_detections(np.full((40, 40), 100, np.uint8), _det([[8, 8, 22, 22]], [0.9], [1], mask), labels=False, alpha=0.5)
    expected = np.rint(0.5 * 100 + 0.5 * np.array(class_color(1))).astype(int).tolist()
    assert out[15, 15].tolist() == expected and out[30, 30].tolist() == [100, 100, 100]


def test_bad_inputs_are_typed_errors():
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ConfigError, match="min_score"):
        draw_detections(image, _det([], [], []), min_score=2)
    with pytest.raises(ShapeError, match="masks"):
        draw_detections(image, _det([[0, 0, 5, 5]], [0.9], [0], np.zeros((1, 10, 10), bool)))
    with pytest.raises(ShapeError):
        draw_detections(np.zeros((40, 40, 3), np.float32), _det([], [], []))
