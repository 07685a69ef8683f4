"""Dataset readers: every format built in tmp_path with tiny images, read back into a DatasetIndex."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, PixlearnError, ShapeError, UnknownNameError
from pixlearn._core.types import Task
from pixlearn.data import masks as masks_mod
from pixlearn.data.masks import decode_rle, decode_segmentation, encode_rle, mask_to_polygons, rle_counts
from pixlearn.data.formats.voc import find_voc_root
from pixlearn.data.readers import AnnotationError, describe_dataset, detect_format, read_dataset
from pixlearn.io import write_image

H, W = 32, 48


def img(path: Path, h: int = H, w: int = W, value: int = 0) -> Path:
    return write_image(path, np.full((h, w, 3), value, np.uint8))


def problem_codes(rec) -> list[str]:
    return [p["code"] for p in rec.meta.get("problems", [])]


# ------------------------------------------------------------------ fixtures: one per format
def rect_mask(x1: int, y1: int, x2: int, y2: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y1:y2, x1:x2] = True
    return m


def uncompressed_rle(mask: np.ndarray) -> dict:
    return {"size": list(mask.shape), "counts": rle_counts(encode_rle(mask))}


def make_coco(root: Path, *, with_masks: bool = True) -> Path:
    """train: a.png (polygon cat + compressed-RLE dog), b.png (no objects); val: c.png (crowd, uncompressed RLE)."""
    for name in ("a.png", "b.png", "c.png"):
        img(root / "images" / name)
    cats = [{"id": 7, "name": "dog", "supercategory": "animal"}, {"id": 3, "name": "cat", "supercategory": "animal"}]
    poly = [[4, 5, 20, 5, 20, 25, 4, 25]]  # a rectangle covering x 4..20, y 5..25
    dog = rect_mask(30, 2, 44, 12)
    ann_a = [
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [4, 5, 16, 20], "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 7, "bbox": [30, 2, 14, 10], "iscrowd": 0},
    ]
    if with_masks:
        ann_a[0]["segmentation"] = poly
        ann_a[1]["segmentation"] = encode_rle(dog)
    train = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": W, "height": H},
            {"id": 2, "file_name": "b.png", "width": W, "height": H},
        ],
        "annotations": ann_a,
        "categories": cats,
    }
    crowd = rect_mask(10, 10, 30, 20)
    ann_c = {"id": 21, "image_id": 5, "category_id": 3, "bbox": [10.5, 10.25, 19.5, 9.75], "iscrowd": 1}
    if with_masks:
        ann_c["segmentation"] = uncompressed_rle(crowd)
    val = {"images": [{"id": 5, "file_name": "c.png", "width": W, "height": H}], "annotations": [ann_c], "categories": cats}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(train))
    (root / "annotations" / "instances_val.json").write_text(json.dumps(val))
    return root


def make_yolo(root: Path, *, names_as_dict: bool = True) -> Path:
    img(root / "images" / "train" / "a.png")
    img(root / "images" / "train" / "b.jpg")
    img(root / "images" / "val" / "c.png")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    # box x 12..36, y 8..24 of 48x32 -> cx .5 cy .5 w .5 h .5
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.25 0.25\n")
    (root / "labels" / "train" / "b.txt").write_text("")
    (root / "labels" / "val" / "c.txt").write_text("1 0.1 0.2 0.1 0.2\n")
    names = "names:\n  0: person\n  1: car\n" if names_as_dict else "names: [person, car]\n"
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\n{names}")
    return root


VOC_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>48</width><height>32</height><depth>3</depth></size>
  {objects}
</annotation>
"""
VOC_OBJ = "<object><name>{cls}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"


def make_voc(root: Path) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for name, objs in {
        "000001": [("dog", 1, 1, 10, 20, 0), ("person", 5, 6, 48, 32, 1)],
        "000002": [("cat", 11, 3, 30, 15, 0)],
        "000003": [],
    }.items():
        img(root / "JPEGImages" / f"{name}.jpg")
        body = "".join(VOC_OBJ.format(cls=c, x1=a, y1=b, x2=x, y2=y, d=d) for c, a, b, x, y, d in objs)
        (root / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name, objects=body))
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("000003\n")
    return root


def make_masks(root: Path, *, splits: bool = False) -> Path:
    sub = [("train", 2), ("val", 1)] if splits else [("", 3)]
    for split, n in sub:
        for i in range(n):
            img(root / "images" / split / f"im{i}.jpg")
            m = np.zeros((H, W), np.uint8)
            m[5:15, 10:20] = 1
            m[20:30, 30:40] = 2
            write_image(root / "masks" / split / f"im{i}.png", m)
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    return root


# ------------------------------------------------------------------ COCO
def test_coco_classes_splits_boxes_and_meta(tmp_path):
    index = read_dataset(make_coco(tmp_path))
    assert (index.format, index.task) == ("coco", Task.INSTANCE)
    assert index.classes == ["cat", "dog"]  # ordered by category id: 3, 7
    assert index.meta["category_ids"] == [3, 7]
    assert index.splits() == {"train": 2, "val": 1}
    a, b, c = index.records
    assert a.path == tmp_path / "images" / "a.png" and a.size == (H, W)
    np.testing.assert_allclose(a.boxes, [[4, 5, 20, 25], [30, 2, 44, 12]])
    assert a.box_labels.tolist() == [0, 1]
    assert a.meta["annotation_ids"] == [11, 12] and a.meta["iscrowd"] == [0, 0] and a.meta["image_id"] == 1
    assert b.boxes.shape == (0, 4) and b.segmentations == []
    np.testing.assert_allclose(c.boxes, [[10.5, 10.25, 30, 20]])
    assert c.meta["iscrowd"] == [1] and c.split == "val"
    assert not any(problem_codes(r) for r in index.records)


