"""x2 super-resolution: pixlearn's small EDSR trained on this CPU against bicubic upscaling on Set5 (luma PSNR).

Usage: python benchmarks/bench_sr.py [--minutes 12] [--model edsr] [--width 32] [--blocks 6] [--threads 1] [--json PATH]

* Training: ``pixlearn.tasks.restore.train.train_restorer(task="super-resolution", scale=2)`` on the 400 grey
  BSD images of ``denoise/train400`` (local, no downloads; grey images stand for luma), 48 px clean
  patches downscaled x2 by antialiased bicubic (Pillow, like MATLAB's imresize), for a bounded wall
  time (the learning-rate schedule follows the clock); 5% of the images choose the best epoch.
* Test: the 5 Set5 images, whole, never seen in training. The usual protocol: the HR image is cropped
  to a multiple of 2, its BT.601 luma Y is rounded to 8 bits, downscaled x2 (antialiased bicubic,
  floats), upscaled back by each method, rounded to 8 bits, and compared with the HR luma, leaving
  out a 2-pixel border.
* Peers measured in the same run: bicubic upscaling (Pillow; the named peer), OpenCV's INTER_CUBIC.
  Published x2 Set5 luma PSNR: bicubic 33.66 dB, SRCNN 36.66 dB (Dong et al. 2016).
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

PUBLISHED = {"bicubic (published)": 33.66, "SRCNN (published)": 36.66}
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "denoise"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="Folder holding train400/ and set5/.")
    ap.add_argument("--minutes", type=float, default=12.0, help="Training wall time.")
    ap.add_argument("--model", default="edsr", choices=["edsr", "espcn"])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=6, help="edsr residual blocks.")
    ap.add_argument("--patch", type=int, default=48, help="HR patch side (the LR patch is half).")
    ap.add_argument("--patches-per-image", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "sr.json")
    args = ap.parse_args(argv)

    import cv2
    import torch
    from PIL import Image

    from pixlearn.tasks.restore.metrics import psnr, rgb_to_y, ssim
    from pixlearn.io import read_image
    from pixlearn.tasks.restore.predict import load_restorer
    from pixlearn.tasks.restore.train import train_restorer

    torch.set_num_threads(args.threads)
    train_dir, test_dir = args.data / "train400", args.data / "set5"
    tests = sorted(p for p in test_dir.iterdir() if p.suffix.lower() in (".png", ".bmp"))
    if not tests or not list(train_dir.glob("*.png")):
        print(f"no images in {train_dir} or {test_dir}; pass --data", file=sys.stderr)
        return 2

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-sr-")) / "run"
    size = {"width": args.width, **({"blocks": args.blocks} if args.model == "edsr" else {})}
    t0 = time.perf_counter()
    result = train_restorer(
        train_dir, task="super-resolution", model=args.model, scale=2, patch=args.patch, patches_per_image=args.patches_per_image,
        batch=args.batch, lr=args.lr, epochs=10_000, minutes=args.minutes, mode="L", val_fraction=0.05, val_crop=96,
        eval_methods=[], seed=args.seed, out=run_dir, progress=False, **size,
    )
    train_wall = time.perf_counter() - t0
    restorer = load_restorer(result.run_dir)

    def resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
        return np.asarray(Image.fromarray(a.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))

    scores: dict[str, list[tuple[float, float]]] = {}
    secs: dict[str, float] = {}
    per_image = []
    for path in tests:
        rgb = read_image(path)
        h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
        y8 = np.clip(np.rint(rgb_to_y(rgb[:h, :w])), 0, 255).astype(np.uint8)
        lr = resize(y8.astype(np.float32) / 255.0, w // 2, h // 2)
        row = {"image": path.name, "size": f"{w}x{h}"}
        outs = {}
        t = time.perf_counter()
        outs["bicubic (Pillow)"] = (resize(lr, w, h), time.perf_counter() - t)
        t = time.perf_counter()
        outs["bicubic (OpenCV INTER_CUBIC)"] = (cv2.resize(lr, (w, h), interpolation=cv2.INTER_CUBIC), time.perf_counter() - t)
        t = time.perf_counter()
        outs[f"pixlearn {args.model}"] = (restorer.restore_float(lr[..., None])[..., 0], time.perf_counter() - t)
        for name, (out, s) in outs.items():
            o8 = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
            p, q = psnr(o8, y8, crop_border=2), ssim(o8, y8, crop_border=2)
            scores.setdefault(name, []).append((p, q))
            secs[name] = secs.get(name, 0.0) + s
            row[name] = round(p, 3)
        per_image.append(row)

    peer = float(np.mean([p for p, _ in scores["bicubic (Pillow)"]]))
    table = [{"method": m, "psnr_y_db": round(float(np.mean([p for p, _ in v])), 2), "ssim_y": round(float(np.mean([q for _, q in v])), 4),
              "vs_bicubic_db": round(float(np.mean([p for p, _ in v])) - peer, 2), "seconds_5_images": round(secs[m], 2)}
             for m, v in scores.items()]
    table += [{"method": m, "psnr_y_db": p, "ssim_y": "", "vs_bicubic_db": round(p - peer, 2), "seconds_5_images": ""} for m, p in PUBLISHED.items()]
    table.sort(key=lambda r: -float(r["psnr_y_db"]))
    print_table(table)
    ours = next(r for r in table if r["method"] == f"pixlearn {args.model}")
    print(f"\npixlearn {args.model} x2 ({size}, {result.epochs_run} epochs, {train_wall / 60:.1f} min on {args.threads} CPU thread(s)): "
          f"{ours['psnr_y_db']:.2f} dB vs bicubic {peer:.2f} dB ({ours['psnr_y_db'] - peer:+.2f} dB)")
    hist = result.history
    out = {
        "benchmark": "x2 super-resolution, Set5 (5 whole images), PSNR / SSIM on the luma (Y) channel, 2-px border cropped",
        "protocol": "HR cropped to a multiple of 2; BT.601 luma rounded to 8 bits; x2 antialiased bicubic downscale (Pillow, float); "
                    "each method upscales; output rounded to 8 bits",
        "training": {
            "data": "denoise/train400 grey images (95% train, 5% val to choose the epoch); no downloads",
            "model": f"{args.model} {size}, x2, bicubic skip", "patch_hr": args.patch, "patches_per_image": args.patches_per_image,
            "batch": args.batch, "lr": args.lr, "loss": "l1", "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "patches_per_second": round(float(np.mean([r["train_patches_per_second"] for r in hist if r.get("train_patches_per_second")])), 1),
            "wall_minutes_limit": args.minutes, "train_wall_minutes": round(train_wall / 60, 2),
            "val_crops_psnr_per_epoch": [r.get("val_psnr") for r in hist], "threads": args.threads, "device": "cpu",
        },
        "results": table,
        "per_image_psnr_y": per_image,
        "peer": "bicubic upscaling (Pillow, the same kernel family as MATLAB imresize)",
        "beats_bicubic": bool(ours["psnr_y_db"] > peer),
        "published": {"source": "Set5 x2 luma PSNR as tabulated by Dong et al. 2016 (SRCNN)", **PUBLISHED},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "note": "2 CPU cores shared with other jobs while it ran"},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
