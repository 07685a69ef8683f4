"""Tiled detection: windows cover the image, boxes come back on the image's pixels, cut objects are not doubled."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.detect.detections import Detections, Detector
from pixlearn.tasks.detect.tiles import TiledDetector, check_detect_options, check_tiling, tile_windows


class PaintDetector:
    """Finds painted rectangles: every connected region of pixel value ``k + 1`` (red channel) is an object of class k.

    Whatever part of an object a window shows is what it reports (a cut object gives a cut box), like a real
    detector looking through a window. ``calls`` counts the images it was given.
    """

    class_names = ("a", "b")
    name = "paint"

    def __init__(self, *, masks: bool = False) -> None:
        self.masks = masks
        self.calls = 0

    def predict(self, images, *, score=0.25, iou=0.5, max_detections=100):
        out = []
        for im in images:
            self.calls += 1
            boxes, labels, scores, masks = [], [], [], []
            for k in range(len(self.class_names)):
                comp, n = ndimage.label(im[..., 0] == k + 1)
                for sl, i in zip(ndimage.find_objects(comp), range(1, n + 1), strict=True):
                    boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                    labels.append(k)
                    scores.append(0.9 - 0.01 * len(scores))
                    masks.append(comp == i)
            m = np.array(masks, bool).reshape(-1, *im.shape[:2]) if self.masks else None
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, labels, self.class_names, m)
                       .filter(min_score=score, max_detections=max_detections))
        return out


def _paint(h, w, objects):
    im = np.zeros((h, w, 3), np.uint8)
    for x0, y0, x1, y1, k in objects:
        im[y0:y1, x0:x1, 0] = k + 1
    return im


def _as_set(det: Detections):
    return sorted((tuple(int(v) for v in b), int(lab)) for b, lab in zip(det.boxes, det.labels, strict=True))


def test_windows_cover_the_image_with_the_overlap_and_end_flush():
    h, w, tile, overlap = 300, 470, 128, 0.25
    wins = tile_windows(h, w, tile, overlap)
    covered = np.zeros((h, w), int)
    for x0, y0, x1, y1 in wins:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x1 - x0 == tile and y1 - y0 == tile
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    xs = sorted({x0 for x0, *_ in wins})
    assert max(x1 for *_, x1, _ in wins) == w and max(y1 for *_, y1 in wins) == h
    assert all(b - a <= tile - round(tile * overlap) for a, b in zip(xs, xs[1:], strict=False))
    assert tile_windows(50, 700, 128, 0.2)[0] == (0, 0, 128, 50)  # a short side: one window of its own length


@pytest.mark.parametrize("bad", [dict(tile=32), dict(tile=5000), dict(tile=100.5), dict(tile=128, overlap=0.95),
                                 dict(tile=128, overlap=-0.1), dict(tile=True)])
def test_tiling_bounds_are_typed_errors(bad):
    with pytest.raises(ConfigError, match="tile|overlap"):
        check_tiling(**bad)


@pytest.mark.parametrize("bad", [dict(score=1.2), dict(score=float("nan")), dict(iou=0), dict(iou=1.5),
                                 dict(max_detections=0), dict(max_detections=1001), dict(max_detections=2.5)])
def test_detect_options_bounds_are_typed_errors(bad):
    with pytest.raises(ConfigError, match="must"):
        check_detect_options(**bad)


def test_small_objects_across_window_edges_come_back_once_on_image_pixels():
    # tile 128, overlap 32: windows at 0, 96, 172 (w=300); objects inside one window, inside the shared strip,
    # and straddling an inner edge (x 120..136 crosses the first window's right edge at 128)
    objects = [(10, 10, 30, 30, 0), (100, 40, 120, 60, 1), (120, 150, 136, 170, 0), (250, 250, 290, 290, 1),
               (160, 5, 180, 25, 0)]
    image = _paint(300, 300, objects)
    inner = PaintDetector()
    tiled = TiledDetector(inner, tile=128, overlap=0.25, full_image=False)
    det = tiled.predict([image])[0]
    assert _as_set(det) == sorted(((x0, y0, x1, y1), k) for x0, y0, x1, y1, k in objects)
    assert det.meta["tiles"] == 9 and inner.calls == 9
    assert isinstance(tiled, Detector) and tiled.class_names == ("a", "b")
    assert tiled.masks is False and tiled.name == "paint@tile128"  # other attributes are the wrapped detector's


def test_an_object_larger_than_the_overlap_is_stitched_from_its_pieces():
    objects = [(40, 30, 230, 90, 1), (20, 200, 60, 240, 0)]  # 190 px wide: no 128-px window holds it whole
    image = _paint(256, 300, objects)
    det = TiledDetector(PaintDetector(), tile=128, overlap=0.2, full_image=False).predict([image])[0]
    assert _as_set(det) == sorted(((x0, y0, x1, y1), k) for x0, y0, x1, y1, k in objects)


def test_whole_image_pass_absorbs_the_pieces_of_a_large_object():
    objects = [(40, 30, 230, 200, 0), (250, 220, 260, 230, 1)]
    image = _paint(256, 300, objects)
    inner = PaintDetector()
    det = TiledDetector(inner, tile=128, overlap=0.2).predict([image])[0]
    assert _as_set(det) == sorted(((x0, y0, x1, y1), k) for x0, y0, x1, y1, k in objects)
    assert inner.calls == len(tile_windows(256, 300, 128, 0.2)) + 1


def test_two_classes_overlapping_are_both_kept_and_scores_filter():
    objects = [(10, 10, 60, 60, 0), (30, 30, 80, 80, 1)]
    image = _paint(200, 200, objects)
    det = TiledDetector(PaintDetector(), tile=128, overlap=0.2).predict([image], iou=0.3)[0]
    assert sorted(det.labels.tolist()) == [0, 1]
    assert len(TiledDetector(PaintDetector(), tile=128).predict([image], score=0.99)[0]) == 0
    assert len(TiledDetector(PaintDetector(), tile=128).predict([image], max_detections=1)[0]) == 1


@pytest.mark.parametrize("full_image", [False, True])
def test_masks_are_pasted_back_onto_the_image(full_image):
    # a small object in the windows' shared strip, one inside a window, one wider than any window (stitched)
    objects = [(100, 20, 150, 60, 0), (10, 150, 30, 170, 1), (20, 80, 240, 120, 1)]
    image = _paint(200, 260, objects)
    det = TiledDetector(PaintDetector(masks=True), tile=128, overlap=0.25, full_image=full_image).predict([image])[0]
    assert det.masks is not None and det.masks.shape == (3, 200, 260)
    for box, mask in zip(det.boxes.astype(int), det.masks, strict=True):
        x0, y0, x1, y1 = box
        truth = np.zeros((200, 260), bool)
        truth[y0:y1, x0:x1] = True
        assert (mask == truth).all()
    assert _as_set(det) == sorted(((x0, y0, x1, y1), k) for x0, y0, x1, y1, k in objects)


def test_an_image_within_one_tile_is_passed_through():
    inner = PaintDetector()
    image = _paint(100, 120, [(5, 5, 20, 20, 0)])
    det = TiledDetector(inner, tile=128).predict([image])[0]
    assert inner.calls == 1 and _as_set(det) == [((5, 5, 20, 20), 0)] and det.meta["tiles"] == 1
