"""Classification with a time budget and nothing else: pixlearn's defaults vs a linear probe and HOG + SVM on CIFAR-10, CPU.

Usage: python benchmarks/bench_classify_defaults.py [DATA] [--minutes 10] [--weights DIR] [--limit N] [--json PATH]

DATA defaults to ../shared/datasets/cifar10 next to the repository (train/<class>/*.jpg: 5,000 images,
val/<class>/*.jpg: 1,000, 32x32). The weights folder (default ../shared/weights) holds ImageNet
``tf_efficientnet_lite0.in1k.safetensors``; it is where a user would keep it (``PIXLEARN_WEIGHTS``).
All three contestants run in the same process run, one after the other, and are scored on DATA/val:

* (a) pixlearn, exactly as a user types it, through the CLI in a subprocess::

      PIXLEARN_WEIGHTS=<weights> pixlearn train classify --data DATA --minutes 10

  The run picks its backbone (the local EfficientNet-Lite0), its fine-tuning recipe and its image size
  (the budget plan) by itself. It trains on train/ minus a 10 % hold-out; DATA/val picks the best epoch.
  The number reported is ``metrics.json["val"]["accuracy"]``: DATA/val (1,000 images), never train.
  The hold-out's accuracy (train/'s 10 %, never used for fitting or choosing) is reported next to it.
* (b) the linear-probe peer: the same ImageNet weights, frozen, at the image size the run chose;
  global-average-pooled features of the same training images (the run's split, no augmentation),
  scikit-learn ``LogisticRegression`` (lbfgs, C=1, standardised features), scored on DATA/val.
* (c) the classical peer: ``pixlearn train classic`` (HOG + SVM at 64 px), fitted on train/, scored on val/.

Load averages at the start and the end are recorded: the machine may be shared. With ``--limit N`` the
script uses the first N/10 images per class of train/ and of val/ (a smoke test, e.g. ``--minutes 0.2
--limit 200``). Target: (a) >= 0.85 on DATA/val and ahead of (b).
Results go to benchmarks/results/classify_defaults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = "tf_efficientnet_lite0"


def limited_view(data: Path, root: Path, limit: int) -> Path:
    """train/ and val/ with the first ``limit // classes`` images of each class (copies: the loader refuses links leaving the folder)."""
    view = root / "data"
    for split in ("train", "val"):
        classes = sorted(p for p in (data / split).iterdir() if p.is_dir())
        per = max(limit // max(len(classes), 1), 2)
        for c in classes:
            dst = view / split / c.name
            dst.mkdir(parents=True)
            for f in sorted(c.iterdir())[:per]:
                shutil.copyfile(f, dst / f.name)
    return view


def pixlearn_cli(data: Path, out: Path, *, minutes: float, weights: Path) -> dict:
    env = dict(os.environ, PIXLEARN_WEIGHTS=str(weights.resolve()))
    cmd = [sys.executable, "-m", "pixlearn.cli", "train", "classify", "--data", str(data), "--minutes", f"{minutes:g}", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    start_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("model:", "plan:", "fine-tune recipe:"))]
    for ln in start_lines:
        print(f"  {ln}", file=sys.stderr)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"pixlearn train classify failed with exit code {proc.returncode}")
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    val = metrics["val"]
    return {
        "command": "pixlearn " + " ".join(cmd[3:]), "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
        "val_n": val["n"], "val_split": "DATA/val", "holdout_accuracy": metrics["accuracy"], "holdout_split": metrics["split"],
        "holdout_n": metrics["n"], "model": manifest.get("auto_model", {}).get("model") or manifest.get("model", {}).get("name"),
        "start_lines": start_lines, "plan": manifest.get("plan"), "fine_tune": manifest.get("fine_tune"),
        "img_size": (manifest.get("fine_tune") or {}).get("img_size") or (manifest.get("plan") or {}).get("choice", {}).get("img_size"),
        "stop_reason": manifest.get("stop_reason"), "epochs_completed": manifest.get("epochs_completed"),
        "best_epoch": manifest.get("best_epoch"), "timings": manifest.get("timings"), "wall_s": wall,
    }


def _features(model, index, indices, *, img_size: int, batch: int = 100):
    import numpy as np
    import torch

    from pixlearn.data.loader import ImageDataset, make_loader

    pre = model.pixlearn_spec.preprocess
    ds = ImageDataset(index.subset(indices=list(indices)), img_size=(img_size, img_size), mean=pre.mean, std=pre.std)
    feats, labels = [], []
    with torch.no_grad():
        for b in make_loader(ds, batch_size=batch, shuffle=False, workers=0, seed=0):
            f = model.forward_head(model.forward_features(b.images), pre_logits=True)
            feats.append(f.numpy())
            labels.append(b.targets.numpy())
    return np.concatenate(feats), np.concatenate(labels)