def test_coco_masks_from_polygon_and_rle_match_drawn_shapes(tmp_path):
    index = read_dataset(make_coco(tmp_path))
    s = index.load(0)
    assert s.masks.shape == (2, H, W) and s.masks.dtype == bool
    np.testing.assert_array_equal(s.masks[0], rect_mask(4, 5, 20, 25))  # polygon
    np.testing.assert_array_equal(s.masks[1], rect_mask(30, 2, 44, 12))  # compressed RLE
    assert index.load(1).masks.shape == (0, H, W)
    np.testing.assert_array_equal(index.load(2).masks[0], rect_mask(10, 10, 30, 20))  # uncompressed RLE


def test_coco_without_segmentations_is_detect_and_json_file_root(tmp_path):
    make_coco(tmp_path, with_masks=False)
    index = read_dataset(tmp_path / "annotations" / "instances_val.json")
    assert index.task is Task.DETECT and index.records[0].segmentations is None
    assert index.splits() == {"val": 1} and index.root == tmp_path
    assert index.records[0].path == tmp_path / "images" / "c.png"


def test_coco_json_beside_images_roboflow_layout(tmp_path):
    make_coco(tmp_path / "src")
    for split in ("train", "val"):
        data = json.loads((tmp_path / "src" / "annotations" / f"instances_{split}.json").read_text())
        (tmp_path / "rf" / split).mkdir(parents=True)
        (tmp_path / "rf" / split / "_annotations.coco.json").write_text(json.dumps(data))
        for im in data["images"]:
            img(tmp_path / "rf" / split / im["file_name"])
    index = read_dataset(tmp_path / "rf")
    assert index.format == "coco" and index.splits() == {"train": 2, "val": 1}
    assert index.records[2].path == tmp_path / "rf" / "val" / "c.png"


def test_coco_problems_are_kept_not_raised(tmp_path):
    make_coco(tmp_path, with_masks=False)
    p = tmp_path / "annotations" / "instances_train.json"
    data = json.loads(p.read_text())
    data["images"].append({"id": 3, "file_name": "gone.png", "width": W, "height": H})
    data["annotations"] += [
        {"id": 13, "image_id": 2, "category_id": 3, "bbox": [40, 20, 30, 30]},  # beyond the right/bottom edge
        {"id": 14, "image_id": 2, "category_id": 3, "bbox": [5, 5, 0, 4]},  # no width
    ]
    p.write_text(json.dumps(data))
    index = read_dataset(tmp_path, format="coco")
    recs = {r.path.name: r for r in index.records}
    assert problem_codes(recs["gone.png"]) == ["missing_image"]
    assert problem_codes(recs["b.png"]) == ["box_outside", "box_degenerate"]
    assert "annotation id 13" in recs["b.png"].meta["problems"][0]["message"]
    assert describe_dataset(index)["problems"] == {"missing_image": 1, "box_outside": 1, "box_degenerate": 1}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotation id 11: 'bbox' must be 4 numbers"),
        (lambda d: d["annotations"][0].update(category_id=99), "annotation id 11: category_id 99 is not in 'categories'"),
        (lambda d: d["annotations"][1].update(image_id=42), "annotation id 12: image_id 42 is not in 'images'"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "annotation id 11: a polygon has an odd number"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": [5, 5]}), "RLE counts sum to 10"),
        (lambda d: d["images"].append(dict(d["images"][0])), "image id 1 appears twice"),
        (lambda d: d.pop("categories"), "no 'categories' list"),
    ],
)
def test_coco_malformed_annotations_name_file_and_id(tmp_path, mutate, expected):
    make_coco(tmp_path)
    p = tmp_path / "annotations" / "instances_train.json"
    data = json.loads(p.read_text())
    mutate(data)
    p.write_text(json.dumps(data))
    with pytest.raises(AnnotationError) as err:
        read_dataset(tmp_path)
    assert str(p) in str(err.value) and expected in str(err.value)


def test_coco_invalid_json_names_line(tmp_path):
    make_coco(tmp_path)
    p = tmp_path / "annotations" / "instances_val.json"
    p.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(AnnotationError, match=r"instances_val\.json: line 2 column \d+: not valid JSON"):
        read_dataset(tmp_path, format="coco")


def test_coco_category_names_must_agree_across_splits(tmp_path):
    make_coco(tmp_path)
    p = tmp_path / "annotations" / "instances_val.json"
    data = json.loads(p.read_text())
    data["categories"][0]["name"] = "wolf"
    p.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match="category id 7 is 'wolf'"):
        read_dataset(tmp_path)


