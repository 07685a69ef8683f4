"""pixlearn's default classification recipe vs a plain PyTorch loop on CIFAR-10 (JPEG copies), CPU.

Usage: python benchmarks/bench_classify_cifar.py [DATA] [--epochs 8] [--workers 0] [--threads N] [--json PATH]

DATA defaults to ../shared/datasets/cifar10 next to the repository (train/<class>/*.jpg: 5,000 images,
val/<class>/*.jpg: 1,000). The benchmark sees DATA's val/ as the test split (a folder view with
train/ -> DATA/train and test/ -> DATA/val), so the 1,000 images are scored by both contestants and
used by neither for training, early stopping or picking an epoch.

* pixlearn: ``train_classifier(view, epochs=E)`` with every other setting at its default -- the small
  CNN at 32x32, batch 64, the "standard" augmentation, AdamW with warmup + cosine, label smoothing 0.1,
  a 10% validation split held out of train/ (stratified, seed 0) to pick the best epoch.
* the named peer, a plain PyTorch loop: the same model (same initial weights), the same 4,500 training
  images (train/ minus pixlearn's validation part), the same augmentation and data loader, the same
  number of epochs and batch size; Adam (lr 1e-3), cross-entropy, last epoch's weights.

Throughput is training images per second over the training passes (data loading included; validation
and scoring excluded) for both. Pass criteria: accuracy >= the loop's and images/s >= 0.9x the loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_view(data: Path, root: Path) -> Path:
    view = root / "view"
    view.mkdir()
    os.symlink(data.resolve() / "train", view / "train", target_is_directory=True)
    os.symlink(data.resolve() / "val", view / "test", target_is_directory=True)
    return view


def hand_loop(view: Path, *, epochs: int, batch: int, workers: int, seed: int) -> dict:
    """The peer: a plain PyTorch training loop on pixlearn's own data pipeline."""
    import torch
    import torch.nn.functional as F

    from pixlearn.data.augment import build_augment
    from pixlearn.data.loader import ImageDataset, make_loader
    from pixlearn.tasks.classify.metrics import classification_metrics
    from pixlearn.models import create_model
    from pixlearn.tasks.classify.data import plan_splits, read_classify_dataset

    index = read_classify_dataset(view)
    splits = plan_splits(index, val_fraction=0.1, test_fraction=0.1, seed=seed)  # pixlearn's split: the same 4,500 images
    torch.manual_seed(seed)  # pixlearn seeds the model the same way: same initial weights
    model = create_model("pixlearn_smallcnn", num_classes=len(index.classes), img_size=32)
    pre = model.pixlearn_spec.preprocess
    aug = build_augment("standard", task="classify", img_size=32)
    train_ds = ImageDataset(index.subset(indices=splits.train), transform=aug, mean=pre.mean, std=pre.std)
    loader = make_loader(train_ds, batch_size=batch, shuffle=True, workers=workers, seed=seed, drop_last=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_s = 0.0
    seen = 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        for batch_ in loader:
            x, y = batch_.images, batch_.targets
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            n += len(y)
        train_s += time.perf_counter() - t0
        seen += n
        print(f"  loop epoch {epoch + 1}/{epochs}: loss {total / n:.4f}, {n / (time.perf_counter() - t0):.1f} img/s", file=sys.stderr, flush=True)
    model.eval()
    test_ds = ImageDataset(index.subset(indices=splits.test), mean=pre.mean, std=pre.std, img_size=32)
    preds, labels = [], []
    with torch.no_grad():
        for b in make_loader(test_ds, batch_size=256, shuffle=False, workers=workers, seed=0):
            preds.append(model(b.images).argmax(1))
            labels.append(b.targets)
    y_pred, y_true = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    m = classification_metrics(y_true, y_pred, classes=index.classes)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n_test": m["n"], "n_train": len(splits.train),
            "train_seconds": train_s, "images_per_second": seen / train_s}


def pixlearn_run(view: Path, out: Path, *, epochs: int, workers: int, seed: int) -> dict:
    from pixlearn.train import train_classifier

    res = train_classifier(view, epochs=epochs, workers=workers, seed=seed, out=out, progress=False)
    m = res.metrics
    train_s = sum(r["train_seconds"] for r in res.history)
    imgs = m["splits"]["train"]["images"]
    batch = res.config.data.batch_size
    per_epoch = (imgs // batch) * batch  # the last partial batch is dropped, as in the loop
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n_test": m["n"], "n_train": imgs, "split": m["split"],
            "train_seconds": train_s, "images_per_second": per_epoch * len(res.history) / train_s,
            "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "lr": res.config.optim.lr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "datasets" / "cifar10"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        print(f"error: {data} has no train/ and val/ folders; pass the CIFAR-10 root as the first argument", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        view = make_view(data, Path(tmp))
        load = os.getloadavg()[0]
        print(f"plain PyTorch loop, {args.epochs} epochs (load average {load:.2f}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        loop = hand_loop(view, epochs=args.epochs, batch=64, workers=args.workers, seed=args.seed)
        loop["wall_s"] = time.perf_counter() - t0
        load2 = os.getloadavg()[0]
        print(f"pixlearn default recipe, {args.epochs} epochs (load average {load2:.2f}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        ours = pixlearn_run(view, Path(tmp) / "run", epochs=args.epochs, workers=args.workers, seed=args.seed)
        ours["wall_s"] = time.perf_counter() - t0
    rows = [
        {"method": "pixlearn train classify (defaults)", "test_accuracy": round(ours["accuracy"], 4),
         "test_macro_f1": round(ours["macro_f1"], 4), "train_images_per_s": round(ours["images_per_second"], 1),
         "train_s": round(ours["train_seconds"], 1), "wall_s": round(ours["wall_s"], 1), "n_train": ours["n_train"],
         "n_test": ours["n_test"], "epochs": f"{ours['epochs_run']} (best {ours['best_epoch']})"},
        {"method": "peer: plain PyTorch loop (Adam 1e-3)", "test_accuracy": round(loop["accuracy"], 4),
         "test_macro_f1": round(loop["macro_f1"], 4), "train_images_per_s": round(loop["images_per_second"], 1),
         "train_s": round(loop["train_seconds"], 1), "wall_s": round(loop["wall_s"], 1), "n_train": loop["n_train"],
         "n_test": loop["n_test"], "epochs": f"{args.epochs} (last)"},
    ]
    print_table(rows)
    acc_ok = ours["accuracy"] >= loop["accuracy"]
    speed = ours["images_per_second"] / loop["images_per_second"]
    print(f"accuracy: {ours['accuracy']:.4f} vs {loop['accuracy']:.4f} ({'>=' if acc_ok else '<'} the loop's); "
          f"throughput ratio {speed:.3f} (target >= 0.9); torch threads {torch.get_num_threads()}, workers {args.workers}; "
          f"test = DATA/val ({ours['n_test']} images), scored by both, used by neither")
    if args.json:
        from pixlearn import __version__

        Path(args.json).write_text(json.dumps({
            "benchmark": "classify_cifar10", "pixlearn": __version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "args": vars(args), "pixlearn_run": ours, "loop": loop,
            "throughput_ratio": speed, "load_average": [load, load2],
        }, indent=2, default=str) + "\n")
    return 0 if acc_ok and speed >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
