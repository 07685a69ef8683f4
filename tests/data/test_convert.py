"""Writers and conversion: COCO <-> YOLO <-> VOC round trips, safety of the destination, the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.types import Task
from pixlearn.cli import main
from pixlearn.data.convert import convert
from pixlearn.data.masks import encode_rle
from pixlearn.data.readers import read_dataset
from pixlearn.data.writers import write_coco, write_voc, write_yolo
from pixlearn.io import write_image

from tests.data.test_readers import H, W, img, make_coco, make_voc, rect_mask


def make_detection_coco(root: Path) -> Path:
    """Fractional boxes on images of two sizes, non-contiguous category ids, three splits, a crowd box."""
    rng = np.random.default_rng(1)
    cats = [{"id": 2, "name": "bicycle"}, {"id": 5, "name": "airplane"}, {"id": 9, "name": "zebra"}]
    ann_id = 100
    for split, n in (("train", 3), ("val", 2), ("test", 1)):
        images, anns = [], []
        for i in range(n):
            h, w = (H, W) if i % 2 == 0 else (40, 30)
            name = f"{split}_{i}.jpg"
            write_image(root / "images" / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            images.append({"id": 10 * i + 1, "file_name": name, "width": w, "height": h})
            for _ in range(i + 1):
                x, y = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
                bw, bh = rng.uniform(1.5, w / 2), rng.uniform(1.5, h / 2)
                cat = int(rng.choice([2, 5, 9]))
                anns.append({"id": ann_id, "image_id": 10 * i + 1, "category_id": cat, "bbox": [x, y, bw, bh], "iscrowd": 0})
                ann_id += 1
        data = {"images": images, "annotations": anns, "categories": cats}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def boxes_by_image(index) -> dict[str, tuple[np.ndarray, list[str]]]:
    out = {}
    for r in index.records:
        out[r.path.name] = (np.asarray(r.boxes, np.float64), [index.classes[i] for i in r.box_labels])
    return out


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in sorted(root.rglob("*")) if p.is_file()}


def test_coco_yolo_coco_round_trip_keeps_boxes_names_and_order(tmp_path):
    src = make_detection_coco(tmp_path / "coco")
    before = snapshot(src)
    original = read_dataset(src)
    result = convert(src, tmp_path / "yolo", to="yolo")
    assert (result.images, result.annotations) == (6, sum(len(r.boxes) for r in original.records))
    assert (tmp_path / "yolo" / "labels" / "val" / "val_0.txt").is_file()
    yolo = read_dataset(tmp_path / "yolo")
    assert (yolo.format, yolo.classes, yolo.splits()) == ("yolo", ["bicycle", "airplane", "zebra"], original.splits())
    convert(tmp_path / "yolo", tmp_path / "back", to="coco")
    back = read_dataset(tmp_path / "back")
    assert back.classes == original.classes and back.splits() == original.splits()
    a, b = boxes_by_image(original), boxes_by_image(back)
    assert a.keys() == b.keys()
    for name, (boxes, labels) in a.items():
        assert b[name][1] == labels
        np.testing.assert_allclose(b[name][0], boxes, rtol=1e-3, atol=1e-3)
    assert snapshot(src) == before  # the source is untouched


def test_coco_voc_coco_round_trip_within_a_pixel(tmp_path):
    src = make_detection_coco(tmp_path / "coco")
    original = read_dataset(src)
    convert(src, tmp_path / "voc", to="voc")
    voc = read_dataset(tmp_path / "voc")
    assert voc.format == "voc" and voc.classes == original.classes and voc.splits() == original.splits()
    assert "<xmin>" in next((tmp_path / "voc" / "Annotations").glob("*.xml")).read_text()
    convert(tmp_path / "voc", tmp_path / "back", to="coco")
    back = read_dataset(tmp_path / "back")
    assert back.classes == original.classes
    a, b = boxes_by_image(original), boxes_by_image(back)
    for name, (boxes, labels) in a.items():
        assert b[name][1] == labels
        assert np.abs(b[name][0] - boxes).max() <= 1.0


def test_coco_to_coco_restores_ids_and_masks(tmp_path):
    src = make_coco(tmp_path / "src")
    convert(src, tmp_path / "out", to="coco")
    data = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert [c["id"] for c in data["categories"]] == [3, 7]
    assert [a["id"] for a in data["annotations"]] == [11, 12] and [i["id"] for i in data["images"]] == [1, 2]
    assert data["annotations"][0]["segmentation"] == [[4, 5, 20, 5, 20, 25, 4, 25]]
    assert data["annotations"][0]["area"] == 16 * 20
    back = read_dataset(tmp_path / "out")
    assert back.task is Task.INSTANCE and back.records[2].meta["iscrowd"] == [1]
    np.testing.assert_array_equal(back.load(0).masks[1], rect_mask(30, 2, 44, 12))


def test_instance_masks_through_yolo_polygons(tmp_path):
    src = make_coco(tmp_path / "src")  # polygon, compressed RLE, crowd uncompressed RLE
    result = convert(src, tmp_path / "yolo", to="yolo")
    assert any("crowd" in n for n in result.notes)
    line = (tmp_path / "yolo" / "labels" / "train" / "a.txt").read_text().splitlines()[0].split()
    assert line[0] == "0" and len(line) == 9  # class + 4 polygon points
    yolo = read_dataset(tmp_path / "yolo")
    assert yolo.task is Task.INSTANCE
    original = read_dataset(src)
    for i in range(len(original)):
        m0, m1 = original.load(i).masks, yolo.load(i).masks
        assert m0.shape == m1.shape
        for x, y in zip(m0, m1):
            assert (x & y).sum() / max((x | y).sum(), 1) > 0.95
    np.testing.assert_allclose(yolo.records[0].boxes, original.records[0].boxes, atol=1e-3)
    # a YOLO polygon's box is its extent: the crowd mask's, not the looser COCO bbox
    np.testing.assert_allclose(yolo.records[2].boxes, [[10, 10, 30, 20]], atol=1e-3)


def test_multi_part_instance_joined_into_one_yolo_polygon(tmp_path):
    img(tmp_path / "src" / "images" / "a.png")
    two = rect_mask(2, 2, 10, 10) | rect_mask(30, 15, 40, 28)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 38, 26], "segmentation": encode_rle(two)}],
        "categories": [{"id": 1, "name": "blob"}],
    }
    (tmp_path / "src" / "annotations").mkdir()
    (tmp_path / "src" / "annotations" / "instances.json").write_text(json.dumps(data))
    convert(tmp_path / "src", tmp_path / "yolo", to="yolo")
    assert len((tmp_path / "yolo" / "labels" / "a.txt").read_text().splitlines()) == 1
    back = read_dataset(tmp_path / "yolo")
    assert back.splits() == {None: 1}  # unsplit in, unsplit out
    np.testing.assert_allclose(back.records[0].boxes, [[2, 2, 40, 28]], atol=1e-3)
    m = back.load(0).masks[0]
    assert (m & two).sum() == two.sum() and (m & ~two).sum() < 40  # only the zero-width bridge's pixels


def test_voc_to_yolo_and_voc_meta_restored(tmp_path):
    src = make_voc(tmp_path / "voc")
    convert(src, tmp_path / "voc2", to="voc")
    xml = (tmp_path / "voc2" / "Annotations" / "000001.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<difficult>1</difficult>" in xml
    assert (tmp_path / "voc2" / "ImageSets" / "Main" / "val.txt").read_text() == "000003\n"
    convert(src, tmp_path / "yolo", to="yolo")
    yolo = read_dataset(tmp_path / "yolo")
    np.testing.assert_allclose(yolo.records[0].boxes, [[0, 0, 10, 20], [4, 5, 48, 32]], atol=1e-4)


def test_destination_rules(tmp_path):
    src = make_coco(tmp_path / "src", with_masks=False)
    dst = tmp_path / "dst"
    convert(src, dst, to="yolo")
    image = dst / "images" / "train" / "a.png"
    if os.stat(image).st_dev == os.stat(src / "images" / "a.png").st_dev:
        assert os.path.samefile(image, src / "images" / "a.png")  # hard link, not a copy
    with pytest.raises(ConfigError, match="not empty; .* overwrite=True"):
        convert(src, dst, to="yolo")
    (dst / "labels" / "train" / "stale.txt").write_text("0 .5 .5 .1 .1\n")
    (dst / "notes.md").write_text("mine")
    before = (src / "images" / "a.png").read_bytes()
    convert(src, dst, to="yolo", overwrite=True)
    assert not (dst / "labels" / "train" / "stale.txt").exists() and (dst / "notes.md").read_text() == "mine"
    assert (src / "images" / "a.png").read_bytes() == before
    with pytest.raises(ConfigError, match="inside the source dataset"):
        convert(src, src / "converted", to="coco")
    with pytest.raises(ConfigError, match="holds source files"):
        convert(src, tmp_path, to="coco", overwrite=True)
    with pytest.raises(UnknownNameError, match="did you mean 'yolo'"):
        convert(src, tmp_path / "x", to="yolov5")
    for name in ("a", "b"):
        img(tmp_path / "cls" / name / "1.png")
    with pytest.raises(ConfigError, match="classify dataset"):
        convert(tmp_path / "cls", tmp_path / "x", to="coco")


def test_annotations_only_and_missing_images(tmp_path):
    src = make_coco(tmp_path / "src", with_masks=False)
    (src / "images" / "b.png").unlink()
    result = write_coco(read_dataset(src), tmp_path / "out", copy_images=False)
    assert result.images == 2 and any("skipped 1 record" in n for n in result.notes)
    assert not (tmp_path / "out" / "images").exists()
    data = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert [i["file_name"] for i in data["images"]] == ["a.png"]


def test_writers_take_an_index_directly(tmp_path):
    index = read_dataset(make_coco(tmp_path / "src"))
    assert write_voc(index, tmp_path / "v").notes[0].startswith("instance masks not written")
    assert write_yolo(index.subset("val"), tmp_path / "y").images == 1
    assert (tmp_path / "y" / "data.yaml").read_text().count("images/val") == 1


# ------------------------------------------------------------------ CLI
def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_data_convert(tmp_path, capsys):
    src = make_coco(tmp_path / "src", with_masks=False)
    code, out, err = run(["data", "convert", src, "--to", "yolo", tmp_path / "yolo"], capsys)
    assert code == 0 and out == ""
    assert "wrote 3 image(s) and 3 annotation(s) as yolo" in err and "note: 1 crowd annotation" in err
    assert read_dataset(tmp_path / "yolo").format == "yolo"
    code, _, err = run(["data", "convert", src, "--to", "yolo", tmp_path / "yolo"], capsys)
    assert code == 1 and "not empty" in err and err.count("\n") == 1
    code, _, _ = run(["data", "convert", src, "--to", "yolo", tmp_path / "yolo", "--overwrite"], capsys)
    assert code == 0
    code, _, err = run(["data", "convert", tmp_path / "yolo", "--to", "voc", tmp_path / "voc", "--from", "yolo"], capsys)
    assert code == 0 and read_dataset(tmp_path / "voc").format == "voc"
    code, _, err = run(["data", "convert", src, "--to", "vocc", tmp_path / "z"], capsys)
    assert code == 1 and "did you mean 'voc'" in err
    code, _, err = run(["data", "convert", src, tmp_path / "z"], capsys)
    assert code == 2 and "--to" in err


def test_cli_data_info(tmp_path, capsys):
    src = make_coco(tmp_path / "src")
    code, out, _ = run(["data", "info", src, "--format", "json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert (info["format"], info["task"], info["classes"], info["images"]) == ("coco", "instance", ["cat", "dog"], 3)
    assert info["splits"]["train"] == {"images": 2, "objects": 2, "per_class": {"cat": 1, "dog": 1}}
    assert info["splits"]["val"]["objects"] == 1
    code, out, _ = run(["data", "info", src], capsys)
    assert code == 0 and "coco dataset, task instance, 3 image(s), 2 class(es)" in out
    lines = [line.split() for line in out.splitlines()]
    assert lines[2:5] == [["split", "images", "objects"], ["train", "2", "2"], ["val", "1", "1"]]
    assert lines[6:] == [["class", "train", "val"], ["cat", "1", "1"], ["dog", "1", "0"]]
    code, out, _ = run(["data", "info", src, "--format", "csv"], capsys)
    assert out.splitlines() == ["split,images,objects,cat,dog", "train,2,2,1,1", "val,1,1,1,0"]
    code, _, err = run(["data", "info", tmp_path / "nowhere"], capsys)
    assert code == 1 and "does not exist" in err
    code, _, err = run(["data", "info", src, "--from", "coc"], capsys)
    assert code == 1 and "did you mean 'coco'" in err
