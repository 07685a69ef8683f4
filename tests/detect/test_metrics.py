"""DetectionEvaluator: pycocotools' own numbers on a known case, hand-checkable cases, the confusion matrix."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.detect.detections import Detections, GroundTruth
from pixlearn.tasks.detect.metrics import COCO_STATS, DetectionEvaluator, GroundTruthWithAreas

CLASSES = ("cat", "dog", "bird")


def _ellipse(h: int, w: int, box: np.ndarray) -> np.ndarray:
    """A filled ellipse inscribed in an integer xyxy box."""
    x1, y1, x2, y2 = (float(v) for v in box)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _known_case(seed: int = 0):
    """Six images, three classes: small, medium and large objects, a crowd region, an image without objects,
    an image whose objects nobody finds, shifted, rescaled, confused and spurious detections; distinct scores."""
    rng = np.random.default_rng(seed)
    sizes = [(160, 200), (150, 180), (128, 128), (96, 120), (160, 200), (140, 160)]
    # (w, h) of objects: small (< 32^2), medium, large (> 96^2)
    shapes = [(12, 14), (20, 25), (30, 30), (40, 50), (60, 70), (90, 80), (110, 100), (120, 130)]
    truths, preds = [], []
    scores = iter(rng.permutation(np.arange(50, 990, 3)) / 1000.0)  # distinct: no ties for COCO's stable sort
    for i, (h, w) in enumerate(sizes):
        n = 0 if i == 3 else int(rng.integers(2, 6))
        boxes, labels = [], []
        for _ in range(n):
            bw, bh = shapes[int(rng.integers(len(shapes)))]
            bw, bh = min(bw, w - 2), min(bh, h - 2)
            x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            boxes.append([x1, y1, x1 + bw, y1 + bh])
            labels.append(int(rng.integers(len(CLASSES))))
        crowd = [False] * n
        if i == 1:  # a crowd region of cats, and a cat detection inside it
            boxes.append([100, 60, 170, 140])
            labels.append(0)
            crowd.append(True)
        boxes_a = np.array(boxes, np.float32).reshape(-1, 4)
        masks = np.stack([_ellipse(h, w, b) for b in boxes_a]) if len(boxes_a) else np.zeros((0, h, w), bool)
        truths.append(GroundTruth(boxes_a, np.array(labels), CLASSES, (h, w), masks=masks, iscrowd=np.array(crowd, bool)))
        d_boxes, d_labels = [], []
        if i != 5:  # image 5: nothing is found
            for b, lab, c in zip(boxes_a, labels, crowd, strict=True):
                if c:
                    d_boxes.append([110, 70, 150, 120])
                    d_labels.append(lab)
                    continue
                for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 detections (duplicates) per object
                    jitter = rng.integers(-6, 7, size=4)
                    nb = np.clip(b + jitter, 0, [w, h, w, h])
                    if nb[2] - nb[0] < 2 or nb[3] - nb[1] < 2:
                        nb = b
                    d_boxes.append(nb.tolist())
                    d_labels.append(lab if rng.random() < 0.85 else int(rng.integers(len(CLASSES))))
        for _ in range(int(rng.integers(1, 4))):  # spurious detections
            bw, bh = int(rng.integers(8, 60)), int(rng.integers(8, 60))
            x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            d_boxes.append([x1, y1, x1 + bw, y1 + bh])
            d_labels.append(int(rng.integers(len(CLASSES))))
        db = np.array(d_boxes, np.float32).reshape(-1, 4)
        dmasks = np.stack([_ellipse(h, w, b) for b in db]) if len(db) else np.zeros((0, h, w), bool)
        preds.append(Detections(db, np.array([next(scores) for _ in db]), np.array(d_labels), CLASSES, masks=dmasks))
    return truths, preds


def _write_coco_json(truths, preds, folder: Path) -> tuple[Path, Path, Path]:
    """The same case as COCO files, written the way the COCO format defines them (xywh boxes, RLE masks, mask areas)."""

    def rle(m: np.ndarray) -> dict:
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        return {"size": r["size"], "counts": r["counts"].decode("ascii")}

    images, anns, boxes, segms = [], [], [], []
    for i, (t, p) in enumerate(zip(truths, preds, strict=True), start=1):
        images.append({"id": i, "height": t.image_size[0], "width": t.image_size[1], "file_name": f"{i}.png"})
        first = len(anns)
        for b, lab, m, c in zip(t.boxes, t.labels, t.masks, t.iscrowd, strict=True):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab) + 1, "iscrowd": int(c),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                         "area": float(getattr(t, "areas", None)[len(anns) - first] if hasattr(t, "areas") else m.sum()),
                         "segmentation": rle(m)})
        for b, s, lab, m in zip(p.boxes, p.scores, p.labels, p.masks, strict=True):
            boxes.append({"image_id": i, "category_id": int(lab) + 1, "score": float(s),
                          "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
            segms.append({"image_id": i, "category_id": int(lab) + 1, "score": float(s), "segmentation": rle(m)})
    gt = folder / "instances.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns,
                              "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]}))
    (folder / "bbox.json").write_text(json.dumps(boxes))
    (folder / "segm.json").write_text(json.dumps(segms))
    return gt, folder / "bbox.json", folder / "segm.json"


def test_stated_areas_are_the_ones_pycocotools_reads(tmp_path: Path) -> None:
    """Exporters state COCO's ``area`` their own way (Roboflow: the box's); pycocotools sorts sizes by that field."""
    truths, preds = _known_case(0)
    stated = [GroundTruthWithAreas(t.boxes, t.labels, t.class_names, t.image_size, masks=t.masks, iscrowd=t.iscrowd,
                                   areas=(t.boxes[:, 2] - t.boxes[:, 0]) * (t.boxes[:, 3] - t.boxes[:, 1]))
              for t in truths]
    ev = DetectionEvaluator(CLASSES, masks=True)
    ev.update(preds, stated)
    ours = ev.compute()
    plain = DetectionEvaluator(CLASSES)
    plain.update(preds, truths)
    assert plain.compute()["map_medium"] != pytest.approx(ours["map_medium"], abs=1e-4)  # the areas matter here
    gt_file, bbox_file, segm_file = _write_coco_json(stated, preds, tmp_path)
    for iou_type, prefix, res in (("bbox", "", bbox_file), ("segm", "mask_", segm_file)):
        for name, ref in zip(COCO_STATS, _pycocotools(gt_file, res, iou_type), strict=True):
            assert (ours[prefix + name] if ours[prefix + name] is not None else -1.0) == pytest.approx(ref, abs=1e-4), prefix + name


def _pycocotools(gt_file: Path, res_file: Path, iou_type: str, cat: int | None = None) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(res_file)), iou_type)
        if cat is not None:
            ev.params.catIds = [cat]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_numbers_equal_pycocotools_on_a_known_case(tmp_path: Path, seed: int) -> None:
    truths, preds = _known_case(seed)
    ev = DetectionEvaluator(CLASSES, masks=True)
    ev.update(preds[:3], truths[:3])
    ev.update(preds[3:], truths[3:])
    ours = ev.compute()
    gt_file, bbox_file, segm_file = _write_coco_json(truths, preds, tmp_path)
    for iou_type, prefix, res in (("bbox", "", bbox_file), ("segm", "mask_", segm_file)):
        stats = _pycocotools(gt_file, res, iou_type)
        for name, ref in zip(COCO_STATS, stats, strict=True):
            value = ours[prefix + name]
            if ref < 0:
                assert value is None, (prefix + name, value)
            else:
                assert value == pytest.approx(ref, abs=1e-4), (prefix + name, value, ref)
        for k, cls in enumerate(CLASSES):  # per-class AP = pycocotools restricted to that category
            ref = _pycocotools(gt_file, res, iou_type, cat=k + 1)
            assert ours[prefix + "per_class"][cls] == pytest.approx(ref[0], abs=1e-4)
            assert ours[prefix + "per_class50"][cls] == pytest.approx(ref[1], abs=1e-4)
    # the case exercises what it claims: every area range, both kinds, imperfect scores
    for key in ("map", "map_small", "map_medium", "map_large", "mask_map", "mask_map_small", "mask_map_large"):
        assert ours[key] is not None and 0.0 < ours[key] < 1.0, key
    assert ours["crowd"] == 1 and ours["n"] == 6


def test_pr_curves_follow_cocoeval_precision() -> None:
    truths, preds = _known_case(0)
    ev = DetectionEvaluator(CLASSES)
    ev.update(preds, truths)
    m = ev.compute()
    curves = m["pr_curves"]
    assert len(curves["recall"]) == 101 and curves["recall"][0] == 0.0 and curves["recall"][-1] == 1.0
    for cls in CLASSES:
        curve = curves["iou50"][cls]
        assert len(curve) == 101
        assert np.mean(curve) == pytest.approx(m["per_class50"][cls], abs=1e-3)  # AP50 is the curve's mean
        assert np.all(np.diff(curve) <= 1e-9)  # COCO's interpolated precision never rises with recall
        assert np.mean(curves["iou50_95"][cls]) == pytest.approx(m["per_class"][cls], abs=1e-3)


def _gt(boxes, labels, size=(200, 200), classes=("cat",), **kw) -> GroundTruth:
    return GroundTruth(np.array(boxes, np.float32).reshape(-1, 4), np.array(labels), classes, size, **kw)


def _det(boxes, scores, labels, classes=("cat",), **kw) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), np.array(labels), classes, **kw)


def test_a_perfect_prediction_scores_one() -> None:
    ev = DetectionEvaluator(["cat"], masks=True)
    mask = np.zeros((1, 200, 200), bool)
    mask[0, 20:120, 30:140] = True
    ev.update([_det([[30, 20, 140, 120]], [0.8], [0], masks=mask)], [_gt([[30, 20, 140, 120]], [0], masks=mask)])
    m = ev.compute()
    for key in ("map", "map50", "map75", "map_large", "mar_100", "mask_map", "mask_map50", "mask_map_large"):
        assert m[key] == pytest.approx(1.0, abs=1e-6), key
    assert m["map_small"] is None and m["map_medium"] is None  # no small or medium object: COCO's -1
    assert m["per_class"]["cat"] == pytest.approx(1.0, abs=1e-6)


def test_a_box_shifted_to_iou_0_6_counts_at_50_and_not_at_75() -> None:
    ev = DetectionEvaluator(["cat"])
    # 100x100 truth, the box moved 25 px right: intersection 75x100, union 125x100 -> IoU 0.6
    ev.update([_det([[35, 10, 135, 110]], [0.9], [0])], [_gt([[10, 10, 110, 110]], [0])])
    m = ev.compute()
    assert m["map50"] == pytest.approx(1.0, abs=1e-6)
    assert m["map75"] == 0.0
    assert 0.1 < m["map"] < 0.4  # found at IoU 0.50 and 0.55 (and perhaps 0.60) of the ten thresholds


def test_nothing_predicted_scores_zero_and_nothing_to_find_is_undefined() -> None:
    ev = DetectionEvaluator(["cat", "dog"])
    ev.update([_det([], [], [], ("cat", "dog"))], [_gt([[10, 10, 60, 60]], [0], classes=("cat", "dog"))])
    m = ev.compute()
    assert m["map"] == 0.0 and m["map50"] == 0.0 and m["mar_100"] == 0.0
    assert m["per_class"] == {"cat": 0.0, "dog": None}  # no dog anywhere: left out of the mean, as in COCO
    assert m["detections"] == 0 and m["objects"] == 1

    empty = DetectionEvaluator(["cat"])
    empty.update([_det([[1, 1, 20, 20]], [0.9], [0])], [_gt([], [])])
    e = empty.compute()
    assert e["map"] is None and e["map50"] is None and e["per_class"] == {"cat": None}
    assert e["confusion_matrix"]["matrix"] == [[0, 0], [1, 0]]  # the detection is a false positive
    assert json.loads(json.dumps(e))["map"] is None  # valid JSON: no NaN, no -1
    assert DetectionEvaluator(["cat"]).compute()["map"] is None  # no image at all


def test_confusion_matrix_and_records_on_a_hand_made_case() -> None:
    names = ("cat", "dog")
    truth = _gt([[0, 0, 40, 40], [100, 0, 140, 40], [0, 100, 40, 140], [150, 150, 199, 199]], [0, 0, 1, 0],
                classes=names, iscrowd=np.array([False, False, False, True]))
    pred = _det(
        [[1, 1, 40, 40],        # cat on cat A: true positive
         [100, 0, 139, 41],     # dog on cat B: a class confusion
         [60, 60, 90, 90],      # cat where there is nothing: background false positive
         [2, 102, 40, 140],     # dog on dog C, but below the score threshold: C counts as missed
         [155, 155, 195, 195]],  # cat inside the crowd region of cats: ignored
        [0.9, 0.8, 0.7, 0.1, 0.6], [0, 1, 0, 1, 0], classes=names)
    ev = DetectionEvaluator(names, score_threshold=0.25)
    ev.update([pred], [truth], names=["a.jpg"])
    cm = ev.compute()["confusion_matrix"]
    assert cm["labels"] == ["cat", "dog", "background"]
    #                  predicted: cat dog bg
    assert cm["matrix"] == [[1, 1, 0],   # true cat: A found, B taken for a dog
                            [0, 0, 1],   # true dog: C missed
                            [1, 0, 0]]   # background: the spurious cat
    rec = ev.records[0]
    assert (rec["name"], rec["truths"], rec["crowd"], rec["detections"], rec["true_positives"], rec["ignored"]) == ("a.jpg", 3, 1, 4, 1, 1)
    misses = {m["class_name"] + ":" + m["kind"]: m for m in rec["misses"]}
    assert set(misses) == {"cat:class", "dog:missed"}
    assert misses["cat:class"]["predicted_as"] == "dog"
    assert misses["dog:missed"]["best_score"] == pytest.approx(0.1)  # found, but only at score 0.1
    assert misses["dog:missed"]["area"] == 1600.0
    fps = sorted(rec["false_positives"], key=lambda f: -f["score"])
    assert [(f["class_name"], f["kind"], f["true_class"]) for f in fps] == [("dog", "class", "cat"), ("cat", "background", None)]
    assert fps[0]["score"] == pytest.approx(0.8) and fps[1]["iou"] == 0.0


def test_same_class_pairs_are_matched_before_confusions() -> None:
    # a dog box overlaps the cat best, a cat box a little less: the cat box is the match, the dog a false positive
    ev = DetectionEvaluator(["cat", "dog"])
    ev.update([_det([[0, 0, 100, 100], [0, 0, 100, 90]], [0.9, 0.5], [1, 0], classes=("cat", "dog"))],
              [_gt([[0, 0, 100, 100]], [0], classes=("cat", "dog"))])
    assert ev.compute()["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]


def test_detector_classes_are_matched_by_name() -> None:
    truth = _gt([[10, 10, 60, 60]], [1], classes=("cat", "dog"))
    # a COCO-style detector: other classes, another order; its "car" is not scored here
    pred = _det([[10, 10, 60, 60], [100, 100, 150, 150]], [0.9, 0.8], [2, 0], classes=("car", "cat", "dog"))
    ev = DetectionEvaluator(["cat", "dog"])
    ev.update([pred], [truth])
    m = ev.compute()
    assert m["per_class"]["dog"] == pytest.approx(1.0, abs=1e-6) and m["dropped"] == 1
    with pytest.raises(ConfigError, match="none of the detector's classes"):
        ev.update([_det([[0, 0, 5, 5]], [0.5], [0], classes=("car",))], [truth])
    with pytest.raises(ConfigError, match=r"ground truth has classes \['bird'\]"):
        ev.update([pred], [_gt([[0, 0, 5, 5]], [0], classes=("bird",))])


def test_bad_inputs_are_refused_with_the_fix() -> None:
    ev = DetectionEvaluator(["cat"], masks=True)
    with pytest.raises(ConfigError, match="without masks"):
        ev.update([_det([[0, 0, 5, 5]], [0.5], [0])], [_gt([[0, 0, 5, 5]], [0], masks=np.ones((1, 200, 200), bool))])
    with pytest.raises(ConfigError, match="truth has none"):
        ev.update([_det([], [], [])], [_gt([[0, 0, 5, 5]], [0])])
    with pytest.raises(ShapeError, match="one Detections per GroundTruth"):
        ev.update([], [_gt([], [])])
    with pytest.raises(ShapeError, match="predicted masks are 10x10"):
        ev.update([_det([[0, 0, 5, 5]], [0.5], [0], masks=np.ones((1, 10, 10), bool))],
                  [_gt([[0, 0, 5, 5]], [0], masks=np.ones((1, 200, 200), bool))])
    with pytest.raises(ConfigError, match="unique"):
        DetectionEvaluator(["cat", "cat"])
    with pytest.raises(ConfigError, match="score_threshold"):
        DetectionEvaluator(["cat"], score_threshold=2)
