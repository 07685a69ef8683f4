"""Training-loader throughput: pixlearn's ImageDataset + make_loader against torchvision's ImageFolder + DataLoader.

Usage: python benchmarks/bench_loader.py [--data ../shared/datasets/cifar10] [--large 1000] [--repeat 3]

Both sides decode every image of one epoch, apply the same `standard` augmentation (random
resized crop to the output size with scale (0.7, 1), horizontal flip p=0.5, rotation ±10°
bilinear, colour jitter 0.2/0.2/0.2), turn it into float32 in [0, 1] and normalise with the
ImageNet mean/std, in batches of 64, shuffled, with persistent workers when workers > 0.

Peer: `torchvision.datasets.ImageFolder` (Pillow decoding) with the v2 pipeline torchvision's
docs recommend (ToImage first, uint8 tensors until ToDtype, then Normalize) and a plain
`DataLoader`. Ours: `read_dataset` (or the folder scanner) -> `ImageDataset` with
`build_augment("standard")` -> `make_loader`.

Sets: CIFAR-10 train (5000 JPEGs, 32x32, output 32x32) from ../shared/datasets, and generated
640x480 JPEGs (quality 90, from scikit-image's photos) resized to 224x224. Epochs of the two
loaders are interleaved, best of ``--repeat``; ratio = peer time / our time (>= 1.0: pixlearn is
at least as fast). With workers=0 the peer also runs with one torch thread (pixlearn's loader
fetches with one, as DataLoader workers do): ratio_vs_peer_1thread compares the pipelines alone,
without the thread contention a busy machine adds to the plain peer. Results go to
benchmarks/results/loader.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402
from bench_io import large_jpegs  # noqa: E402

from pixlearn.data.augment import build_augment  # noqa: E402
from pixlearn.data.index import DatasetIndex, Record  # noqa: E402
from pixlearn.data.loader import ImageDataset, make_loader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH = 64


def read_index(root: Path) -> DatasetIndex:
    try:
        from pixlearn.data.readers import read_dataset
    except ImportError:  # readers not there yet: index the class folders directly
        from pixlearn._core.types import Task
        from pixlearn.data.folder import scan_image_folder

        found = scan_image_folder(root)
        lookup = {c: i for i, c in enumerate(found.classes)}
        records = [Record(path=e.path, split=e.split, label=lookup[e.label]) for e in found.entries]
        return DatasetIndex(
            root=root, format="imagefolder", task=Task.CLASSIFY, classes=list(found.classes), records=records
        )
    return read_dataset(root)


def peer_loader(folder: Path, size: int, workers: int) -> DataLoader:
    tf = v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.RandomRotation(10, interpolation=v2.InterpolationMode.BILINEAR),
            v2.ColorJitter(0.2, 0.2, 0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )
    ds = datasets.ImageFolder(str(folder), transform=tf)
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0, generator=g
    )


def our_loader(folder: Path, size: int, workers: int):
    index = read_index(folder)
    ds = ImageDataset(
        index, transform=build_augment("standard", task="classify", img_size=size), mean=MEAN, std=STD
    )
    return make_loader(ds, batch_size=BATCH, shuffle=True, workers=workers, seed=0)


def epoch(loader) -> tuple[float, float, int]:
    """Wall seconds, this process's CPU seconds and the number of images of one full epoch."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for batch in loader:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch.images
        n += images.shape[0]
    return time.perf_counter() - t0, time.process_time() - c0, n


def check_same_output(ours, peer) -> dict[str, object]:
    bo, bp = next(iter(ours)), next(iter(peer))
    return {
        "shape_ours": list(bo.images.shape),
        "shape_peer": list(bp[0].shape),
        "dtype_ours": str(bo.images.dtype),
        "dtype_peer": str(bp[0].dtype),
    }


def _one_thread_epoch(loader) -> tuple[float, float, int]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return epoch(loader)
    finally:
        torch.set_num_threads(threads)


def bench_set(name: str, folder: Path, size: int, workers_list: list[int], repeat: int) -> list[dict]:
    rows = []
    for workers in workers_list:
        ours, peer = our_loader(folder, size, workers), peer_loader(folder, size, workers)
        info = check_same_output(ours, peer)
        assert info["shape_ours"] == info["shape_peer"] and info["dtype_ours"] == info["dtype_peer"], info
        runs = {"ours": lambda ours=ours: epoch(ours), "peer": lambda peer=peer: epoch(peer)}
        if workers == 0:
            # pixlearn fetches with one intra-op thread (as DataLoader workers do); the plain peer
            # keeps torch's default, which loses badly when other processes share the cores. The
            # peer with one thread too isolates the pipelines' own cost.
            runs["peer_1thread"] = lambda peer=peer: _one_thread_epoch(peer)
        for run in runs.values():  # warm-up: workers start, caches fill
            run()
        best = {k: float("inf") for k in runs}
        count = {}
        for _ in range(repeat):
            for k, run in runs.items():
                t, _, count[k] = run()
                best[k] = min(best[k], t)
        assert len(set(count.values())) == 1, count
        n = count["ours"]
        row = {"case": f"{name} -> {size}px", "workers": workers, "images": n}
        row |= {f"{k}_img_s": round(n / t, 1) for k, t in best.items()}
        row["ratio"] = round(best["peer"] / best["ours"], 3)
        row["ratio_vs_peer_1thread"] = (
            round(best["peer_1thread"] / best["ours"], 3) if "peer_1thread" in best else ""
        )
        rows.append(row)
        print_table(rows[-1:])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "datasets" / "cifar10"),
        help="CIFAR-10 root (train/<class>/*.jpg)",
    )
    ap.add_argument("--large", type=int, default=1000, help="number of generated 640x480 JPEGs")
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    workers_list = [int(w) for w in args.workers.split(",")]
    rows: list[dict] = []
    cifar = Path(args.data) / "train"
    if cifar.is_dir():
        rows += bench_set("cifar10 train 32x32", cifar, 32, workers_list, args.repeat)
    else:
        print(f"(no CIFAR-10 under {args.data}; skipping that set)", file=sys.stderr)
    if args.large:
        tmp = Path(tempfile.mkdtemp())
        try:
            half = args.large // 2
            for k, n in enumerate((half, args.large - half)):
                (tmp / f"class{k}").mkdir()
                large_jpegs(tmp / f"class{k}", n)
            rows += bench_set(f"generated 640x480 x{args.large}", tmp, 224, workers_list, args.repeat)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print_table(rows)
    out = ROOT / "benchmarks" / "results" / "loader.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch": BATCH,
        "cpu_count": __import__("os").cpu_count(),
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
