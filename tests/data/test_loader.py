"""Training loader: batches, seeded determinism across worker counts, skip-and-report, flat memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.types import Task
from pixlearn.data.augment import build_augment, to_tensor_sample
from pixlearn.data.index import DatasetIndex, Record
from pixlearn.data.loader import (
    Batch,
    ImageDataset,
    Skipped,
    collate_skip_none,
    loader_skipped,
    make_loader,
)
from pixlearn.io import write_image


def make_index(root: Path, n: int = 24, *, size=(32, 32), corrupt: tuple[int, ...] = ()) -> DatasetIndex:
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        path = root / f"img{i:03d}.png"
        if i in corrupt:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature and nothing usable
        else:
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            image[:, : size[1] // 2] //= 4  # structure for crops and rotations to move
            write_image(path, image)
        records.append(Record(path=path, label=i % 3, split="train"))
    return DatasetIndex(
        root=root, format="test", task=Task.CLASSIFY, classes=["a", "b", "c"], records=records
    )


def epochs(loader, n: int) -> list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    return [[(b.images.clone(), b.targets.clone(), b.indices.clone()) for b in loader] for _ in range(n)]


def test_batches_are_float_images_with_labels(tmp_path):
    index = make_index(tmp_path, 20)
    ds = ImageDataset(index, transform=build_augment("standard", task="classify", img_size=24))
    item = ds[3]
    assert (
        item.image.dtype == torch.uint8
        and item.image.shape == (3, 24, 24)
        and int(item.targets["label"]) == 0
    )
    loader = make_loader(ds, batch_size=8, shuffle=False, workers=0, seed=0)
    batches = list(loader)
    assert [len(b) for b in batches] == [8, 8, 4]
    b = batches[0]
    assert isinstance(b, Batch) and b.images.shape == (8, 3, 24, 24) and b.images.dtype == torch.float32
    assert 0.0 <= float(b.images.min()) and float(b.images.max()) <= 1.0
    assert b.indices.tolist() == list(range(8)) and b.targets.tolist() == [i % 3 for i in range(8)]
    images, labels = b  # unpacks like a (x, y) pair
    assert images is b.images and labels is b.targets
    assert len(make_loader(ds, batch_size=8, shuffle=False, workers=0, seed=0, drop_last=True)) == 2


def test_normalisation_matches_to_tensor_sample(tmp_path):
    index = make_index(tmp_path, 4)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    b = next(
        iter(
            make_loader(
                ImageDataset(index, mean=mean, std=std), batch_size=4, shuffle=False, workers=0, seed=0
            )
        )
    )
    x, _ = to_tensor_sample(index.load(2), img_size=None, mean=mean, std=std)
    torch.testing.assert_close(b.images[2], x)


@pytest.mark.parametrize("shuffle", [True, False])
def test_same_seed_same_batches_with_0_or_2_workers(tmp_path, shuffle):
    index = make_index(tmp_path, 24)
    aug = build_augment("strong", task="classify", img_size=32)
    ds = ImageDataset(index, transform=aug)
    run0 = epochs(make_loader(ds, batch_size=5, shuffle=shuffle, workers=0, seed=11), 2)
    run0b = epochs(make_loader(ds, batch_size=5, shuffle=shuffle, workers=0, seed=11), 2)
    run2 = epochs(make_loader(ds, batch_size=5, shuffle=shuffle, workers=2, seed=11), 2)
    for other in (run0b, run2):
        for e0, e1 in zip(run0, other):
            assert len(e0) == len(e1) == 5
            for (x0, y0, i0), (x1, y1, i1) in zip(e0, e1):
                assert torch.equal(i0, i1) and torch.equal(y0, y1) and torch.equal(x0, x1)
    # epochs differ from each other, and another seed differs
    assert not torch.equal(run0[0][0][0], run0[1][0][0])
    run_other = epochs(make_loader(ds, batch_size=5, shuffle=shuffle, workers=0, seed=12), 1)
    assert not torch.equal(run0[0][0][0], run_other[0][0][0])
    if shuffle:
        assert run0[0][0][2].tolist() != run0[1][0][2].tolist()


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_mid_epoch_is_skipped_and_reported(tmp_path, workers, caplog):
    index = make_index(tmp_path, 16, corrupt=(6,))
    ds = ImageDataset(index, transform=build_augment("light", task="classify", img_size=32))
    assert isinstance(ds[6], Skipped) and not ds[6]
    loader = make_loader(ds, batch_size=4, shuffle=False, workers=workers, seed=0)
    for _ in range(2):  # every epoch reports it again; the epoch always completes
        batches = list(loader)
        assert sum(len(b) for b in batches) == 15
        assert 6 not in torch.cat([b.indices for b in batches]).tolist()
        skipped = loader_skipped(loader)
        assert [s.path for s in skipped] == [str(tmp_path / "img006.png")]
        assert "ImageDecodeError" in skipped[0].error
    assert "img006.png" in caplog.text


def test_collate_drops_none_and_skipped(tmp_path):
    index = make_index(tmp_path, 3)
    ds = ImageDataset(index)
    bad = Skipped(9, "x.png", "ImageDecodeError: broken")
    batch = collate_skip_none([None, ds[0], bad, ds[2]])
    assert len(batch) == 2 and batch.indices.tolist() == [0, 2] and batch.skipped == [bad]
    empty = collate_skip_none([None, bad])
    assert len(empty) == 0 and empty.skipped == [bad]


def test_detection_and_segmentation_targets(tmp_path):
    rng = np.random.default_rng(1)
    records = []
    for i in range(4):
        path = tmp_path / f"d{i}.png"
        write_image(path, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
        mask_path = tmp_path / f"d{i}_mask.png"
        mask = np.zeros((40, 48), np.uint8)
        mask[5:20, 10:30] = 1
        write_image(mask_path, mask)
        boxes = None if i == 3 else np.array([[10, 5, 30, 20], [30, 25, 46, 38]], np.float32)
        records.append(
            Record(
                path=path,
                boxes=boxes,
                box_labels=None if boxes is None else np.array([0, 1]),
                mask_path=mask_path,
            )
        )
    det = DatasetIndex(root=tmp_path, format="test", task=Task.DETECT, classes=["a", "b"], records=records)
    b = next(
        iter(
            make_loader(
                ImageDataset(det, transform=build_augment("standard", task="detect", img_size=32)),
                batch_size=4,
                shuffle=False,
                workers=0,
                seed=0,
            )
        )
    )
    assert b.images.shape == (4, 3, 32, 32) and isinstance(b.targets, list) and len(b.targets) == 4
    for t in b.targets[:3]:
        assert (
            t["boxes"].dtype == torch.float32
            and t["boxes"].shape[1] == 4
            and t["labels"].dtype == torch.int64
        )
        assert len(t["boxes"]) == len(t["labels"]) and float(t["boxes"].max()) <= 32
    assert b.targets[3]["boxes"].shape == (0, 4)  # an image without annotations still has (empty) boxes
    seg = DatasetIndex(
        root=tmp_path,
        format="test",
        task=Task.SEGMENT,
        classes=["bg", "fg"],
        records=[Record(path=r.path, mask_path=r.mask_path) for r in records],
    )
    b = next(
        iter(
            make_loader(ImageDataset(seg, img_size=(20, 24)), batch_size=4, shuffle=False, workers=0, seed=0)
        )
    )
    assert b.targets.shape == (4, 20, 24) and b.targets.dtype == torch.int64
    assert set(b.targets.unique().tolist()) == {0, 1}


def test_bad_arguments(tmp_path):
    index = make_index(tmp_path, 4)
    index.records[1].path.unlink()
    write_image(index.records[1].path, np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ShapeError, match="img_size"):
        next(iter(make_loader(ImageDataset(index), batch_size=4, shuffle=False, workers=0, seed=0)))
    with pytest.raises(ConfigError):
        make_loader(ImageDataset(index), batch_size=0, shuffle=False, workers=0, seed=0)
    with pytest.raises(ConfigError):
        ImageDataset(index, mean=[0.5, 0.5, 0.5])
    with pytest.raises(ConfigError):
        ImageDataset(index.records)  # type: ignore[arg-type]


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux) or psutil")
def test_memory_stays_flat_over_epochs(tmp_path):
    # 64 images of 192x192: a cache of decoded images would hold 7 MiB, a leak grows every epoch
    index = make_index(tmp_path, 64, size=(192, 192))
    ds = ImageDataset(index, transform=build_augment("strong", task="classify", img_size=32))
    warm = ImageDataset(index.subset(indices=list(range(16))), transform=ds.transform)
    for _ in make_loader(warm, batch_size=16, shuffle=True, workers=0, seed=0):  # allocator and lazy imports
        pass
    loader = make_loader(ds, batch_size=16, shuffle=True, workers=0, seed=0)
    start = _rss_bytes()
    for _ in range(3):
        for _ in loader:
            pass
    grown = (_rss_bytes() - start) / 2**20
    assert grown < 4.0, f"RSS grew by {grown:.1f} MiB over 3 epochs"
