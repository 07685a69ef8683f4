"""Deep classifier vs the classic baseline on the built-in ``digits`` sample (CPU).

Usage: python benchmarks/bench_classify_digits.py [--epochs 15] [--img-size 16] [--seed 0] [--threads N] [--json PATH]

The 1,797 8x8 scikit-learn digits are written with pixlearn.data.samples.write_sample and split once
with pixlearn.data.splits.stratified_split (70 / 15 / 15, seed 0) into train/ val/ test/ folders.

* pixlearn train classify: the small CNN (pixlearn_smallcnn) fits train/, early-stops and picks its
  best epoch on val/, and is scored on test/.
* the named peer, pixlearn.classic (HOG + SVM, the house baseline): fits the same train/ images and is
  scored on the same test/ images (it sees a train/ + test/ view of the folder, so it scores on test/).

Neither model ever sees a test image before scoring. Target: test accuracy >= 98.5% for the CNN.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

# no flips for digits: a mirrored 2 is not a 2
DIGIT_AUGMENT = [{"zoom_crop": {"scale": [0.8, 1.0], "ratio": [0.9, 1.1]}}, {"rotate": {"degrees": 10}}]


def make_split_folder(root: Path, seed: int) -> tuple[Path, Path, dict[str, int]]:
    """``root/split/{train,val,test}/<digit>/*.png`` and ``root/classic/{train,test}`` (symlinks)."""
    from pixlearn.data.readers import read_dataset
    from pixlearn.data.samples import write_sample
    from pixlearn.data.splits import stratified_split

    raw = root / "raw"
    write_sample("digits", raw, seed=seed)
    index = read_dataset(raw)
    parts = stratified_split([r.label for r in index.records], ratios=(0.7, 0.15, 0.15), seed=seed)
    split = root / "split"
    for name, idx in parts.items():
        for i in idx:
            rec = index.records[i]
            dst = split / name / index.classes[rec.label] / rec.path.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rec.path, dst)
    classic = root / "classic"
    classic.mkdir()
    for name in ("train", "test"):
        os.symlink(split / name, classic / name, target_is_directory=True)
    return split, classic, {k: len(v) for k, v in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--img-size", type=int, default=16)
    parser.add_argument("--model", default="pixlearn_smallcnn")
    parser.add_argument("--classic-img-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pixlearn.classic import train_classic
    from pixlearn.train import train_classifier

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        split, classic_view, counts = make_split_folder(root, args.seed)
        print(f"digits split (stratified_split 70/15/15, seed {args.seed}): {counts}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

        t0 = time.perf_counter()
        res = train_classifier(
            split, model=args.model, epochs=args.epochs, img_size=args.img_size, batch=64, seed=args.seed,
            workers=args.workers, augment=DIGIT_AUGMENT, out=root / "run", progress=False,
        )
        deep_s = time.perf_counter() - t0
        m = res.metrics
        rows.append({
            "method": f"pixlearn train classify ({args.model}, {args.img_size}px)",
            "test_accuracy": round(m["accuracy"], 4),
            "test_macro_f1": round(m["macro_f1"], 4),
            "test_errors": int(round((1 - m["accuracy"]) * m["n"])),
            "n_test": m["n"],
            "epochs": f"{res.epochs_run} (best {res.best_epoch})",
            "wall_s": round(deep_s, 1),
        })

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cres = train_classic(classic_view, features="hog", model="svm", img_size=args.classic_img_size, folds=0,
                                 seed=args.seed, out=root / "classic_run")
        classic_s = time.perf_counter() - t0
        cm = cres.metrics
        assert cm["split"] == "test", cm["split"]
        rows.append({
            "method": f"peer: pixlearn.classic HOG + SVM ({args.classic_img_size}px)",
            "test_accuracy": round(cm["accuracy"], 4),
            "test_macro_f1": round(cm["macro_f1"], 4),
            "test_errors": int(round((1 - cm["accuracy"]) * cm["n"])),
            "n_test": cm["n"],
            "epochs": "-",
            "wall_s": round(classic_s, 1),
        })
    print_table(rows)
    deep, peer = rows
    target = deep["test_accuracy"] >= 0.985
    print(f"CNN vs HOG+SVM test accuracy: {deep['test_accuracy']:.4f} vs {peer['test_accuracy']:.4f} "
          f"(ratio {deep['test_accuracy'] / peer['test_accuracy']:.3f}); target >= 0.985: {'met' if target else 'NOT met'}")
    print(f"same split for both: train {counts['train']} (CNN also early-stops on val {counts['val']}), test {counts['test']}; "
          f"torch threads: {torch.get_num_threads()}; load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        from pixlearn import __version__

        Path(args.json).write_text(json.dumps({
            "benchmark": "classify_digits", "pixlearn": __version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "split": counts, "args": vars(args), "rows": rows,
        }, indent=2) + "\n")
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
