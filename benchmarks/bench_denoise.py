"""Grey denoising at sigma 25: pixlearn's DnCNN trained on this CPU against classical denoisers on Set12.

Usage: python benchmarks/bench_denoise.py [--minutes 25] [--depth 15] [--width 32] [--threads 1] [--json PATH]

* Training: ``pixlearn.tasks.restore.train.train_restorer`` on ``denoise/train400`` (the 400 BSD images DnCNN
  is trained on), random 40 px patches, gaussian noise sigma 25 added to each patch (unclipped, as in
  the paper), for a bounded wall time (``minutes``: the cosine learning-rate schedule follows the
  clock and training stops after the last epoch that fits). 5% of train400 is held out to choose the
  best epoch; Set12 is never seen before scoring.
* Test: the 12 Set12 images, whole, each with its own fixed noise seed. The paper's protocol: the
  noisy image is ``clean + N(0, 25/255)`` in floats, unclipped; outputs are rounded to uint8 and
  compared with the uint8 clean image. The classical methods need uint8 input, so they get the noisy
  image clipped and rounded; the model is scored on both inputs.
* Peers, measured in the same run on the same noisy images: OpenCV non-local means (the named peer,
  ``cv2.fastNlMeansDenoising``, h = 0.9 sigma), bilateral, TV (scikit-image) and wavelet
  (BayesShrink), with parameter rules tuned on six train400 images (pixlearn.tasks.restore.metrics),
  and the noisy input itself. Published: BM3D 29.97 dB, DnCNN-S 30.44 dB (Zhang et al. 2017, Table 2).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

PUBLISHED = {"BM3D (published)": 29.97, "DnCNN-S (published, GPU, 17 layers x 64)": 30.44}
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "denoise"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="Folder holding train400/ and set12/.")
    ap.add_argument("--minutes", type=float, default=25.0, help="Training wall time (the run stops by then).")
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--depth", type=int, default=15)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--patch", type=int, default=40)
    ap.add_argument("--patches-per-image", type=int, default=8, help="Per image per epoch (an epoch of train400 is then ~3,000 patches).")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 was fastest on the shared 2-core machine).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", type=Path, default=None, help="Keep the run folder here (default: a temporary folder).")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "denoise.json")
    args = ap.parse_args(argv)

    import torch

    from pixlearn.tasks.restore.metrics import classical_restore, psnr, ssim
    from pixlearn.io import read_image
    from pixlearn.tasks.restore.predict import load_restorer
    from pixlearn.tasks.restore.train import train_restorer

    torch.set_num_threads(args.threads)
    train_dir, test_dir = args.data / "train400", args.data / "set12"
    n_train = len(list(train_dir.glob("*.png")))
    if n_train == 0 or not list(test_dir.glob("*.png")):
        print(f"no images in {train_dir} or {test_dir}; pass --data", file=sys.stderr)
        return 2

    # ------------------------------------------------------------ train for a bounded wall time
    val_fraction = 0.05
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-denoise-")) / "run"
    t0 = time.perf_counter()
    result = train_restorer(
        train_dir, task="denoise", model="dncnn", sigma=args.sigma, depth=args.depth, width=args.width, patch=args.patch,
        patches_per_image=args.patches_per_image, batch=args.batch, lr=args.lr, epochs=10_000, minutes=args.minutes,
        clip=False, mode="L", val_fraction=val_fraction, val_crop=64, eval_methods=[], seed=args.seed, out=run_dir, progress=False,
    )
    train_wall = time.perf_counter() - t0
    restorer = load_restorer(result.run_dir)

    # ------------------------------------------------------------ test on Set12
    rows_per_image = []
    totals: dict[str, list[float]] = {}
    secs: dict[str, float] = {}

    def add(method: str, out: np.ndarray, clean: np.ndarray, seconds: float) -> None:
        out8 = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
        p, s = psnr(out8, clean), ssim(out8, clean)
        totals.setdefault(method, []).append(p)
        totals.setdefault(method + "#ssim", []).append(s)
        secs[method] = secs.get(method, 0.0) + seconds
        rows_per_image[-1][method] = round(p, 3)

    names = sorted(p.name for p in test_dir.glob("*.png"))
    for k, name in enumerate(names):
        clean = read_image(test_dir / name, mode="L")
        x = clean.astype(np.float32) / 255.0
        noisy = x + np.random.default_rng(1000 + k).standard_normal(x.shape).astype(np.float32) * np.float32(args.sigma / 255.0)
        noisy8 = np.clip(np.rint(noisy * 255.0), 0, 255).astype(np.uint8)
        rows_per_image.append({"image": name})
        add("noisy input", noisy, clean, 0.0)
        t = time.perf_counter()
        out = restorer.restore_float(noisy[..., None])[..., 0]
        add("pixlearn DnCNN", out, clean, time.perf_counter() - t)
        t = time.perf_counter()
        out = restorer.restore_float((noisy8.astype(np.float32) / 255.0)[..., None])[..., 0]
        add("pixlearn DnCNN (uint8 input)", out, clean, time.perf_counter() - t)
        for method in ("nl_means", "bilateral", "tv", "wavelet"):
            t = time.perf_counter()
            out = classical_restore(method, (noisy8.astype(np.float32) / 255.0)[..., None], sigma=args.sigma)[..., 0]
            add(method, out, clean, time.perf_counter() - t)

    peer = float(np.mean(totals["nl_means"]))
    table = []
    for method in [m for m in totals if not m.endswith("#ssim")]:
        p = float(np.mean(totals[method]))
        table.append({"method": method, "psnr_db": round(p, 2), "ssim": round(float(np.mean(totals[method + "#ssim"])), 4),
                      "vs_nl_means_db": round(p - peer, 2), "seconds_12_images": round(secs[method], 2)})
    for name, p in PUBLISHED.items():
        table.append({"method": name, "psnr_db": p, "ssim": "", "vs_nl_means_db": round(p - peer, 2), "seconds_12_images": ""})
    table.sort(key=lambda r: -float(r["psnr_db"]))
    print_table(table)
    model = next(r for r in table if r["method"] == "pixlearn DnCNN")
    beats = model["psnr_db"] > peer
    print(f"\npixlearn DnCNN ({args.depth} layers x {args.width}, {result.epochs_run} epochs, {train_wall / 60:.1f} min on "
          f"{args.threads} CPU thread(s)): {model['psnr_db']:.2f} dB vs OpenCV non-local means {peer:.2f} dB -> "
          f"{'beats' if beats else 'does NOT beat'} it by {model['psnr_db'] - peer:+.2f} dB")
    history = result.history
    out = {
        "benchmark": "grey denoising, sigma 25, Set12 (12 whole images)",
        "protocol": "noisy = clean + N(0, sigma/255) in floats, unclipped, one fixed seed per image (1000 + k); outputs rounded "
                    "to uint8 and compared with the uint8 clean image; classical methods get the noisy image clipped and rounded "
                    "to uint8 (they need uint8); the model is scored on both inputs",
        "training": {
            "data": "denoise/train400 (95% train, 5% val to choose the epoch)", "model": f"dncnn depth {args.depth} width {args.width} (BN, residual)",
            "patch": args.patch, "patches_per_image": args.patches_per_image, "batch": args.batch, "lr": args.lr, "loss": "l2",
            "patches_per_second": round(float(np.mean([r["train_patches_per_second"] for r in history if r.get("train_patches_per_second")])), 1),
            "patches_per_epoch": round(n_train * (1 - val_fraction)) * args.patches_per_image, "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch, "wall_minutes_limit": args.minutes, "train_wall_minutes": round(train_wall / 60, 2),
            "fit_minutes": round((result.metrics or {}).get("fit_seconds", 0.0) / 60, 2),
            "val_crops_psnr_per_epoch": [r.get("val_psnr") for r in history],
            "threads": args.threads, "device": "cpu",
        },
        "results": table,
        "per_image_psnr": rows_per_image,
        "peer": "OpenCV non-local means (cv2.fastNlMeansDenoising, h = 0.9 sigma, 7 px patches, 21 px search)",
        "beats_nl_means": bool(beats),
        "published": {"source": "Zhang et al. 2017 (DnCNN), Table 2, Set12 sigma 25", **PUBLISHED},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "note": "2 CPU cores shared with other jobs while it ran"},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
