"""What `pixlearn train segment --data DIR --minutes N` gives a user on ISBI 2012, with and without a pretrained encoder.

Usage: python benchmarks/bench_segment_defaults.py [--minutes 10] [--data ../shared/datasets/isbi2012]
                                                   [--weights ../shared/weights] [--variants pretrained,random]
                                                   [--json benchmarks/results/segment_defaults.json]

ISBI 2012: the 24 labelled 512x512 slices (label 255 = cell interior, 0 = membrane) are split once,
as benchmarks/bench_segment.py does (a seeded permutation of their numeric order, seed 0), into 18
train and 6 held-out slices. The 18 train slices are copied into a folder of their own (ISBI layout
``train/image`` + ``train/label``), which is all the trainings see: each is the command a user types,

* ``pretrained``: ``pixlearn train segment --data <18 slices> --minutes N`` with ``PIXLEARN_WEIGHTS``
  pointing at the shared weights folder, so the defaults pick the ImageNet EfficientNet-Lite0 encoder
  and the fine-tuning recipe, and plan crops and batches for the budget;
* ``random``: the same encoder from random weights (``--backbone tu-tf_efficientnet_lite0
  --no-pretrained``): the gain of the pretrained start at an equal budget;
* ``fallback`` (not run by default): ``PIXLEARN_WEIGHTS`` pointing at an empty folder, i.e. what a
  user without local weights gets (today's default encoder, from random weights);

and each run keeps its own validation images out of those 18 (its default 20 %). The trained runs are
then scored on the 6 held-out slices (mean IoU over both classes from one confusion matrix over all
their pixels; Dice, pixel accuracy and foreground IoU too), beside pixlearn's classical segmenters
(Otsu, adaptive threshold, k-means, watershed) fitted on the same 18 slices and scored on the same 6.

Results go to ``--json`` with the machine's load averages before and after each training (the
machine may be shared: compare methods measured in the same run).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402
from bench_segment import KEYS, isbi_index, run_classic  # noqa: E402  (the same split and the same classical peers)

ROOT = Path(__file__).resolve().parents[1]
ENCODER = "tu-tf_efficientnet_lite0"
VARIANTS = {
    "pretrained": {"weights": True, "args": []},
    "random": {"weights": True, "args": ["--backbone", ENCODER, "--no-pretrained"]},
    "fallback": {"weights": False, "args": []},
}


def copy_train_folder(index: Any, heldout: set[str], dest: Path) -> Path:
    """``dest/train/image`` + ``dest/train/label``: copies of the training slices only (a dataset's files stay inside it)."""
    for sub in ("image", "label"):
        (dest / "train" / sub).mkdir(parents=True, exist_ok=True)
    for r in index.records:
        if Path(r.path).name in heldout:
            continue
        shutil.copyfile(r.path, dest / "train" / "image" / Path(r.path).name)
        shutil.copyfile(r.mask_path, dest / "train" / "label" / Path(r.mask_path).name)
    return dest


def train_cli(data: Path, out: Path, *, minutes: float, weights: Path | None, args: list[str], threads: int | None) -> dict[str, Any]:
    """Run ``pixlearn train segment`` as a user types it; return its metrics, stderr lines and timings."""
    env = dict(os.environ)
    env["PIXLEARN_WEIGHTS"] = str(weights) if weights is not None else str(out.parent / "no_weights")
    if weights is None:  # nor in pixlearn's cache folder: a machine without local weights
        env["PIXLEARN_CACHE"] = str(out.parent / "no_cache")
    (out.parent / "no_weights").mkdir(parents=True, exist_ok=True)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "pixlearn.cli", "train", "segment", "--data", str(data), "--minutes", f"{minutes:g}", *args,
           "-o", str(out), "--no-progress", "--format", "json"]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"command": " ".join(["pixlearn", *cmd[3:]]), "metrics": json.loads(proc.stdout), "stderr": proc.stderr.strip().splitlines(),
            "wall_seconds": round(wall, 1), "load_average_before": [round(v, 2) for v in load0],
            "load_average_after": [round(v, 2) for v in load1], "plan": manifest.get("plan"), "defaults": manifest.get("defaults"),
            "fine_tune": manifest.get("fine_tune"), "budget": manifest.get("budget")}