# ------------------------------------------------------------------ YOLO
@pytest.mark.parametrize("names_as_dict", [True, False])
def test_yolo_boxes_denormalised_from_image_header(tmp_path, names_as_dict):
    index = read_dataset(make_yolo(tmp_path, names_as_dict=names_as_dict))
    assert (index.format, index.task, index.classes) == ("yolo", Task.DETECT, ["person", "car"])
    assert index.splits() == {"train": 2, "val": 1}
    a, b, c = index.records
    assert a.size == (H, W)
    np.testing.assert_allclose(a.boxes, [[12, 8, 36, 24], [6, 4, 18, 12]], atol=1e-4)
    assert a.box_labels.tolist() == [0, 1]
    assert b.path.name == "b.jpg" and b.boxes.shape == (0, 4)
    np.testing.assert_allclose(c.boxes, [[2.4, 3.2, 7.2, 9.6]], atol=1e-4)
    assert index.load(0).boxes.canvas_size == (H, W)


def test_yolo_segmentation_polygons(tmp_path):
    make_yolo(tmp_path)
    # a rectangle polygon x 12..36, y 8..24
    (tmp_path / "labels" / "val" / "c.txt").write_text("1 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n")
    index = read_dataset(tmp_path)
    assert index.task is Task.INSTANCE
    c = index.records[2]
    np.testing.assert_allclose(c.boxes, [[12, 8, 36, 24]], atol=1e-4)
    np.testing.assert_array_equal(index.load(c).masks[0], rect_mask(12, 8, 36, 24))
    assert index.load(0).masks.shape == (2, H, W)  # box-only lines: empty masks


def test_yolo_without_yaml_uses_classes_txt(tmp_path):
    make_yolo(tmp_path)
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "classes.txt").write_text("person\ncar\n")
    assert detect_format(tmp_path) == "yolo"
    index = read_dataset(tmp_path)
    assert index.classes == ["person", "car"] and index.splits() == {"train": 2, "val": 1}


def test_yolo_missing_image_size_drops_labels_with_a_problem(tmp_path):
    make_yolo(tmp_path)
    (tmp_path / "images" / "val" / "list.txt").write_text("c.png\nghost.png\n")
    (tmp_path / "labels" / "val" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val/list.txt\nnames: [person, car]\n")
    index = read_dataset(tmp_path)
    ghost = [r for r in index.records if r.path.name == "ghost.png"][0]
    assert problem_codes(ghost) == ["missing_image", "labels_dropped"] and ghost.boxes.shape == (0, 4)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("0 0.5 0.5 0.5", "4 values; expected 5"),
        ("0 0.5 abc 0.5 0.5", "expected numbers"),
        ("5 0.5 0.5 0.5 0.5", "class '5' is not a class id (0..1)"),
        ("0.5 0.5 0.5 0.5 0.5", "class '0.5' is not a class id"),
        ("0 0.5 0.5 nan 0.5", "NaN"),
    ],
)
def test_yolo_malformed_line_names_file_and_line(tmp_path, line, expected):
    make_yolo(tmp_path)
    label = tmp_path / "labels" / "train" / "a.txt"
    label.write_text("0 0.5 0.5 0.5 0.5\n" + line + "\n")
    with pytest.raises(AnnotationError) as err:
        read_dataset(tmp_path)
    assert f"{label}: line 2:" in str(err.value) and expected in str(err.value)


