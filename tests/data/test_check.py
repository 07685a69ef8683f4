"""`check_dataset` and `pixlearn data check`: each planted problem is found with its code and files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.cli import main
from pixlearn.data.check import Severity, check_dataset, hash_clusters, near_duplicate_pairs
from pixlearn.data.index import DatasetIndex, Record
from pixlearn.data.readers import read_dataset
from pixlearn.io import encode_image, read_image, write_image


def texture(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A smooth random colour texture: distinct seeds give far-apart perceptual hashes."""
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def near_copy(image: np.ndarray) -> bytes:
    """The same picture slightly brightened and re-encoded as JPEG."""
    return encode_image(np.clip(image.astype(np.int16) + 10, 0, 255).astype(np.uint8), "jpeg", quality=90)


def make_folder(root: Path, layout: dict[str, dict[str, int]], seed: int = 0) -> Path:
    """ImageFolder ``root/<split>/<class>/<i>.png`` with distinct textures."""
    rng = np.random.default_rng(seed)
    for split, classes in layout.items():
        for name, n in classes.items():
            for i in range(n):
                write_image(root / split / name / f"{i}.png", texture(rng))
    return root


CLEAN = {"train": {"cat": 6, "dog": 6, "fox": 6}, "val": {"cat": 2, "dog": 2, "fox": 2}}


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A classification folder with one of each problem planted."""
    root = make_folder(
        tmp_path / "ds", {"train": {"cat": 10, "dog": 10, "rare": 1}, "val": {"cat": 2, "dog": 2}}
    )
    (root / "train" / "cat" / "broken.png").write_bytes((root / "train" / "cat" / "0.png").read_bytes()[:60])
    (root / "val" / "dog" / "leak.png").write_bytes((root / "train" / "dog" / "0.png").read_bytes())
    (root / "train" / "cat" / "copy.png").write_bytes((root / "train" / "cat" / "2.png").read_bytes())
    (root / "train" / "cat" / "bright.jpg").write_bytes(
        near_copy(read_image(root / "train" / "cat" / "1.png"))
    )
    (root / "train" / "empty").mkdir()
    return root


def codes(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f)
    return out


def test_clean_dataset_has_no_errors(tmp_path):
    root = make_folder(tmp_path / "ds", CLEAN)
    report = check_dataset(read_dataset(root), min_per_class=2, progress=False)
    assert report.errors == [] and report.warnings == []
    assert report.counts == {"train": {"cat": 6, "dog": 6, "fox": 6}, "val": {"cat": 2, "dog": 2, "fox": 2}}
    assert report.images_per_split == {"train": 18, "val": 6}
    assert report.sizes["width"] == {"min": 32, "median": 32.0, "max": 32} and report.sizes["distinct"] == 1
    assert report.sizes["aspect"]["median"] == 1.0
    assert "no problems found" in report.summary()


def test_planted_classification_problems(planted):
    report = check_dataset(read_dataset(planted), min_per_class=3, imbalance_ratio=5, progress=False)
    found = codes(report)

    (unreadable,) = found["unreadable"]
    assert unreadable.severity is Severity.ERROR and unreadable.files == ("train/cat/broken.png",)
    assert unreadable.message.startswith("ImageDecodeError:") and "broken.png" not in unreadable.message

    (leak,) = found["split_leak"]
    assert leak.severity is Severity.ERROR and set(leak.files) == {"train/dog/0.png", "val/dog/leak.png"}
    assert leak.details["kind"] == "exact" and leak.details["splits"] == ["train", "val"]

    (dup,) = found["duplicate"]
    assert dup.severity is Severity.WARNING and set(dup.files) == {"train/cat/2.png", "train/cat/copy.png"}

    (near,) = found["near_duplicate"]
    assert near.severity is Severity.WARNING and set(near.files) == {
        "train/cat/1.png",
        "train/cat/bright.jpg",
    }

    (empty,) = found["empty_class"]
    assert (
        empty.severity is Severity.ERROR
        and empty.files == ("train/empty/",)
        and empty.details["class"] == "empty"
    )
    (tiny,) = found["tiny_class"]
    assert tiny.details == {"class": "rare", "count": 1}
    (imb,) = found["imbalance"]
    assert imb.severity is Severity.WARNING and imb.details["smallest"] == "rare" and imb.details["ratio"] > 5
    (missing,) = found["class_missing"]
    assert missing.details == {"class": "rare", "splits": ["val"]}

    assert {f.code for f in report.errors} == {"unreadable", "split_leak", "empty_class"}
    # the broken file is counted but has no size; findings are sorted errors first
    assert report.sizes["count"] == report.num_images - 1
    assert [f.severity for f in report.findings] == sorted(
        (f.severity for f in report.findings), key=list(Severity).index
    )


def test_listed_class_without_records_is_empty(tmp_path):
    rng = np.random.default_rng(5)
    recs = [Record(write_image(tmp_path / f"{i}.png", texture(rng)), label=0) for i in range(3)]
    report = check_dataset(
        DatasetIndex(tmp_path, "csv", Task.CLASSIFY, ["a", "b"], recs), min_per_class=1, progress=False
    )
    assert [(f.code, f.details) for f in report.errors] == [("empty_class", {"class": "b"})]
    assert [f.code for f in report.by_severity("info")] == ["unsplit"]


def test_near_duplicate_across_splits_is_a_leak(tmp_path):
    root = make_folder(tmp_path / "ds", CLEAN)
    (root / "val" / "cat" / "again.jpg").write_bytes(near_copy(read_image(root / "train" / "cat" / "1.png")))
    report = check_dataset(read_dataset(root), min_per_class=2, progress=False)
    (leak,) = report.errors
    assert leak.code == "split_leak" and leak.details["kind"] == "near"
    assert set(leak.files) == {"train/cat/1.png", "val/cat/again.jpg"}
    # a distance of 0 only matches identical hashes: the re-encoded copy is no longer caught
    strict = check_dataset(read_dataset(root), min_per_class=2, near_duplicate_distance=0, progress=False)
    assert strict.by_code("split_leak") == []


def test_detection_boxes(tmp_path):
    rng = np.random.default_rng(1)
    paths = [write_image(tmp_path / f"{i}.png", texture(rng)) for i in range(3)]
    records = [
        Record(
            paths[0], split="train", boxes=np.array([[2, 2, 20, 20]], np.float32), box_labels=np.array([0])
        ),
        Record(
            paths[1],
            split="train",
            boxes=np.array(
                [[0, 0, 10, 10], [20, 20, 40, 30], [-0.5, 0, 32.8, 32]], np.float32
            ),  # 2nd: outside
            box_labels=np.array([0, 1, 1]),
        ),
        Record(
            paths[2],
            split="train",
            boxes=np.array([[5, 5, 5, 12], [8, 9, 4, 20]], np.float32),
            box_labels=np.array([1, 3]),
        ),
    ]
    index = DatasetIndex(tmp_path, "coco", Task.DETECT, ["car", "person"], records)
    report = check_dataset(index, min_per_class=1, progress=False)
    found = codes(report)
    (outside,) = found["box_outside"]
    assert (
        outside.files == ("1.png",) and outside.details["boxes"] == [1] and outside.severity is Severity.ERROR
    )
    (degenerate,) = found["box_degenerate"]
    assert degenerate.files == ("2.png",) and degenerate.details["boxes"] == [0, 1]
    (bad,) = found["bad_label"]
    assert bad.files == ("2.png",) and bad.details["boxes"] == [1]
    assert report.counts["train"] == {"car": 2, "person": 2}  # images holding the class
    assert report.instances["train"] == {"car": 2, "person": 3}  # boxes
    assert "boxes" in report.summary().splitlines()[3]


def test_reader_problems_pass_through_without_repeats(tmp_path):
    rng = np.random.default_rng(2)
    path = write_image(tmp_path / "a.png", texture(rng))
    rec = Record(path, boxes=np.array([[0, 0, 50, 10]], np.float32), box_labels=np.array([0]), size=(32, 32))
    rec.meta["problems"] = [
        {"code": "box_outside", "severity": "error", "message": "ann 7: box lies outside"},
        {"code": "bad_polygon", "severity": "warning", "message": "ann 8: polygon with 2 points"},
    ]
    missing = Record(tmp_path / "gone.png", boxes=np.zeros((0, 4), np.float32), box_labels=np.zeros(0))
    missing.meta["problems"] = [
        {"code": "missing_image", "severity": "error", "message": "gone.png does not exist"}
    ]
    report = check_dataset(
        DatasetIndex(tmp_path, "coco", Task.DETECT, ["x"], [rec, missing]), min_per_class=0, progress=False
    )
    assert sorted(f.code for f in report.findings) == [
        "bad_polygon",
        "box_outside",
        "missing_image",
        "unsplit",
    ]
    assert report.by_code("bad_polygon")[0].files == ("a.png",)
    assert report.by_code("missing_image")[0].severity is Severity.ERROR


def test_segmentation_masks(tmp_path):
    rng = np.random.default_rng(3)
    records = []
    for i, (mask_shape, top) in enumerate([((32, 32), 2), ((16, 16), 1), ((32, 32), 7)]):
        image = write_image(tmp_path / "images" / f"{i}.png", texture(rng))
        mask = np.zeros(mask_shape, np.uint8)
        mask[: mask_shape[0] // 2] = top
        records.append(
            Record(image, split="train", mask_path=write_image(tmp_path / "masks" / f"{i}.png", mask))
        )
    (tmp_path / "masks" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    records.append(Record(records[0].path, split="val", mask_path=tmp_path / "masks" / "bad.png"))
    index = DatasetIndex(tmp_path, "masks", Task.SEGMENT, ["background", "road", "car"], records)
    report = check_dataset(index, min_per_class=1, progress=False)
    found = codes(report)
    (size,) = found["mask_size"]
    assert size.files == ("masks/1.png", "images/1.png") and size.details == {
        "mask": [16, 16],
        "image": [32, 32],
    }
    (values,) = found["mask_values"]
    assert values.files == ("masks/2.png",) and values.details["values"] == [7]
    (bad_mask,) = found["unreadable"]
    assert bad_mask.files == ("masks/bad.png", "images/0.png") and bad_mask.message.startswith("mask: ")
    assert report.counts["train"] == {"background": 3, "road": 1, "car": 1}


def test_parallel_workers_match_serial(planted):
    index = read_dataset(planted)
    serial = check_dataset(index, min_per_class=3, progress=False)
    parallel = check_dataset(index, min_per_class=3, workers=2, progress=False)
    assert [f.to_dict() for f in parallel.findings] == [f.to_dict() for f in serial.findings]
    assert parallel.sizes == serial.sizes


def test_report_dict_and_summary(planted):
    report = check_dataset(read_dataset(planted), min_per_class=3, imbalance_ratio=5, progress=False)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["totals"] == report.totals() and data["totals"]["error"] == 3
    assert {f["code"] for f in data["findings"]} >= {"unreadable", "split_leak", "near_duplicate"}
    text = report.summary(max_items=1, max_files=1)
    lines = text.splitlines()
    assert lines[0].startswith("dataset ") and "3 errors" in lines[1] and "splits: train" in lines[1]
    assert lines[3].split() == ["class", "train", "val", "total"]
    assert "cat" in lines[4] and lines[4].split()[1:] == ["13", "2", "15"]
    assert "ERRORS (3)" in text and "WARNINGS" in text and "(+1 more)" in text


def test_near_duplicate_search_matches_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, 300).astype(np.uint64)
    hashes = np.concatenate([base, base ^ flips, base[:50] ^ np.uint64(0b1011)])
    diff = hashes[:, None] ^ hashes[None, :]
    dist = np.array([[bin(int(v)).count("1") for v in row] for row in diff])
    for d in (0, 1, 3, 4):
        i, j = np.nonzero(np.triu(dist <= d, 1))
        assert near_duplicate_pairs(hashes, d).tolist() == [list(p) for p in zip(i.tolist(), j.tolist())]
    assert hash_clusters([1, 3, None, 2**40], 1) == [0, 0, 1, 2]
    with pytest.raises(ConfigError, match="between 0 and 64"):
        near_duplicate_pairs([1, 2], 65)


def test_bad_arguments(tmp_path):
    index = DatasetIndex(tmp_path, "imagefolder", Task.CLASSIFY, [], [])
    with pytest.raises(ConfigError, match="workers"):
        check_dataset(index, workers=0, progress=False)
    with pytest.raises(ConfigError, match="imbalance_ratio"):
        check_dataset(index, imbalance_ratio=0.5, progress=False)


# ---------------------------------------------------------------- CLI
@pytest.fixture
def cli(capsys):
    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_check_exit_codes(planted, tmp_path, cli):
    code, out, err = cli("data", "check", planted, "--min-per-class", "3", "--no-progress")
    assert code == 0, err
    assert "ERRORS" in out and "split_leak" in out and "train/cat/broken.png" in out
    code, out, _ = cli("data", "check", planted, "--strict", "--no-progress")
    assert code == 1 and "unreadable" in out

    clean = make_folder(tmp_path / "clean", CLEAN)
    code, out, err = cli("data", "check", clean, "--strict", "--min-per-class", "2", "--no-progress")
    assert code == 0, err
    assert "no problems found" in out


def test_cli_check_json_and_out_file(planted, tmp_path, cli):
    report_file = tmp_path / "reports" / "report.json"
    report_file.parent.mkdir()  # outside the current folder, pixlearn creates no missing folders above an output
    code, out, err = cli(
        "data", "check", planted, "--format", "json", "--out", report_file, "--workers", "1", "--no-progress"
    )
    assert code == 0, err
    data = json.loads(out)
    assert json.loads(report_file.read_text()) == data
    assert data["format"] == "imagefolder" and data["num_images"] == 29
    assert {f["code"] for f in data["findings"] if f["severity"] == "error"} == {
        "unreadable",
        "split_leak",
        "empty_class",
    }
    assert f"wrote {report_file}" in err
    code, out, _ = cli("data", "check", planted, "--format", "csv", "--no-progress")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == len(data["findings"])
    leak = next(r for r in rows if r["code"] == "split_leak")
    assert leak["severity"] == "error" and leak["files"] == "train/dog/0.png;val/dog/leak.png"