def score_heldout(run: Path, index: Any, heldout_idx: list[int]) -> dict[str, Any]:
    """The run's kept weights on the held-out slices (whole images, tiled as the run says)."""
    from pixlearn.tasks.segment.evaluate import evaluate_split
    from pixlearn.tasks.segment.predict import load_segmenter

    ev = evaluate_split(load_segmenter(run), index, heldout_idx, split="heldout", progress=False)
    m = ev.metrics
    return {**{k: m.get(k) for k in KEYS}, "per_class_iou": {c: r["iou"] for c, r in (m.get("per_class") or {}).items()},
            "split": "heldout", "n": m.get("n")}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "isbi2012")
    ap.add_argument("--weights", type=Path, default=ROOT.parent / "shared" / "weights", help="folder for PIXLEARN_WEIGHTS")
    ap.add_argument("--minutes", type=float, default=10.0, help="--minutes of each training")
    ap.add_argument("--variants", default="pretrained,random", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--extra", action="append", default=[], help="one more argument for every training command (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the trainings (default: torch's own)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the 18/6 split")
    ap.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "segment_defaults.json")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")

    import torch

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_segment_defaults_"))
    index, heldout_files = isbi_index(args.data, seed=args.seed, n_val=6)
    heldout = set(heldout_files)
    heldout_idx = [i for i, r in enumerate(index.records) if Path(r.path).name in heldout]
    train_dir = copy_train_folder(index, heldout, out / "isbi2012_train18")
    split = f"ISBI 2012, 6 held-out slices {sorted(heldout_files)} (seeded permutation, seed {args.seed}, as bench_segment.py); trained on the other 18"
    print(f"{split}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "split": split, "heldout_files": sorted(heldout_files), "train_folder": str(train_dir), "runs": {}, "classic": {},
    }

    print("classical segmenters (fitted on the 18, scored on the 6) ...", file=sys.stderr)
    classic = run_classic(index, val_fraction=0.0, seed=args.seed)
    results["classic"] = classic
    best_name = max(classic, key=lambda k: classic[k]["mean_iou"] or 0.0)
    best = classic[best_name]["mean_iou"] or 0.0

    for name in variants:
        spec = VARIANTS[name]
        print(f"{name}: training for {args.minutes:g} min ...", file=sys.stderr)
        run = train_cli(train_dir, out / name, minutes=args.minutes, weights=args.weights if spec["weights"] else None,
                        args=[*spec["args"], *args.extra], threads=args.threads)
        run["heldout"] = score_heldout(out / name, index, heldout_idx)
        run["run_dir"] = str(out / name)
        for line in ((run.get("defaults") or {}).get("why"), (run.get("plan") or {}).get("text"), (run.get("fine_tune") or {}).get("text")):
            if line:  # what the run chose and why (its start-up lines, kept in manifest.json)
                print(f"  {line}", file=sys.stderr)
        print(f"  held-out mean IoU {run['heldout']['mean_iou']:.4f}", file=sys.stderr)
        results["runs"][name] = run

    rows = []
    for name, run in results["runs"].items():
        h, m = run["heldout"], run["metrics"]
        rows.append({"method": f"pixlearn {name}", "encoder": (run.get("defaults") or {}).get("encoder", "-"),
                     "heldout_miou": _fmt(h["mean_iou"]), "dice": _fmt(h["mean_dice"]), "pixel_acc": _fmt(h["pixel_accuracy"]),
                     "fg_iou": _fmt(h["foreground_iou"]), "own_val_miou": _fmt(m.get("mean_iou")), "epochs": m.get("epochs_run"),
                     "fit_s": f"{m.get('fit_seconds', 0):.0f}", "vs_best_classic": f"{(h['mean_iou'] or 0) - best:+.4f}"})
    for name, c in classic.items():
        rows.append({"method": name, "encoder": "-", "heldout_miou": _fmt(c["mean_iou"]), "dice": _fmt(c["mean_dice"]),
                     "pixel_acc": _fmt(c["pixel_accuracy"]), "fg_iou": _fmt(c["foreground_iou"]), "own_val_miou": "-", "epochs": "-",
                     "fit_s": f"{c['fit_seconds']:.1f}", "vs_best_classic": f"{(c['mean_iou'] or 0) - best:+.4f}"})
    summary: dict[str, Any] = {"best_classic": best_name, "best_classic_miou": best, "target_miou": 0.80}
    runs = results["runs"]
    for name in runs:
        summary[f"{name}_miou"] = runs[name]["heldout"]["mean_iou"]
    if "pretrained" in runs and "random" in runs:
        summary["gain_over_random_init"] = runs["pretrained"]["heldout"]["mean_iou"] - runs["random"]["heldout"]["mean_iou"]
    if "pretrained" in runs:
        summary["meets_target"] = (runs["pretrained"]["heldout"]["mean_iou"] or 0.0) >= 0.80
        summary["gain_over_best_classic"] = (runs["pretrained"]["heldout"]["mean_iou"] or 0.0) - best
    results["summary"] = summary
    print_table(rows)
    print(json.dumps(summary, indent=1), file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {args.json}; run folders: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