def test_yolo_bad_yaml(tmp_path):
    make_yolo(tmp_path)
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [a, b\n")
    with pytest.raises(AnnotationError, match="data.yaml: line 3: not valid YAML"):
        read_dataset(tmp_path)
    (tmp_path / "data.yaml").write_text("train: images/nowhere\nnames: [a, b]\n")
    with pytest.raises(ConfigError, match="images/nowhere does not exist"):
        read_dataset(tmp_path)


# ------------------------------------------------------------------ VOC
def test_voc_one_based_boxes_splits_and_meta(tmp_path):
    index = read_dataset(make_voc(tmp_path))
    assert (index.format, index.task) == ("voc", Task.DETECT)
    assert index.classes == ["cat", "dog", "person"]  # sorted object names
    assert index.splits() == {"train": 2, "val": 1}
    r1, r2, r3 = index.records
    # xmin=1..xmax=10 is the first ten columns: [0, 10) in continuous pixels
    np.testing.assert_allclose(r1.boxes, [[0, 0, 10, 20], [4, 5, 48, 32]])
    assert r1.box_labels.tolist() == [1, 2] and r1.meta["difficult"] == [0, 1]
    assert r1.size == (H, W) and not problem_codes(r1)
    np.testing.assert_allclose(r2.boxes, [[10, 2, 30, 15]])
    assert r3.boxes.shape == (0, 4)


def test_voc_lowercase_annotations_beside_images_reads_like_voc(tmp_path):
    # the layout many exports use (e.g. a raccoon set): annotations/*.xml + images/*.jpg
    voc = make_voc(tmp_path / "a")
    root = tmp_path / "b"
    root.mkdir()
    (voc / "Annotations").rename(root / "annotations")
    (voc / "JPEGImages").rename(root / "images")
    assert detect_format(root) == "voc"
    index = read_dataset(root)
    assert (index.format, index.task, index.classes) == ("voc", Task.DETECT, ["cat", "dog", "person"])
    assert sorted(r.path.name for r in index.records) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert all(r.path.parent.name == "images" for r in index.records)
    # images/ beside an annotations/ folder without XML files is not VOC
    for xml in (root / "annotations").glob("*.xml"):
        xml.unlink()
    assert find_voc_root(root) is None


def test_voc_classes_txt_fixes_order_and_unknown_name_fails(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "classes.txt").write_text("person\ndog\ncat\nbird\n")
    assert read_dataset(tmp_path).classes == ["person", "dog", "cat", "bird"]
    (tmp_path / "classes.txt").write_text("person\ndog\n")
    with pytest.raises(AnnotationError, match=r"000002\.xml: object 1: class 'cat' is not in"):
        read_dataset(tmp_path)


def test_voc_malformed_and_unsafe_xml(tmp_path):
    make_voc(tmp_path)
    bad = tmp_path / "Annotations" / "000002.xml"
    bad.write_text("<annotation><object><name>cat</name></object>")
    with pytest.raises(AnnotationError, match=r"000002\.xml: not well-formed XML"):
        read_dataset(tmp_path)
    bad.write_text("<annotation><object><name>cat</name><bndbox><xmin>a</xmin></bndbox></object></annotation>")
    with pytest.raises(AnnotationError, match=r"000002\.xml: object 1 \(cat\): <xmin> is 'a', not a number"):
        read_dataset(tmp_path)
    bad.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>')
    with pytest.raises(AnnotationError, match=r"000002\.xml: XML with a DOCTYPE or ENTITY declaration is refused"):
        read_dataset(tmp_path)


def test_voc_missing_image_is_a_problem(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "JPEGImages" / "000002.jpg").unlink()
    rec = read_dataset(tmp_path).records[1]
    assert problem_codes(rec) == ["missing_image"] and rec.size == (H, W)


def test_voc_nested_devkit_folder(tmp_path):
    make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    index = read_dataset(tmp_path)
    assert index.format == "voc" and index.root == tmp_path / "VOCdevkit" / "VOC2012" and len(index) == 3


# ------------------------------------------------------------------ masks, paired, clean
@pytest.mark.parametrize("splits", [False, True])
def test_mask_folders(tmp_path, splits):
    index = read_dataset(make_masks(tmp_path, splits=splits))
    assert (index.format, index.task, index.classes) == ("masks", Task.SEGMENT, ["background", "cat", "dog"])
    assert index.splits() == ({"train": 2, "val": 1} if splits else {None: 3})
    rec = index.records[0]
    assert rec.mask_path.suffix == ".png" and rec.path.suffix == ".jpg"
    mask = index.load(rec).mask
    assert mask.shape == (H, W) and sorted(np.unique(mask).tolist()) == [0, 1, 2]
    assert mask[10, 15] == 1 and mask[25, 35] == 2 and mask[0, 0] == 0


def test_mask_folder_without_class_map_and_missing_mask(tmp_path):
    make_masks(tmp_path)
    (tmp_path / "classes.txt").unlink()
    img(tmp_path / "images" / "lonely.jpg")
    index = read_dataset(tmp_path)
    assert index.classes == ["0", "1", "2"]
    lonely = [r for r in index.records if r.path.stem == "lonely"][0]
    assert lonely.mask_path is None and problem_codes(lonely) == ["missing_mask"]


def test_binary_masks_saved_as_0_255_in_image_label_folders(tmp_path):
    # the ISBI 2012 layout: train/image/N.png + train/label/N.png, foreground = 255
    for i in range(2):
        img(tmp_path / "train" / "image" / f"{i}.png")
        write_image(tmp_path / "train" / "label" / f"{i}.png", rect_mask(4, 4, 20, 20).astype(np.uint8) * 255)
    assert detect_format(tmp_path) == "masks"
    index = read_dataset(tmp_path)
    assert index.classes == ["background", "foreground"] and index.splits() == {"train": 2}
    mask = index.load(0).mask
    assert sorted(np.unique(mask).tolist()) == [0, 1] and mask[10, 10] == 1


def test_mask_folder_classes_yaml(tmp_path):
    make_masks(tmp_path)
    (tmp_path / "classes.txt").unlink()
    (tmp_path / "classes.yaml").write_text("0: bg\n1: cat\n2: dog\n255: ignore\n")
    assert read_dataset(tmp_path).classes == ["bg", "cat", "dog"]


def test_paired_folders(tmp_path):
    for split in ("train", "val"):
        for i in range(2):
            img(tmp_path / split / "noisy" / f"p{i}.png", value=40)
            img(tmp_path / split / "gt" / f"p{i}.png", value=50)
    img(tmp_path / "train" / "noisy" / "orphan.png")
    index = read_dataset(tmp_path)
    assert (index.format, index.task, index.classes) == ("paired", Task.RESTORE, [])
    assert index.splits() == {"train": 3, "val": 2}
    rec = [r for r in index.records if r.path.stem == "p0"][0]
    assert rec.path.parent.name == "noisy" and rec.target_path == tmp_path / "train" / "gt" / rec.path.name
    s = index.load(rec)
    assert s.image[0, 0, 0] == 40 and s.target[0, 0, 0] == 50
    orphan = [r for r in index.records if r.path.stem == "orphan"][0]
    assert orphan.target_path is None and problem_codes(orphan) == ["missing_target"]


def test_paired_flat_and_clean(tmp_path):
    img(tmp_path / "pairs" / "degraded" / "x.png")
    img(tmp_path / "pairs" / "clean" / "x.jpg")
    index = read_dataset(tmp_path / "pairs")
    assert index.format == "paired" and index.records[0].target_path.name == "x.jpg"
    for name in ("a.png", "b.png"):
        img(tmp_path / "photos" / name)
    index = read_dataset(tmp_path / "photos")
    assert (index.format, index.task) == ("clean", Task.RESTORE)
    assert all(r.target_path == r.path for r in index.records) and len(index) == 2
    img(tmp_path / "photos_split" / "train" / "a.png")
    img(tmp_path / "photos_split" / "valid" / "b.png")
    assert read_dataset(tmp_path / "photos_split").splits() == {"train": 1, "val": 1}


# ------------------------------------------------------------------ imagefolder, csv
def test_imagefolder_with_valid_alias(tmp_path):
    for name in ("train/cat/1.png", "train/dog/2.png", "train/dog/3.png", "valid/cat/4.png"):
        img(tmp_path / name)
    index = read_dataset(tmp_path)
    assert (index.format, index.task, index.classes) == ("imagefolder", Task.CLASSIFY, ["cat", "dog"])
    assert index.splits() == {"train": 3, "val": 1}
    assert index.labels() == [0, 1, 1, 0]
    assert describe_dataset(index)["splits"]["train"]["per_class"] == {"cat": 1, "dog": 2}


def test_imagefolder_two_val_folders_refused(tmp_path):
    img(tmp_path / "val" / "cat" / "1.png")
    img(tmp_path / "validation" / "cat" / "2.png")
    with pytest.raises(ConfigError, match="both val/ and validation/"):
        read_dataset(tmp_path, format="imagefolder")


def test_csv_reader(tmp_path):
    for name in ("imgs/a.png", "imgs/b.png", "imgs/c.png"):
        img(tmp_path / name)
    (tmp_path / "labels.csv").write_text(
        "path,label,split,group,source\nimgs/a.png,dog,train,g1,web\nimgs/b.png,cat,valid,g1,cam\n"
        "imgs/c.png,,test,,cam\nimgs/missing.png,cat,train,,web\n"
    )
    for root in (tmp_path, tmp_path / "labels.csv"):
        index = read_dataset(root)
        assert (index.format, index.task, index.classes) == ("csv", Task.CLASSIFY, ["cat", "dog"])
        assert [r.label for r in index.records] == [1, 0, None, 0]
        assert [r.split for r in index.records] == ["train", "val", "test", "train"]
        assert index.records[0].group == "g1" and index.records[0].meta["csv"] == {"source": "web"}
        assert problem_codes(index.records[3]) == ["missing_image"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("file,label\na.png,x\n", "line 1: the header 'file,label' lacks the column(s) path"),
        ("path,label\na.png,x,extra\n", "line 2: 3 fields, but the header has 2"),
        ("path,label,split\na.png,x,holdout\n", "line 2: unknown split 'holdout'"),
    ],
)
def test_csv_malformed(tmp_path, text, expected):
    (tmp_path / "data.csv").write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_dataset(tmp_path, format="csv")
    assert str(tmp_path / "data.csv") in str(err.value) and expected in str(err.value)


