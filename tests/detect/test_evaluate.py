"""evaluate_detector and evaluate_detect_run with a small real detector: coloured rectangles found by connected
components (red: cat, green: dog), so that what it finds and misses is known in advance."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pixlearn._core.errors import ConfigError
from pixlearn.tasks.detect.detections import Detections, Detector, GroundTruth
from pixlearn.tasks.detect.evaluate import DetectEvaluation, evaluate_detect_run, evaluate_detector

CLASSES = ("cat", "dog")
COLORS = {0: (255, 0, 0), 1: (0, 255, 0)}
H, W = 96, 128


class BlobDetector:
    """Finds each solid red (cat) or green (dog) rectangle: box, instance mask, and a score that falls with the blob's
    position on the image (distinct scores)."""

    class_names = CLASSES
    name = "blobs"
    masks = True

    def __init__(self, shift: int = 0) -> None:
        self.shift = shift
        self.calls = 0

    def predict(self, images, *, score=0.25, iou=0.5, max_detections=100):
        self.calls += 1
        out = []
        for image in images:
            boxes, scores, labels, masks = [], [], [], []
            for label, color in COLORS.items():
                hit = np.all(image == np.array(color, np.uint8), axis=2).astype(np.uint8)
                n, comp, stats, _ = cv2.connectedComponentsWithStats(hit, connectivity=4)
                for k in range(1, n):
                    x, y, w, h = (int(v) for v in stats[k, :4])
                    boxes.append([x + self.shift, y, x + w + self.shift, y + h])
                    scores.append(0.95 - 0.001 * (x + y * W) / W)
                    labels.append(label)
                    masks.append(comp == k)
            det = Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), np.array(labels), CLASSES,
                             masks=np.array(masks, bool).reshape(-1, *image.shape[:2]))
            out.append(det.filter(min_score=score, max_detections=max_detections))
        return out


def scene(objects, drawn=None, extra=()):
    """An image with rectangles ``objects`` [(label, x1, y1, x2, y2)] (only those in ``drawn`` painted, default all),
    plus unannotated ``extra`` rectangles; its truth."""
    image = np.full((H, W, 3), 40, np.uint8)
    drawn = range(len(objects)) if drawn is None else drawn
    for j in drawn:
        lab, x1, y1, x2, y2 = objects[j]
        image[y1:y2, x1:x2] = COLORS[lab]
    for lab, x1, y1, x2, y2 in extra:
        image[y1:y2, x1:x2] = COLORS[lab]
    masks = np.zeros((len(objects), H, W), bool)
    for j, (_, x1, y1, x2, y2) in enumerate(objects):
        masks[j, y1:y2, x1:x2] = True
    truth = GroundTruth(np.array([o[1:] for o in objects], np.float32).reshape(-1, 4), np.array([o[0] for o in objects]),
                        CLASSES, (H, W), masks=masks)
    return image, truth


def samples():
    return [
        ("a.png", *scene([(0, 10, 10, 50, 60), (1, 70, 20, 110, 80)])),                # both found
        ("b.png", *scene([(0, 5, 5, 25, 30), (1, 60, 40, 100, 90), (0, 100, 5, 125, 25)], drawn=[0])),  # two missed
        ("c.png", *scene([(1, 20, 20, 60, 60)], extra=[(0, 80, 10, 120, 40)])),         # a spurious cat
        ("d.png", *scene([])),                                                          # nothing there
    ]


def test_a_detector_that_finds_every_object_scores_one_boxes_and_masks() -> None:
    det = BlobDetector()
    assert isinstance(det, Detector)
    data = [samples()[0], samples()[3]]
    ev = evaluate_detector(det, data, split="val", masks=True, batch=1)
    assert isinstance(ev, DetectEvaluation) and ev.split == "val" and ev.masks
    for key in ("map", "map50", "map75", "mask_map", "mask_map50"):
        assert ev.metrics[key] == pytest.approx(1.0, abs=1e-6), key
    assert ev.counts == {"images": 2, "objects": 2, "detections": 2, "skipped": 0}
    assert det.calls == 2  # batch=1
    assert ev.metrics["split"] == "val" and ev.metrics["detector"] == "blobs"


def test_a_shift_to_iou_0_6_counts_at_50_not_at_75() -> None:
    # the cat box of a.png is 40 wide: shifted 10 px its IoU is 30/50 = 0.6; the dog (40 wide) the same
    ev = evaluate_detector(BlobDetector(shift=10), [samples()[0]], split="test")
    assert ev.metrics["map50"] == pytest.approx(1.0, abs=1e-6)
    assert ev.metrics["map75"] == 0.0


def test_misses_false_positives_and_the_images_kept_for_the_report() -> None:
    ev = evaluate_detector(BlobDetector(), samples(), split="test", keep=2, batch=3)
    by_name = {r["name"]: r for r in ev.records}
    assert [len(by_name[f"{n}.png"]["misses"]) for n in "abcd"] == [0, 2, 0, 0]
    assert [len(by_name[f"{n}.png"]["false_positives"]) for n in "abcd"] == [0, 0, 1, 0]
    assert by_name["c.png"]["false_positives"][0]["kind"] == "background"
    assert [e["name"] for e in ev.examples] == ["a.png", "b.png"]  # the first ones
    assert ev.worst_misses[0]["name"] == "b.png" and len(ev.worst_misses) == 1  # only images with misses
    assert [e["name"] for e in ev.false_positives] == ["c.png"]
    assert ev.worst_misses[0]["highlight_truth"] == [1, 2]
    assert ev.confusion["matrix"] == [[2, 0, 1], [0, 2, 1], [1, 0, 0]]  # rows true cat, dog, background
    # 6 truths, 4 found with score > every false positive's but one
    assert ev.metrics["objects"] == 6 and 0.5 < ev.metrics["map50"] < 1.0


def test_nothing_to_score_is_an_error_that_names_the_split() -> None:
    with pytest.raises(ConfigError, match="no image to score in split 'test'"):
        evaluate_detector(BlobDetector(), [], split="test")


def test_the_report_names_the_split_beside_every_number(tmp_path: Path) -> None:
    from pixlearn.tasks.detect.report import write_detect_report

    ev = evaluate_detector(BlobDetector(), samples(), split="test", masks=True)
    val = evaluate_detector(BlobDetector(), samples()[:1], split="val", masks=True)
    path = write_detect_report(tmp_path, ev, more=[val], details={"model": "blobs"})
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "report.html"
    assert "test (4 images, 6 objects)" in page and "val (1 images, 2 objects)" in page
    assert f"map50 (test) = {ev.metrics['map50']:.4f}" in page
    assert "mask AP50" in page and "Per class (test split)" in page and "box AP50 (test)" in page
    assert "Worst misses (test split: 2 object(s)" in page and "Highest-scoring false positives (test split: 1" in page
    assert "Confusion matrix (test split)" in page
    for stem in ("pr_curves", "mask_pr_curves", "per_class_ap", "confusion", "examples", "worst_misses", "false_positives",
                 "missed_objects", "false_positive_crops"):
        assert (tmp_path / "plots" / f"{stem}_test.png").is_file(), stem
    assert page.count("data:image/png;base64,") == 9  # and close-ups of the missed objects and false positives


def _write_coco(root: Path, *, split: bool = True, area: float | None = None) -> Path:
    """The four scenes as a COCO dataset: a.png, b.png in train; c.png, d.png in val (one unsplit file when not
    ``split``); RLE masks; each annotation's ``area`` is its mask's, or ``area`` when given."""
    from pixlearn import write_image

    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir()
    split_of = {"a.png": "train", "b.png": "train", "c.png": "val", "d.png": "val"}
    files = {"train": {"images": [], "annotations": []}, "val": {"images": [], "annotations": []}}
    for i, (name, image, truth) in enumerate(samples(), start=1):
        write_image(root / "images" / name, image)
        part = files[split_of[name]]
        part["images"].append({"id": i, "file_name": name, "width": W, "height": H})
        for b, lab, m in zip(truth.boxes, truth.labels, truth.masks, strict=True):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            part["annotations"].append({
                "id": 100 * i + len(part["annotations"]), "image_id": i, "category_id": int(lab) + 1, "iscrowd": 0,
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])], "area": float(m.sum()) if area is None else area,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")}})
    if not split:
        files = {"": {"images": files["train"]["images"] + files["val"]["images"],
                      "annotations": files["train"]["annotations"] + files["val"]["annotations"]}}
    for name, part in files.items():
        part["categories"] = [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]
        (root / "annotations" / f"instances{'_' + name if name else ''}.json").write_text(json.dumps(part))
    return root


@pytest.fixture
def blob_runs(monkeypatch: pytest.MonkeyPatch):
    """``load_detector`` answering with a BlobDetector for any path (the run folder's network is not the subject here);
    a run named ``tiled`` was trained on 64 px tiles."""
    opened: list[Path] = []

    def load_detector(path, *, device="cpu"):
        opened.append(Path(path))
        det = BlobDetector()
        det.run_tile = (64, 0.25) if Path(path).name == "tiled" else None
        return det

    monkeypatch.setattr("pixlearn.tasks.detect.predict.load_detector", load_detector)
    return opened


def test_evaluate_detect_run_scores_the_val_split_and_writes_metrics_and_report(tmp_path: Path, blob_runs) -> None:
    data = _write_coco(tmp_path / "coco")
    run = tmp_path / "run"
    run.mkdir()
    res = evaluate_detect_run(run, data, out=tmp_path / "eval", progress=False)
    assert blob_runs == [run]
    assert res["task"] == "detect" and res["split"] == "val" and "its val split" in res["source"]
    assert res["n"] == 2 and res["objects"] == 1 and res["masks"] is True  # COCO masks + a detector that returns them
    assert res["map50"] == pytest.approx(1.0, abs=1e-6) and res["mask_map"] == pytest.approx(1.0, abs=1e-6)
    assert res["confusion_matrix"]["matrix"][2] == [1, 0, 0]  # the spurious cat of c.png
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["map50"] == res["map50"] and written["split"] == "val"
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "pixlearn eval: run on coco (val)" in page and "its val split" in page

    train = evaluate_detect_run(run, data, split="train", progress=False)
    assert train["n"] == 2 and train["objects"] == 5 and train["split"] == "train"
    with pytest.raises(ConfigError, match="has no 'test' split"):
        evaluate_detect_run(run, data, split="test")
    with pytest.raises(ConfigError, match="did you mean 'test'"):
        evaluate_detect_run(run, data, split="tset")


def test_evaluate_detect_run_refuses_data_without_boxes(tmp_path: Path, blob_runs) -> None:
    from pixlearn import write_image

    for name in ("cat/1.png", "dog/2.png"):
        write_image(tmp_path / "folder" / name, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="not boxes"):
        evaluate_detect_run(tmp_path / "run", tmp_path / "folder")


def test_auto_scores_the_runs_own_held_out_images_of_its_training_data(tmp_path: Path, blob_runs) -> None:
    from pixlearn.data.readers import read_dataset

    data = _write_coco(tmp_path / "coco", split=False)
    index = read_dataset(data)
    assert {r.split for r in index.records} == {None}
    run = tmp_path / "run"
    run.mkdir()
    held = [str(r.path) for r in index.records if r.path.name in ("b.png", "c.png")]
    manifest = {"data": {"fingerprint": index.fingerprint(), "splits": {"files": {"val": [], "test": held}}}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    res = evaluate_detect_run(run, data, progress=False)
    assert res["split"] == "test" and res["n"] == 2 and res["objects"] == 4  # b.png's three objects, c.png's one
    assert "the run's own test images" in res["source"]
    assert evaluate_detect_run(run, data, split="holdout")["n"] == 2
    assert evaluate_detect_run(run, data, split="all")["n"] == 4

    other = _write_coco(tmp_path / "other", split=False)  # the same images elsewhere: not the run's data
    assert evaluate_detect_run(run, other)["split"] == "all"
    (run / "manifest.json").write_text(json.dumps({"data": {"fingerprint": "0" * 64, "splits": {"files": {"test": held}}}}))
    with pytest.raises(ConfigError, match="'holdout' is the run's own held-out images"):
        evaluate_detect_run(run, data, split="holdout")


def test_the_areas_a_coco_file_states_sort_objects_into_sizes_as_pycocotools_does(tmp_path: Path, blob_runs) -> None:
    run = tmp_path / "run"
    run.mkdir()
    as_drawn = evaluate_detect_run(run, _write_coco(tmp_path / "drawn"), split="train")
    assert as_drawn["map_large"] is None and as_drawn["map_small"] is not None  # from 20x25 to 40x60 px
    stated = evaluate_detect_run(run, _write_coco(tmp_path / "stated", area=20000.0), split="train")
    assert stated["map_large"] == pytest.approx(stated["map"]) and stated["map_small"] is None  # the file says: large


def test_a_run_trained_on_tiles_is_scored_on_tiles_unless_told(tmp_path: Path, blob_runs) -> None:
    data = _write_coco(tmp_path / "coco")
    (tmp_path / "tiled").mkdir()
    res = evaluate_detect_run(tmp_path / "tiled", data, split="train")
    assert res["tile"] == 64 and res["detector"] == "blobs@tile64"
    plain = evaluate_detect_run(tmp_path / "tiled", data, split="train", tile=0)
    assert plain["tile"] is None and plain["detector"] == "blobs"