def linear_probe(data: Path, weights: Path, *, img_size: int, seed: int) -> dict:
    """Frozen ImageNet features + logistic regression, on the run's training images, scored on DATA/val."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pixlearn.models import create_model
    from pixlearn.tasks.classify.data import plan_splits, read_classify_dataset
    from pixlearn.tasks.classify.metrics import classification_metrics

    index = read_classify_dataset(data)
    splits = plan_splits(index, val_fraction=0.1, test_fraction=0.1, seed=seed)  # the CLI run's split: the same training images
    model = create_model(MODEL, num_classes=len(index.classes), weights=str(weights / f"{MODEL}.in1k.safetensors"), img_size=img_size)
    model.eval()
    t0 = time.perf_counter()
    x_tr, y_tr = _features(model, index, splits.train, img_size=img_size)
    x_va, y_va = _features(model, index, splits.val, img_size=img_size)
    feat_s = time.perf_counter() - t0
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    t0 = time.perf_counter()
    clf.fit(x_tr, y_tr)
    fit_s = time.perf_counter() - t0
    m = classification_metrics(y_va, clf.predict(x_va), classes=index.classes)
    return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_n": m["n"], "n_train": len(splits.train),
            "img_size": img_size, "feature_s": feat_s, "fit_s": fit_s, "threads": torch.get_num_threads()}


def hog_svm(data: Path, out: Path, *, seed: int) -> dict:
    from pixlearn.classic.training import train_classic

    t0 = time.perf_counter()
    res = train_classic(data, features="hog", model="svm", img_size=64, folds=0, seed=seed, out=out, progress=False)
    m = res.metrics
    return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_n": m["n"], "split": m["split"],
            "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "datasets" / "cifar10"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--weights", default=str(SHARED / "weights"), help="folder holding tf_efficientnet_lite0.in1k.safetensors")
    parser.add_argument("--limit", type=int, default=0, help="smoke test: about this many images of train/ and of val/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "classify_defaults.json"))
    parser.add_argument("--keep", default=None, help="copy pixlearn's run folder here (the export benchmarks' RUN)")
    args = parser.parse_args(argv)

    data, weights = Path(args.data), Path(args.weights)
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        print(f"error: {data} has no train/ and val/ folders; pass the CIFAR-10 root as the first argument", file=sys.stderr)
        return 2
    if not (weights / f"{MODEL}.in1k.safetensors").is_file():
        print(f"error: {weights} holds no {MODEL}.in1k.safetensors; pass --weights DIR", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        view = limited_view(data, Path(tmp), args.limit) if args.limit else data.resolve()
        print(f"(a) pixlearn train classify --data {data} --minutes {args.minutes:g} (load average {load0[0]:.2f}) ...", file=sys.stderr, flush=True)
        ours = pixlearn_cli(view, Path(tmp) / "run", minutes=args.minutes, weights=weights)
        if args.keep:
            shutil.copytree(Path(tmp) / "run", args.keep, dirs_exist_ok=True)
        size = int(ours["img_size"] or 224)
        print(f"(b) linear probe on frozen {MODEL} features at {size} px (load average {os.getloadavg()[0]:.2f}) ...", file=sys.stderr, flush=True)
        probe = linear_probe(view, weights, img_size=size, seed=args.seed)
        print(f"(c) HOG + SVM (load average {os.getloadavg()[0]:.2f}) ...", file=sys.stderr, flush=True)
        classic = hog_svm(view, Path(tmp) / "classic", seed=args.seed)
    load1 = os.getloadavg()
    rows = [
        {"method": f"pixlearn --minutes {args.minutes:g} ({ours['model']}, img {ours['img_size']})", "val_accuracy": round(ours["val_accuracy"], 4),
         "val_macro_f1": round(ours["val_macro_f1"], 4), "val_n": ours["val_n"], "wall_s": round(ours["wall_s"], 1),
         "note": f"holdout {ours['holdout_accuracy']:.4f} (n={ours['holdout_n']}); stop {ours['stop_reason']}"},
        {"method": f"peer: linear probe ({MODEL} frozen, img {size})", "val_accuracy": round(probe["val_accuracy"], 4),
         "val_macro_f1": round(probe["val_macro_f1"], 4), "val_n": probe["val_n"], "wall_s": round(probe["feature_s"] + probe["fit_s"], 1),
         "note": f"LogisticRegression on {probe['n_train']} images"},
        {"method": "peer: HOG + SVM (train classic)", "val_accuracy": round(classic["val_accuracy"], 4),
         "val_macro_f1": round(classic["val_macro_f1"], 4), "val_n": classic["val_n"], "wall_s": round(classic["wall_s"], 1),
         "note": f"scored on {classic['split']}"},
    ]
    print_table(rows)
    ok = ours["val_accuracy"] >= 0.85 and ours["val_accuracy"] > probe["val_accuracy"]
    print(f"target: >= 0.85 on DATA/val and ahead of the probe: {'met' if ok else 'NOT met'} "
          f"({ours['val_accuracy']:.4f} vs probe {probe['val_accuracy']:.4f}, HOG+SVM {classic['val_accuracy']:.4f}); "
          f"load average {load0[0]:.2f} -> {load1[0]:.2f}")
    if args.json:
        from pixlearn import __version__

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "benchmark": "classify_defaults_cifar10", "pixlearn": __version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "cpus": os.cpu_count(), "args": vars(args), "pixlearn_cli": ours, "linear_probe": probe,
            "hog_svm": classic, "target_met": ok, "load_average": {"start": list(load0), "end": list(load1)},
        }, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