# ------------------------------------------------------------------ detection of the format
def test_detect_format_picks_each_layout(tmp_path):
    make_coco(tmp_path / "coco")
    make_yolo(tmp_path / "yolo")
    make_voc(tmp_path / "voc")
    make_masks(tmp_path / "masks")
    img(tmp_path / "paired" / "input" / "a.png")
    img(tmp_path / "paired" / "target" / "a.png")
    img(tmp_path / "clean" / "a.png")
    img(tmp_path / "folder" / "cat" / "a.png")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "x.csv").write_text("path,label\na.png,cat\n")
    for name in ("coco", "yolo", "voc", "masks", "paired", "clean", "csv"):
        assert detect_format(tmp_path / name) == name
    assert detect_format(tmp_path / "folder") == "imagefolder"
    img(tmp_path / "quality" / "clean" / "a.png")  # classes that happen to be called clean / noisy
    img(tmp_path / "quality" / "noisy" / "b.png")
    assert detect_format(tmp_path / "quality") == "imagefolder"
    assert detect_format(tmp_path / "coco" / "annotations" / "instances_val.json") == "coco"
    assert detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"


def test_detect_format_ambiguous_unknown_and_bad_name(tmp_path):
    make_voc(tmp_path / "both")
    make_masks(tmp_path / "both")
    with pytest.raises(ConfigError) as err:
        read_dataset(tmp_path / "both")
    msg = str(err.value)
    assert "ambiguous" in msg and "voc (Annotations/ + JPEGImages/)" in msg and "masks (images/ + masks/)" in msg
    assert read_dataset(tmp_path / "both", format="masks").format == "masks"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot tell the dataset format; it holds nothing .* Known formats: imagefolder, csv"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(UnknownNameError, match="unknown dataset format 'yolov8'; did you mean 'yolo'"):
        read_dataset(tmp_path / "both", format="yolov8")
    with pytest.raises(ConfigError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")
    assert issubclass(AnnotationError, PixlearnError)


def test_built_in_shapes_samples_read_back(tmp_path):
    from pixlearn.data.samples import write_sample

    write_sample("shapes", tmp_path / "det", n=3, task="detect", size=64)
    index = read_dataset(tmp_path / "det")
    assert (index.format, index.task, len(index)) == ("coco", Task.INSTANCE, 3)
    s = index.load(0)
    assert s.masks.shape[0] == len(s.boxes) > 0
    write_sample("shapes", tmp_path / "seg", n=2, task="segment", size=64)
    index = read_dataset(tmp_path / "seg")
    assert (index.format, index.task, index.classes[0]) == ("masks", Task.SEGMENT, "background")


# ------------------------------------------------------------------ mask codecs
def test_rle_codec_matches_pycocotools_and_fallback(monkeypatch):
    rng = np.random.default_rng(0)
    masks = [rng.random((17, 23)) > 0.6, np.zeros((5, 4), bool), np.ones((3, 3), bool), rect_mask(3, 4, 40, 30)]
    with_lib = [encode_rle(m) for m in masks]
    monkeypatch.setattr(masks_mod, "_coco_mask", lambda: None)
    for m, rle in zip(masks, with_lib):
        mine = encode_rle(m)
        if masks_mod._coco_mask is not None:  # same string whichever codec made it
            assert mine == rle
        np.testing.assert_array_equal(decode_rle(mine), m)
        np.testing.assert_array_equal(decode_rle(uncompressed_rle(m)), m)
    poly = [[4, 5, 20, 5, 20, 25, 4, 25]]
    np.testing.assert_array_equal(decode_segmentation(poly, (H, W)), rect_mask(4, 5, 20, 25))


def test_mask_to_polygons_round_trip_and_errors():
    m = np.zeros((H, W), bool)
    m[3:10, 5:9] = True
    m[15:28, 20:40] = True
    m[20, 30:45] = True  # a one-pixel-thick spur
    polys = mask_to_polygons(m)
    assert len(polys) == 2
    np.testing.assert_array_equal(decode_segmentation(polys, (H, W)), m)
    with pytest.raises(ShapeError, match="RLE size is 4x3"):
        decode_segmentation({"size": [3, 4], "counts": [12]}, (H, W))
    with pytest.raises(ValueError, match="counts sum to 5"):
        decode_rle({"size": [3, 4], "counts": [5]})


# ------------------------------------------------------------------ paths outside the dataset folder
# Each builder makes a readable dataset in ``root`` plus records that reach a folder beside it
# (``host-zz9``: a stand-in for the machine's own files) by an absolute path, a '../' path or a
# symbolic link, and returns how many paths are refused and how many more records are read when
# outside paths are allowed (a linked folder is refused as one path, unlisted). Nothing of ``host-zz9`` -- its name, its
# content -- may appear in what the reader returns, raises or logs.
HOST = "host-zz9"
CONTENT = "TOPSECRET-content"


def _host(tmp: Path) -> Path:
    """The outside folder: an image, a mask, a YOLO label file and a VOC annotation, all valid."""
    host = tmp / HOST
    img(host / "secret.png")
    write_image(host / "secret_mask.png", np.zeros((H, W), np.uint8))
    (host / "secret.txt").write_text(f"0 0.5 0.5 0.5 0.5\n# {CONTENT}\n")
    (host / "secret.xml").write_text(VOC_XML.format(name="000001", objects=f"<!-- {CONTENT} -->"))
    return host


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def outside_csv(root: Path, host: Path) -> tuple[int, int]:
    for name in ("imgs/a.png", "imgs/b.png"):
        img(root / name)
    _link(root / "imgs" / "link.png", host / "secret.png")
    rows = ["imgs/a.png,cat", "imgs/b.png,dog", f"{host / 'secret.png'},cat", f"../{HOST}/secret.png,dog", "imgs/link.png,cat"]
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return 3, 3


def outside_coco(root: Path, host: Path) -> tuple[int, int]:
    make_coco(root)
    ann = root / "annotations" / "instances_train.json"
    data = json.loads(ann.read_text())
    _link(root / "images" / "link.png", host / "secret.png")
    for iid, name in ((90, str(host / "secret.png")), (91, f"../../{HOST}/secret.png"), (92, "link.png")):
        data["images"].append({"id": iid, "file_name": name})  # no size: the reader would read the header
    ann.write_text(json.dumps(data))
    return 3, 3


def outside_yolo(root: Path, host: Path) -> tuple[int, int]:
    make_yolo(root)
    _link(root / "images" / "train" / "link.png", host / "secret.png")  # an image that links out
    img(root / "images" / "train" / "d.png")
    _link(root / "labels" / "train" / "d.txt", host / "secret.txt")  # a label file that links out
    (root / "images" / "val" / "list.txt").write_text(f"c.png\n{host / 'secret.png'}\n../../../{HOST}/secret.png\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val/list.txt\nnames: [person, car]\n")
    return 4, 4


def outside_voc(root: Path, host: Path) -> tuple[int, int]:
    make_voc(root)
    for name, filename in (("000004", str(host / "secret.png")), ("000005", f"../../{HOST}/secret.png"), ("000006", "000006.jpg")):
        (root / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name, objects="").replace(f"{name}.jpg", filename))
    _link(root / "JPEGImages" / "000006.jpg", host / "secret.png")
    _link(root / "Annotations" / "000007.xml", host / "secret.xml")  # an annotation that links out
    return 4, 4


