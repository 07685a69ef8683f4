"""Splits and k-folds: seeded, stratified, grouped; manifests round-trip; `pixlearn data split`."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixlearn._core.errors import ConfigError
from pixlearn._core.types import Task
from pixlearn.cli import main
from pixlearn.data.index import DatasetIndex, Record
from pixlearn.data.readers import read_dataset
from pixlearn.data.splits import (
    apply_split_manifest,
    group_ids_from_hashes,
    kfold,
    stratified_split,
    stratify_labels,
    write_split_manifest,
)
from pixlearn.io import encode_image, write_image

RATIOS = [(0.8, 0.1, 0.1), (0.7, 0.3), (0.6, 0.2, 0.2), (0.9, 0.1, 0.0)]


def texture(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def labels_of(sizes: dict[str, int]) -> list[str]:
    return [c for c, n in sizes.items() for _ in range(n)]


def where(split: dict[str, list[int]]) -> dict[int, str]:
    return {i: s for s, idx in split.items() for i in idx}


def test_same_seed_same_split_and_different_seed_different():
    labels = labels_of({"a": 30, "b": 20, "c": 7})
    first = stratified_split(labels, seed=3)
    assert stratified_split(labels, seed=3) == first
    assert stratified_split(labels, seed=4) != first
    assert sorted(where(first)) == list(range(len(labels)))  # every item in exactly one split
    assert list(first) == ["train", "val", "test"]


@pytest.mark.parametrize("ratios", RATIOS)
def test_each_class_in_proportion(ratios):
    rng = np.random.default_rng(len(ratios))
    for trial in range(20):
        sizes = {f"c{j}": int(n) for j, n in enumerate(rng.integers(1, 40, rng.integers(1, 8)))}
        labels = labels_of(sizes)
        split = stratified_split(labels, ratios=ratios, seed=trial)
        for s, (name, idx) in enumerate(split.items()):
            got = Counter(labels[i] for i in idx)
            for c, n in sizes.items():
                assert abs(got[c] - n * ratios[s]) <= 1, (name, c, got[c], n, ratios)
        for c in sizes:  # every class has an item in train, however small
            assert any(labels[i] == c for i in split["train"])
        totals = [len(v) for v in split.values()]
        assert all(abs(t - len(labels) * r) <= 1.5 for t, r in zip(totals, ratios)), (totals, ratios)


def test_tiny_classes_are_handled():
    split = stratified_split(["solo"] + ["pair"] * 2 + ["big"] * 20, seed=0)
    assert where(split)[0] == "train"
    assert sum(len(v) for v in split.values()) == 23
    assert stratified_split([], seed=0) == {"train": [], "val": [], "test": []}
    assert stratified_split([None] * 10, ratios=(0.5, 0.5))["train"].__len__() == 5


def test_groups_never_straddle_splits():
    rng = np.random.default_rng(0)
    labels = list(rng.integers(0, 3, 200))
    groups = list(rng.integers(0, 60, 200))
    split = stratified_split(labels, seed=1, groups=groups)
    side: dict[int, str] = {}
    for i, s in where(split).items():
        assert side.setdefault(groups[i], s) == s
    sizes = {k: len(v) for k, v in split.items()}
    assert abs(sizes["train"] - 160) <= 12 and sizes["val"] > 0 and sizes["test"] > 0
    for c in range(3):  # still roughly stratified
        n = labels.count(c)
        assert abs(sum(labels[i] == c for i in split["train"]) - 0.8 * n) <= 0.1 * n
    assert stratified_split(labels, seed=1, groups=groups) == split


def test_bad_ratios_and_groups():
    with pytest.raises(ConfigError, match="sum to 1"):
        stratified_split([1, 2], ratios=(0.8, 0.1))
    with pytest.raises(ConfigError, match="2 or 3"):
        stratified_split([1, 2], ratios=(1.0,))
    with pytest.raises(ConfigError, match="one group per item"):
        stratified_split([1, 2], groups=[1])


def test_kfold_covers_every_index_once():
    labels = labels_of({"a": 17, "b": 11, "c": 4})
    folds = kfold(labels, k=5, seed=0)
    assert len(folds) == 5
    val = [i for _, v in folds for i in v]
    assert sorted(val) == list(range(len(labels)))
    for train, v in folds:
        assert sorted(train + v) == list(range(len(labels))) and not set(train) & set(v)
        assert 3 <= Counter(labels[i] for i in v)["a"] <= 4  # stratified: 17 / 5
    assert kfold(labels, k=5, seed=0) == folds and kfold(labels, k=5, seed=1) != folds


def test_kfold_grouped_and_errors():
    rng = np.random.default_rng(1)
    labels = list(rng.integers(0, 2, 90))
    groups = [i // 3 for i in range(90)]
    folds = kfold(labels, k=3, seed=0, groups=groups)
    assert sorted(i for _, v in folds for i in v) == list(range(90))
    for train, v in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in v}
    assert sorted(i for _, v in kfold(["a", "b", "c"], k=3) for i in v) == [0, 1, 2]  # every class < k
    with pytest.raises(ConfigError, match="at least 4 items"):
        kfold([0, 1, 0], k=4)
    with pytest.raises(ConfigError, match="groups"):
        kfold([0, 1, 0, 1], k=3, groups=[0, 0, 1, 1])
    with pytest.raises(ConfigError, match="k >= 2"):
        kfold([0, 1], k=1)


def test_stratify_labels_for_detection_and_segmentation(tmp_path):
    recs = [
        Record(tmp_path / "a.png", boxes=np.zeros((3, 4)), box_labels=np.array([1, 0, 1])),
        Record(tmp_path / "b.png", boxes=np.zeros((2, 4)), box_labels=np.array([2, 0])),
        Record(tmp_path / "c.png", boxes=np.zeros((0, 4)), box_labels=np.zeros(0, np.int64)),
    ]
    assert stratify_labels(DatasetIndex(tmp_path, "yolo", Task.DETECT, ["a", "b", "c"], recs)) == [1, 0, None]
    seg = DatasetIndex(
        tmp_path,
        "masks",
        Task.SEGMENT,
        ["bg", "fg"],
        [Record(tmp_path / "a.png", mask_path=tmp_path / "m.png")],
    )
    assert stratify_labels(seg) == [None]


def test_group_ids_from_hashes_keeps_near_copies_together(tmp_path):
    rng = np.random.default_rng(0)
    images = [texture(rng) for _ in range(4)]
    paths = [write_image(tmp_path / f"{i}.png", im) for i, im in enumerate(images)]
    (tmp_path / "0_copy.jpg").write_bytes(
        encode_image(np.clip(images[0].astype(int) + 8, 0, 255).astype(np.uint8), "jpeg", quality=95)
    )
    paths.append(tmp_path / "0_copy.jpg")
    (tmp_path / "bad.png").write_bytes(b"junk")
    paths.append(tmp_path / "bad.png")
    recs = [Record(p, label=0) for p in paths]
    recs[2].group, recs[3].group = "same-patient", "same-patient"
    index = DatasetIndex(tmp_path, "imagefolder", Task.CLASSIFY, ["x"], recs)
    assert group_ids_from_hashes(index, 4) == ["g0", "g1", "g2", "g2", "g0", "g3"]
    split = stratified_split([0] * 6, ratios=(0.5, 0.5), groups=group_ids_from_hashes(index, 4))
    assert where(split)[0] == where(split)[4] and where(split)[2] == where(split)[3]


def _folder(root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, n in sizes.items():
        for i in range(n):
            write_image(root / c / f"{i}.png", texture(rng))
    return root


def test_manifest_round_trip(tmp_path):
    root = _folder(tmp_path / "ds", {"cat": 10, "dog": 5})
    index = read_dataset(root)
    before = {p: p.read_bytes() for p in root.rglob("*.png")}
    split = stratified_split(index.labels(), seed=0)
    path = write_split_manifest(index, split, root / "splits.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "split"] and len(rows) == 15
    assert (
        rows[0]["path"] == "cat/" + rows[0]["path"].split("/")[1] and not Path(rows[0]["path"]).is_absolute()
    )
    # the CSV reader reads it back: same files, labels and splits
    back = read_dataset(path)
    got = {(r.path.resolve(), back.classes[r.label], r.split) for r in back.records}
    assignment = where(split)
    want = {(r.path.resolve(), index.classes[r.label], assignment[i]) for i, r in enumerate(index.records)}
    assert got == want
    # and apply_split_manifest puts the splits on any index
    applied = apply_split_manifest(index, path)
    assert [r.split for r in applied.records] == [assignment[i] for i in range(len(index))]
    assert {p: p.read_bytes() for p in root.rglob("*.png")} == before  # nothing moved or changed
    with pytest.raises(ConfigError, match="already exists"):
        write_split_manifest(index, split, path)
    with pytest.raises(ConfigError, match="both"):
        write_split_manifest(index, {"train": [0, 1], "val": [1]}, tmp_path / "x.csv")


def test_manifest_with_groups_for_detection(tmp_path):
    recs = [
        Record(tmp_path / f"{i}.png", boxes=np.zeros((1, 4)), box_labels=np.array([i % 2])) for i in range(4)
    ]
    index = DatasetIndex(tmp_path, "yolo", Task.DETECT, ["a", "b"], recs)
    path = write_split_manifest(
        index, {"train": [0, 1, 2], "val": [3]}, tmp_path / "m.csv", groups=["g0", "g0", "g1", "g2"]
    )
    text = path.read_text().splitlines()
    assert text[0] == "path,split,group" and text[1] == "0.png,train,g0" and text[-1] == "3.png,val,g2"
    assert [r.split for r in apply_split_manifest(index, path).records] == ["train", "train", "train", "val"]


# ---------------------------------------------------------------- CLI
@pytest.fixture
def cli(capsys):
    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_split_writes_manifest_and_counts(tmp_path, cli):
    root = _folder(tmp_path / "ds", {"cat": 20, "dog": 10})
    out = tmp_path / "out" / "split.csv"
    out.parent.mkdir()  # outside the current folder, pixlearn creates no missing folders above an output
    code, stdout, err = cli(
        "data", "split", root, "--ratios", "0.6,0.2,0.2", "--seed", "1", "--out", out, "--format", "json"
    )
    assert code == 0, err
    rows = {r["class"]: r for r in json.loads(stdout)}
    assert rows["cat"] == {"class": "cat", "train": 12, "val": 4, "test": 4, "total": 20}
    assert rows["total"]["total"] == 30
    with out.open() as fh:
        assert Counter(r["split"] for r in csv.DictReader(fh)) == {"train": 18, "val": 6, "test": 6}
    # outside the dataset, paths are relative to the manifest (../ds/...): they lead out of the manifest's
    # folder, so the CSV reader refuses them unless asked, and the command says so
    assert "read it with --allow-outside-root" in err
    with pytest.raises(ConfigError, match="every path it names leads outside the dataset folder .30 refused"):
        read_dataset(out)
    back = read_dataset(out, allow_outside_root=True)
    assert back.splits() == {"train": 18, "val": 6, "test": 6} and all(r.path.is_file() for r in back.records)
    code, _, err = cli("data", "split", root, "--ratios", "0.6,0.2,0.2", "--seed", "1", "--out", out)
    assert code == 1 and "already exists" in err
    code, _, err = cli("data", "split", root, "--ratios", "0.6,0.3", "--out", tmp_path / "o2")
    assert code == 1 and "sum to 1" in err


def test_cli_split_grouped_and_folds(tmp_path, cli):
    root = _folder(tmp_path / "ds", {"cat": 9, "dog": 6})
    (root / "cat" / "near.jpg").write_bytes(
        encode_image(cv2.imread(str(root / "cat" / "0.png"))[..., ::-1].copy(), "jpeg", quality=95)
    )
    code, stdout, err = cli(
        "data", "split", root, "--group-near-duplicates", "--no-progress", "--ratios", "0.5,0.5"
    )
    assert code == 0, err
    assert "15 groups for 16 images" in err and (root / "splits.csv").exists()
    with (root / "splits.csv").open() as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    assert rows["cat/0.png"]["group"] == rows["cat/near.jpg"]["group"]
    assert rows["cat/0.png"]["split"] == rows["cat/near.jpg"]["split"]
    # the manifest in the root makes the folder a CSV dataset carrying the new split
    code, stdout, err = cli(
        "data", "check", root, "--format", "json", "--no-progress", "--min-per-class", "1"
    )
    report = json.loads(stdout)
    assert code == 0 and report["format"] == "csv" and report["splits"] == ["train", "val"]
    assert not [f for f in report["findings"] if f["code"] == "split_leak"]

    code, stdout, err = cli("data", "split", root, "--folds", "3", "--out", tmp_path / "folds")
    assert code == 0, err
    files = sorted((tmp_path / "folds").glob("fold_*.csv"))
    assert [f.name for f in files] == ["fold_0.csv", "fold_1.csv", "fold_2.csv"]
    val = []
    for f in files:
        with f.open() as fh:
            val += [r["path"].removeprefix("../ds/") for r in csv.DictReader(fh) if r["split"] == "val"]
    assert sorted(val) == sorted(rows)  # every image is validation exactly once
    assert stdout.splitlines()[0].split() == ["class", "fold_0", "fold_1", "fold_2", "total"]
