"""U-Net against the classical segmenters on ISBI 2012 (EM membranes) and on synthetic shapes (CPU).

Usage: python benchmarks/bench_segment.py [--minutes 8] [--shapes-minutes 3] [--encoder tu-resnet18]
                                          [--data ../shared/datasets/isbi2012] [--threads 1] [--json PATH]

ISBI 2012: the 24 labelled 512x512 slices (label 255 = cell interior, 0 = membrane) are split once,
by a seeded permutation of their numeric order (seed 0), into 18 train and 6 val slices; the split is
fixed on the DatasetIndex, so every method below sees the same images.

* pixlearn train segment: a U-Net on a randomly initialised ``tu-resnet18`` encoder (nothing is
  downloaded) trains on random 256-px crops of the 18 train slices (flips), within a wall-time budget
  (``--minutes``; epochs are sized from a timed calibration of a few steps so that the cosine schedule
  ends in time). The last epoch's weights are kept (val picks nothing), and the 6 whole val slices are
  segmented tile by tile (256-px tiles, 25% overlap, Hann blending).
* the named peers, pixlearn's classical segmenters (Otsu, adaptive threshold, k-means, watershed):
  each is fitted on the same 18 train slices (which side / cluster is which class, and its options)
  and scored on the same 6 val slices.

Scores: mean IoU and mean Dice over the two classes (membrane, cell interior), pixel accuracy, from one
confusion matrix over all val pixels; foreground IoU (every class but 0 against class 0; ISBI: cell
interior); fit time. The same comparison then runs on synthetic ``shapes`` masks (4 classes:
background, circle, square, triangle; 128-px images, 20% val), where a threshold can find objects
(foreground IoU) but not tell a circle from a square (mean IoU).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("otsu", "adaptive_threshold", "kmeans", "watershed")
KEYS = ("mean_iou", "mean_dice", "pixel_accuracy", "foreground_iou")


def isbi_index(data: Path, *, seed: int, n_val: int) -> tuple[Any, list[str]]:
    """The ISBI slices with a fixed train / val split (seeded permutation of the numeric order)."""
    import numpy as np

    from pixlearn.tasks.segment.data import read_segment_dataset

    index = read_segment_dataset(data)
    order = sorted(range(len(index)), key=lambda i: int(Path(index.records[i].path).stem) if Path(index.records[i].path).stem.isdigit() else i)
    perm = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    val = set(perm[:n_val])
    fixed = index.with_splits({i: ("val" if i in val else "train") for i in range(len(index))})
    return fixed, sorted(Path(index.records[i].path).name for i in val)


def calibrate_epochs(index: Any, *, arch: str, encoder: str, img_size: int, batch: int, crops: int, minutes: float, n_train: int,
                     n_val: int, val_every: int, val_px: int) -> tuple[int, dict[str, float]]:
    """Time a few training steps and one whole-image validation pass; return the epochs that fit ``minutes``."""
    import torch

    from pixlearn.models import create_segmentation_model
    from pixlearn.tasks.segment.module import SegmentTask

    model = create_segmentation_model(arch, encoder=encoder, num_classes=1, img_size=img_size)
    task = SegmentTask(model, num_classes=2, tile=img_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.rand(batch, 3, img_size, img_size), torch.randint(0, 2, (batch, img_size, img_size))
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        loss = task.training_loss(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    step = sorted(times[1:])[2]  # the median of the last five
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        task.infer(torch.rand(1, 3, val_px, val_px))
        val_image = time.perf_counter() - t0
    steps = math.ceil(n_train * crops / batch)
    epoch = steps * step * 1.1 + 1.0  # loading and cropping
    per_epoch = epoch + n_val * val_image / val_every
    budget = minutes * 60.0 * 0.9
    epochs = max(1, int(budget // per_epoch))
    return epochs, {"step_seconds": round(step, 3), "val_image_seconds": round(val_image, 3), "epoch_seconds_estimate": round(per_epoch, 2)}


def run_unet(index: Any, out: Path, *, minutes: float, encoder: str, img_size: int, batch: int, crops: int, val_every: int,
             val_px: int, n_val: int, seed: int, lr: float | None) -> dict[str, Any]:
    from pixlearn.tasks.segment.train import train_segmenter

    n_train = sum(1 for r in index.records if r.split != "val")
    epochs, cal = calibrate_epochs(index, arch="unet", encoder=encoder, img_size=img_size, batch=batch, crops=crops, minutes=minutes,
                                   n_train=n_train, n_val=n_val, val_every=val_every, val_px=val_px)
    print(f"  calibration: {cal}; training {epochs} epochs within {minutes} min", file=sys.stderr)
    t0 = time.perf_counter()
    res = train_segmenter(
        index, model="unet", encoder=encoder, epochs=epochs, img_size=img_size, batch=batch, crops_per_image=crops, keep="last",
        patience=0, minutes=minutes, val_every=val_every, seed=seed, lr=lr, loss="ce+dice", out=out, progress=False,
    )
    wall = time.perf_counter() - t0
    m = res.metrics or {}
    return {
        **{k: m.get(k) for k in KEYS}, "per_class_iou": {c: r["iou"] for c, r in (m.get("per_class") or {}).items()},
        "split": m.get("split"), "n": m.get("n"), "fit_seconds": m.get("fit_seconds"), "wall_seconds": round(wall, 1),
        "epochs_run": res.epochs_run, "epochs_planned": epochs, "calibration": cal, "run_dir": str(res.run_dir),
        "lr": res.config.optim.lr, "crops_per_epoch": n_train * crops,
    }


def run_classic(index: Any, *, val_fraction: float, seed: int) -> dict[str, Any]:
    from pixlearn.tasks.segment.classic import evaluate_classic_segmentation

    out = {}
    for method in METHODS:
        t0 = time.perf_counter()
        m = evaluate_classic_segmentation(index, method, val_fraction=val_fraction, seed=seed)
        out[method] = {**{k: m.get(k) for k in KEYS}, "per_class_iou": {c: r["iou"] for c, r in m["per_class"].items()},
                       "split": m["split"], "n": m["n"], "fit_seconds": m["fit_seconds"], "predict_seconds": m["predict_seconds"],
                       "params": m["params"], "train_mean_iou": m["train_mean_iou"], "wall_seconds": round(time.perf_counter() - t0, 1)}
        print(f"  {method}: mean IoU {m['mean_iou']:.4f}", file=sys.stderr)
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _rows(name: str, unet: dict[str, Any] | None, classic: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    best = max(c["mean_iou"] or 0.0 for c in classic.values())
    entries = ([("unet (pixlearn)", unet)] if unet else []) + list(classic.items())
    for method, r in entries:
        rows.append({
            "dataset": name, "method": method, "split": f"{r['split']} (n={r['n']})",
            "mean_iou": _fmt(r["mean_iou"]), "mean_dice": _fmt(r["mean_dice"]), "pixel_acc": _fmt(r["pixel_accuracy"]),
            "fg_iou": _fmt(r["foreground_iou"]), "fit_s": f"{r['fit_seconds']:.1f}",
            "iou_vs_best_classic": f"{(r['mean_iou'] or 0.0) / best:.2f}x" if best else "-",
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "isbi2012")
    ap.add_argument("--minutes", type=float, default=8.0, help="U-Net training wall-time budget on ISBI")
    ap.add_argument("--shapes-minutes", type=float, default=3.0, help="U-Net training budget on shapes (0 skips shapes)")
    ap.add_argument("--shapes-n", type=int, default=120)
    ap.add_argument("--encoder", default="tu-resnet18")
    ap.add_argument("--img-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crops", type=int, default=4, help="random crops per training slice per epoch")
    ap.add_argument("--val-every", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared 2-core machine 2 threads ran 3x slower)")
    ap.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "segment.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_segment_"))
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "threads": args.threads, "device": "cpu", "note": "2 shared cores; other work ran on the machine at the same time"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    rows: list[dict[str, Any]] = []

    print("ISBI 2012 ...", file=sys.stderr)
    index, val_files = isbi_index(args.data, seed=args.seed, n_val=6)
    classic = run_classic(index, val_fraction=0.0, seed=args.seed)
    unet = run_unet(index, out / "isbi_unet", minutes=args.minutes, encoder=args.encoder, img_size=args.img_size, batch=args.batch,
                    crops=args.crops, val_every=args.val_every, val_px=512, n_val=6, seed=args.seed, lr=args.lr)
    results["isbi2012"] = {"data": str(args.data), "train": len(index) - len(val_files), "val": len(val_files), "val_files": val_files,
                           "split": f"seeded permutation (seed {args.seed}) of the 24 slices: 18 train / 6 val",
                           "unet": unet, "classic": classic}
    rows += _rows("isbi2012", unet, classic)

    if args.shapes_minutes > 0:
        print("shapes ...", file=sys.stderr)
        from pixlearn.data.samples import write_sample
        from pixlearn.tasks.segment.data import read_segment_dataset

        shapes_dir = out / "shapes_data"
        write_sample("shapes", shapes_dir, n=args.shapes_n, task="segment", size=128, seed=args.seed)
        sidx = read_segment_dataset(shapes_dir)
        s_classic = run_classic(sidx, val_fraction=0.2, seed=args.seed)
        n_val = round(0.2 * len(sidx))
        from pixlearn.tasks.segment.data import plan_segment_splits

        plan = plan_segment_splits(sidx, val_fraction=0.2, test_fraction=0.0, seed=args.seed)
        fixed = sidx.with_splits({i: ("val" if i in set(plan.val) else "train") for i in range(len(sidx))})
        s_unet = run_unet(fixed, out / "shapes_unet", minutes=args.shapes_minutes, encoder=args.encoder, img_size=128, batch=8, crops=1,
                          val_every=args.val_every, val_px=128, n_val=n_val, seed=args.seed, lr=args.lr)
        results["shapes"] = {"images": len(sidx), "size": 128, "classes": sidx.classes, "train": len(plan.train), "val": len(plan.val),
                             "unet": s_unet, "classic": s_classic}
        rows += _rows("shapes", s_unet, s_classic)

    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {args.json}; run folders: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