def outside_masks(root: Path, host: Path) -> tuple[int, int]:
    make_masks(root)
    _link(root / "images" / "link.jpg", host / "secret.png")
    write_image(root / "masks" / "link.png", np.zeros((H, W), np.uint8))
    img(root / "images" / "im9.jpg")
    _link(root / "masks" / "im9.png", host / "secret_mask.png")  # a mask that links out
    return 2, 2


def outside_paired(root: Path, host: Path) -> tuple[int, int]:
    for name in ("a", "b", "c"):
        img(root / "clean" / f"{name}.png")
    img(root / "noisy" / "a.png")
    _link(root / "noisy" / "b.png", host / "secret.png")
    img(root / "noisy" / "c.png")
    (root / "clean" / "c.png").unlink()
    _link(root / "clean" / "c.png", host / "secret.png")  # a target that links out
    return 2, 2


def outside_clean(root: Path, host: Path) -> tuple[int, int]:
    img(root / "a.png")
    img(root / "b.png")
    _link(root / "link.png", host / "secret.png")
    return 1, 1


def outside_imagefolder(root: Path, host: Path) -> tuple[int, int]:
    img(root / "cat" / "1.png")
    img(root / "dog" / "2.png")
    _link(root / "cat" / "link.png", host / "secret.png")
    _link(root / "bird", host)  # a whole class folder that links out
    return 2, 3  # bird/ holds two host images


