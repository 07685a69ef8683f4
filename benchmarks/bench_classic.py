"""Classic baseline on CIFAR-10 (JPEG copies): HOG / HOG+colour features + SVM / random forest.

Usage: python benchmarks/bench_classic.py [DATA] [--workers 2] [--folds 5] [--img-size 64] [--no-peer]

DATA defaults to ../shared/datasets/cifar10 next to the repository: train/<class>/*.jpg (5000) and
val/<class>/*.jpg (1000), 32x32, 10 classes. Every configuration goes through pixlearn.classic.train_classic:
fit on train/, k-fold cross-validation on train/ only, scored on val/ (never on training images).
The named peer is the same scikit-learn classifier on raw pixels (the 32x32x3 image flattened, /255),
fitted and scored on the same files in the same run, so the table shows what the features buy.
Chance is 0.10. Results go to benchmarks/results/classic_cifar10.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("hog", "svm"), ("hog", "random_forest"), ("hog+color", "svm"), ("hog+color", "random_forest")]


def raw_pixel_peer(data: Path, model: str, *, seed: int, workers: int) -> dict:
    """The same classifier on flattened raw pixels: the accuracy the features have to beat."""
    from pixlearn.classic import build_model
    from pixlearn.data.folder import scan_image_folder
    from pixlearn.tasks.classify.metrics import classification_metrics
    from pixlearn.io import read_image

    index = scan_image_folder(data)
    classes = list(index.classes)

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        entries = index.select(split)
        X = np.stack([read_image(e.path, mode="RGB").reshape(-1) for e in entries]).astype(np.float32) / 255.0
        y = np.array([classes.index(e.label) for e in entries])
        return X, y

    t0 = time.perf_counter()
    X_tr, y_tr = load("train")
    X_va, y_va = load("val")
    feat_s = time.perf_counter() - t0
    est = build_model(model, seed=seed, workers=workers)
    t0 = time.perf_counter()
    est.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    m = classification_metrics(y_va, est.predict(X_va), classes=classes)
    return {"features": "raw pixels (peer)", "model": model, "val_accuracy": round(m["accuracy"], 4),
            "val_macro_f1": round(m["macro_f1"], 4), "cv_accuracy": "-", "feature_s": round(feat_s, 2),
            "fit_s": round(fit_s, 2), "cv_s": "-", "dims": int(X_tr.shape[1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "datasets" / "cifar10"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peer", action="store_true", help="skip the raw-pixel peer rows")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "classic_cifar10.json"))
    args = parser.parse_args(argv)

    from pixlearn.classic import train_classic

    data = Path(args.data)
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        print(f"error: {data} has no train/ and val/ folders; pass the CIFAR-10 root as the first argument",
              file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for features, model in CONFIGS:
            print(f"training {features} + {model} ...", file=sys.stderr, flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                res = train_classic(data, features=features, model=model, img_size=args.img_size,
                                    folds=args.folds, seed=args.seed, workers=args.workers,
                                    out=Path(tmp) / f"{features}-{model}")
            m, t = res.metrics, res.manifest["timings"]
            cv = m["cv"]
            rows.append({
                "features": features,
                "model": model,
                "val_accuracy": round(m["accuracy"], 4),
                "val_macro_f1": round(m["macro_f1"], 4),
                "cv_accuracy": f"{cv['accuracy_mean']:.4f}±{cv['accuracy_std']:.4f}" if cv["folds"] else "-",
                "feature_s": round(t["features_seconds"], 2),
                "fit_s": round(t["fit_seconds"], 2),
                "cv_s": round(t["cv_seconds"], 2),
                "dims": int(res.model.estimator.n_features_in_),
                "_n": res.manifest["data"]["images_used"],
                "_skipped": len(res.skipped),
            })
        if not args.no_peer:
            for model in ("svm", "random_forest"):
                print(f"peer: raw pixels + {model} ...", file=sys.stderr, flush=True)
                rows.append(raw_pixel_peer(data, model, seed=args.seed, workers=args.workers))

    for r in rows:
        peer = next((p for p in rows if p["features"] == "raw pixels (peer)" and p["model"] == r["model"]), None)
        r["acc_vs_raw"] = round(r["val_accuracy"] / peer["val_accuracy"], 3) if peer else "-"
    table = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    print_table(table)
    print("chance = 0.10; val = 1000 images never used for fitting or CV; acc_vs_raw = val accuracy / raw-pixel peer's")

    from pixlearn import __version__

    result = {
        "benchmark": "classic_cifar10",
        "data": str(data.resolve()),
        "split": {"fit": "train", "score": "val"},
        "img_size": args.img_size,
        "folds": args.folds,
        "seed": args.seed,
        "workers": args.workers,
        "pixlearn": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
