"""The YOLOX detector over onnxruntime, on tiny YOLOX-shaped ONNX files whose output is known: decoding, letterbox
undo, the network input (BGR, 0-255, grey padding), class-wise NMS, the file checks and where the weights are found."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.detect.detections import Detector
from pixlearn.tasks.detect.yolox import (COCO_CATEGORY_IDS, COCO_CLASSES, YOLOX_FILE, YoloxDetector, YoloxUnavailable,
                                         load_yolox, usable_cores)
from tests.detect.onnx_fixtures import Obj, make_yolox_onnx

# An 832 x 416 (w x h) image letterboxes by r = 0.5 into the top half of the 416 x 416 input.
W, H = 832, 416
CAT = Obj(100, 60, 40, 20, label=15, obj=0.9)                       # -> (160, 100, 240, 140), score 0.9
CUP = Obj(300, 150, 64, 96, label=41, obj=0.8, cls=0.5, stride=16)  # -> (536, 204, 664, 396), score 0.4
EDGE = Obj(410, 20, 40, 20, label=0, obj=0.6, stride=32)            # -> (780, 20, 832 clipped, 60), score 0.6


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return make_yolox_onnx(tmp_path_factory.mktemp("yolox") / "known.onnx", [CAT, CUP, EDGE])


def _image(rgb=(0, 0, 0)):
    return np.broadcast_to(np.array(rgb, np.uint8), (H, W, 3)).copy()


def test_decoding_undoes_the_letterbox_to_hand_computed_boxes(known):
    det = YoloxDetector(known)
    assert isinstance(det, Detector) and det.class_names == COCO_CLASSES and len(COCO_CATEGORY_IDS) == 80
    d = det.predict([_image()], score=0.3)[0]
    assert d.labels.tolist() == [15, 0, 41] and d.class_names[15] == "cat" and d.class_names[41] == "cup"
    np.testing.assert_allclose(d.scores, [0.9, 0.6, 0.4], atol=1e-6)
    np.testing.assert_allclose(d.boxes, [[160, 100, 240, 140], [780, 20, 832, 60], [536, 204, 664, 396]], atol=1e-3)


def test_score_and_max_detections_filter(known):
    det = YoloxDetector(known)
    assert det.predict([_image()], score=0.5)[0].labels.tolist() == [15, 0]
    assert det.predict([_image()], score=0.3, max_detections=1)[0].labels.tolist() == [15]
    assert len(det.predict([_image()], score=0.95)[0]) == 0


def test_the_same_objects_on_a_tall_image_scale_by_its_own_ratio(known):
    # a 208 x 104 image (h x w): r = min(416/208, 416/104) = 2, boxes halved
    d = YoloxDetector(known).predict([np.zeros((208, 104, 3), np.uint8)], score=0.85)[0]
    np.testing.assert_allclose(d.boxes, [[40, 25, 60, 35]], atol=1e-3)


def test_class_wise_nms(tmp_path):
    same = [Obj(100, 100, 60, 60, label=2, obj=0.9), Obj(104, 100, 60, 60, label=2, obj=0.7, stride=16)]
    other = [Obj(100, 100, 60, 60, label=3, obj=0.5, stride=32)]
    det = YoloxDetector(make_yolox_onnx(tmp_path / "nms.onnx", same + other))
    image = np.zeros((416, 416, 3), np.uint8)
    d = det.predict([image], iou=0.5)[0]
    assert d.labels.tolist() == [2, 3]  # the weaker car under the stronger one is dropped; the truck stays
    np.testing.assert_allclose(d.scores, [0.9, 0.5], atol=1e-6)
    assert det.predict([image], iou=1.0)[0].labels.tolist() == [2, 2, 3]  # iou 1: nothing is suppressed


def test_the_network_sees_bgr_0_255_on_grey_114(tmp_path):
    # objectness read from input channel 0 (blue in BGR) at the top-left pixel, and from a pixel of the padding
    objs = [Obj(100, 60, 40, 20, label=1, obj_pixel=(0, 0, 0)), Obj(200, 300, 40, 20, label=2, obj_pixel=(1, 415, 415))]
    det = YoloxDetector(make_yolox_onnx(tmp_path / "pix.onnx", objs))
    d = det.predict([_image((10, 20, 204))], score=0.01)[0]
    scores = dict(zip(d.labels.tolist(), d.scores.tolist(), strict=True))
    assert scores[1] == pytest.approx(204 / 255, abs=1e-5)  # blue, not red (10): BGR, unnormalised
    assert scores[2] == pytest.approx(114 / 255, abs=1e-5)  # the letterbox padding is grey 114


def test_grey_and_rgba_images_are_accepted_and_others_refused(known):
    det = YoloxDetector(known)
    assert det.predict([np.zeros((H, W), np.uint8)], score=0.85)[0].labels.tolist() == [15]
    assert det.predict([np.zeros((H, W, 4), np.uint8)], score=0.85)[0].labels.tolist() == [15]
    with pytest.raises(ShapeError, match="uint8"):
        det.predict([np.zeros((H, W, 3), np.float32)])
    with pytest.raises(ConfigError, match="score"):
        det.predict([_image()], score=2)


def test_a_file_that_is_not_yolox_is_refused_with_its_shapes(tmp_path):
    six = make_yolox_onnx(tmp_path / "six.onnx", [], columns=6)
    with pytest.raises(ConfigError, match=r"not a YOLOX detector.*6\].*expected"):
        YoloxDetector(six)
    small = make_yolox_onnx(tmp_path / "small.onnx", [], size=64)  # a 64-px YOLOX is still one: 84 cells
    assert YoloxDetector(small).size == (64, 64)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(ConfigError, match="cannot open"):
        YoloxDetector(junk)


def test_session_threads_default_to_the_usable_cores(known):
    det = YoloxDetector(known)
    assert det.threads == usable_cores() == det.session.get_session_options().intra_op_num_threads
    assert YoloxDetector(known, threads=1).session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ConfigError, match="threads"):
        YoloxDetector(known, threads=0)


def test_load_yolox_searches_the_weights_folders_and_names_them_when_absent(known, tmp_path, monkeypatch):
    weights, cache = tmp_path / "weights", tmp_path / "cache"
    weights.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(weights))
    monkeypatch.setenv("PIXLEARN_CACHE", str(cache))
    with pytest.raises(YoloxUnavailable) as err:
        load_yolox()
    msg = str(err.value)
    for part in (YOLOX_FILE, str(weights), str(cache / "weights"), "--weights", "PIXLEARN_WEIGHTS"):
        assert part in msg
    (cache / "weights").mkdir(parents=True)
    shutil.copy(known, cache / "weights" / YOLOX_FILE)
    assert load_yolox().path == cache / "weights" / YOLOX_FILE  # the cache folder
    shutil.copy(known, weights / YOLOX_FILE)
    assert load_yolox().path == weights / YOLOX_FILE  # PIXLEARN_WEIGHTS first
    assert load_yolox(known).path == known
    with pytest.raises(YoloxUnavailable, match="no such file"):
        load_yolox(tmp_path / "missing.onnx")