OUTSIDE = {
    "csv": outside_csv, "coco": outside_coco, "yolo": outside_yolo, "voc": outside_voc,
    "masks": outside_masks, "paired": outside_paired, "clean": outside_clean, "imagefolder": outside_imagefolder,
}


def _paths(index) -> list[Path]:
    return [p for r in index.records for p in (r.path, r.mask_path, r.target_path) if p is not None]


@pytest.mark.parametrize("fmt", list(OUTSIDE))
def test_records_leading_outside_the_folder_are_refused_and_counted(tmp_path, fmt, caplog):
    host = _host(tmp_path)
    root = tmp_path / "ds"
    n, extra = OUTSIDE[fmt](root, host)
    assert detect_format(root) == fmt
    with caplog.at_level("WARNING", logger="pixlearn.data"):
        index = read_dataset(root)
    assert index.meta["refused"]["outside_root"] == n and describe_dataset(index)["refused"] == {"outside_root": n}
    real_root = root.resolve()
    assert index.records and all(p.resolve().is_relative_to(real_root) for p in _paths(index))
    said = " ".join([repr(index.meta), repr([r.meta for r in index.records]), repr(describe_dataset(index)), caplog.text])
    assert HOST not in said and CONTENT not in said and "secret" not in said
    assert "leads outside the dataset folder" in said and f"{n} path(s) refused" in caplog.text

    allowed = read_dataset(root, allow_outside_root=True)  # local use: everything named is read
    assert len(allowed) == len(index) + extra and "refused" not in allowed.meta
    assert any(not p.resolve().is_relative_to(real_root) for p in _paths(allowed))


@pytest.mark.parametrize("fmt", ["csv", "coco", "imagefolder"])
def test_a_dataset_whose_every_record_leads_outside_is_an_error_without_the_paths(tmp_path, fmt):
    host = _host(tmp_path)
    root = tmp_path / "ds"
    if fmt == "csv":
        root.mkdir()
        (root / "labels.csv").write_text(f"path,label\n{host / 'secret.png'},cat\n../{HOST}/secret.png,dog\n")
    elif fmt == "coco":
        make_coco(root)
        for ann in (root / "annotations").glob("*.json"):
            data = json.loads(ann.read_text())
            for i, im in enumerate(data["images"]):
                im["file_name"] = str(host / "secret.png") if i % 2 else f"../../{HOST}/secret.png"
            ann.write_text(json.dumps(data))
    else:
        _link(root / "cat" / "a.png", host / "secret.png")
        _link(root / "dog", host)
    with pytest.raises(ConfigError) as err:
        read_dataset(root, format=fmt)
    msg = str(err.value)
    assert "nothing to read: every path it names leads outside the dataset folder" in msg, msg
    assert "allow_outside_root=True" in msg and "--allow-outside-root" not in msg  # Python words in Python
    assert "--allow-outside-root" in err.value.cli_message and "allow_outside_root=" not in err.value.cli_message
    assert HOST not in msg + err.value.cli_message and "secret" not in msg
    assert len(read_dataset(root, format=fmt, allow_outside_root=True)) >= 2


def test_yolo_yaml_entries_leading_outside_are_errors_without_the_path(tmp_path):
    host = _host(tmp_path)
    root = make_yolo(tmp_path / "ds")
    for text in (f"train: {host}\n", f"train: images/train\nval: ../{HOST}\n", f"path: {host}\ntrain: images/nowhere\n"):
        (root / "data.yaml").write_text(text + "names: [person, car]\n")
        with pytest.raises(AnnotationError) as err:
            read_dataset(root)
        assert "leads outside the dataset folder" in str(err.value) and HOST not in str(err.value)
    # a 'path:' outside is not used: the entries are found beside the yaml (a yaml copied from elsewhere)
    (root / "data.yaml").write_text(f"path: {host}\ntrain: images/train\nval: images/val\nnames: [person, car]\n")
    assert read_dataset(root).splits() == {"train": 2, "val": 1}
    # Roboflow's '../train/images' entries, beside the yaml, stay readable
    (root / "data.yaml").write_text("train: ../images/train\nval: ../images/val\nnames: [person, car]\n")
    assert read_dataset(root).splits() == {"train": 2, "val": 1}


def test_dataset_files_that_link_outside_are_errors(tmp_path):
    host = _host(tmp_path)
    root = tmp_path / "ds"
    img(root / "a.png")
    _link(root / "labels.csv", host / "secret.txt")
    with pytest.raises(AnnotationError, match="labels.csv leads outside the dataset folder") as err:
        read_dataset(root, format="csv")
    assert CONTENT not in str(err.value) and HOST not in str(err.value)
    masks = make_masks(tmp_path / "m")
    (masks / "classes.txt").unlink()
    _link(masks / "classes.txt", host / "secret.txt")  # class names read from a host file would show its lines
    with pytest.raises(AnnotationError, match="classes.txt leads outside"):
        read_dataset(masks)


def test_containment_follows_links_and_dotdot(tmp_path):
    from pixlearn._core.paths import Containment, is_inside

    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path / "out")
    (tmp_path / "root" / "loop").symlink_to(tmp_path / "root" / "loop")
    inside = Containment(tmp_path / "root")
    assert tmp_path / "root" / "a" / "x.png" in inside and tmp_path / "root" in inside
    assert tmp_path / "root" / "a" / ".." / "b.png" in inside
    for p in (tmp_path / "root" / ".." / "out" / "x.png", tmp_path / "root" / "out" / "x.png", tmp_path / "root2" / "x",
              "/etc/passwd", tmp_path / "root" / "a\x00b", tmp_path / "root" / "a" / ".." / ".."):
        assert p not in inside, p
    assert tmp_path / "root" / "loop" / "x.png" in inside  # a link loop does not raise; opening it fails, inside
    assert is_inside(tmp_path / "root" / "a", tmp_path / "root") and not is_inside(tmp_path / "out", tmp_path / "root")


def test_cli_refuses_outside_records_and_allow_outside_root_reads_them(tmp_path, capsys, caplog):
    from pixlearn.cli import main

    def cli(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    host = _host(tmp_path)
    root = tmp_path / "ds"
    outside_csv(root, host)
    code, out, err = cli("data", "info", root, "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["images"] == 2 and summary["refused"] == {"outside_root": 3}
    assert HOST not in out + err + caplog.text and "3 path(s) refused" in caplog.text and "2 record(s) read" in caplog.text
    code, out, err = cli("data", "info", root, "--format", "json", "--allow-outside-root")
    assert code == 0 and json.loads(out)["images"] == 5 and json.loads(out)["refused"] == {}
    assert read_dataset(root).meta["refused"]["outside_root"] == 3  # the flag ended with its command
    code, out, err = cli("data", "check", root, "--format", "json", "--no-progress", "--min-per-class", "1")
    finding = [f for f in json.loads(out)["findings"] if f["code"] == "outside_root"]
    assert finding and finding[0]["severity"] == "error" and finding[0]["details"]["count"] == 3 and HOST not in out

    (root / "labels.csv").write_text(f"path,label\n{host / 'secret.png'},cat\n../{HOST}/secret.png,dog\n")
    code, out, err = cli("data", "info", root)
    assert code == 1 and "every path it names leads outside the dataset folder (2 refused" in err
    assert "add --allow-outside-root" in err
    assert "allow_outside_root=" not in err and HOST not in err
    assert cli("data", "info", root, "--allow-outside-root")[0] == 0

    (tmp_path / "empty").mkdir()
    code, out, err = cli("data", "info", tmp_path / "empty")
    assert code == 1 and "choose one with --from FORMAT" in err and "format=" not in err
    with pytest.raises(ConfigError, match="pass format= to choose one") as exc:
        read_dataset(tmp_path / "empty")
    assert "--from" not in str(exc.value)


def test_messages_name_formats_with_the_right_article(tmp_path):
    from pixlearn.tasks.classify.data import read_classify_dataset
    from pixlearn.tasks.segment.data import read_segment_dataset

    img(tmp_path / "folder" / "cat" / "a.png")
    with pytest.raises(ConfigError) as err:
        read_segment_dataset(tmp_path / "folder")
    assert "a imagefolder" not in str(err.value) and "a dataset in the imagefolder format (classify)" in str(err.value)
    with pytest.raises(ConfigError, match="a dataset in the masks format .segment., not labelled for classification"):
        read_classify_dataset(make_masks(tmp_path / "masks"))
    (tmp_path / "README").write_text("x")
    with pytest.raises(ConfigError, match="format of a file without an extension;"):
        detect_format(tmp_path / "README")
