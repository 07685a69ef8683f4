"""Grey denoising at sigma 25 with pixlearn's defaults: ``pixlearn train restore --minutes 10`` against non-local means on Set12.

Usage: python benchmarks/bench_denoise_defaults.py [--minutes 10] [--sigma 25] [--seed 0] [--json PATH] [--run-dir DIR]

* Training, exactly as a user types it (a subprocess):
  ``pixlearn train restore --task denoise --data ../shared/datasets/denoise/train400 --minutes 10``
  -- no other option: the run plans its own network and epochs from measured speed and prints the plan
  (taken into the results). It holds out 10 % of train400 to choose its epoch; Set12 is never seen
  before scoring.
* Scoring, with the project's own eval path (a subprocess): ``pixlearn eval RUN --data set12 --sigma 25
  --seed S --method nl_means --method bilateral --method tv --method wavelet --format json``: the 12
  whole Set12 images, each with its fixed noise seed (``sample_seed(S, 0, k)``; noise clipped to [0, 1],
  the run's own degradation), the model tiled as ``pixlearn predict`` applies it.
* Peers on the same noisy images: the eval path's classical methods (pixlearn's non-local means is
  scikit-image's, 5 px patches, 6 px search, the noise variance subtracted, h = 0.6 sigma, a rule tuned
  on train400), and, measured here, OpenCV's ``fastNlMeansDenoising`` at h = 0.9 sigma (the peer of
  bench_denoise.py), scikit-image's non-local means with h swept on the test images themselves (its
  best case), BM3D when the ``bm3d`` package is installed (it is not a pixlearn dependency: its licence
  is not permissive), and the noisy input. The target of the defaults: model >= best non-local means + 1 dB.
* The load averages before, during (at the end of training) and after are recorded: the machine is shared.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "denoise"
CLASSICAL = ("nl_means", "bilateral", "tv", "wavelet")
TARGET_DB = 1.0
PUBLISHED = {"BM3D (published)": 29.97, "DnCNN-S (published, GPU, 17 layers x 64)": 30.44, "FFDNet (published)": 30.43}


def _pixlearn() -> list[str]:
    exe = Path(sys.executable).with_name("pixlearn")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("pixlearn")
    if found:
        return [found]
    return [sys.executable, "-c", "from pixlearn.cli.app import main; main()"]


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on this platform
        return []


def _peers(test_dir: Path, *, sigma: float, seed: int, eval_input: dict[str, float]) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """The extra peers on the noisy images the eval path scored (rebuilt from the same seeds, checked by the input's PSNR)."""
    import cv2
    from skimage.restoration import denoise_nl_means

    from pixlearn.data.augment import sample_seed
    from pixlearn.tasks.restore.data import load_clean, plan_restore_data
    from pixlearn.tasks.restore.degrade import preset, to_float
    from pixlearn.tasks.restore.metrics import psnr, ssim

    plan = plan_restore_data(test_dir, mode="L", val_fraction=0.0, test_fraction=0.0, seed=seed)
    sources = plan.train + plan.val + plan.test
    pipe = preset("denoise", sigma=sigma)
    try:
        import bm3d  # type: ignore[import-not-found]
    except ImportError:
        bm3d = None
    s = sigma / 255.0
    sweep = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
    scores: dict[str, list[tuple[float, float, float]]] = {}
    rows = []
    for k, src in enumerate(sources):
        clean = to_float(load_clean(src.clean, "L"))
        noisy = pipe(clean, seed=sample_seed(seed, 0, k))
        p_in = psnr(np.clip(noisy, 0, 1), clean, data_range=1.0)
        if abs(p_in - eval_input[src.clean.name]) > 1e-6:
            raise SystemExit(f"{src.clean.name}: the rebuilt noisy image ({p_in:.4f} dB) is not the one the eval path scored "
                             f"({eval_input[src.clean.name]:.4f} dB)")
        row = {"image": src.clean.name}

        def add(name: str, out: np.ndarray, secs: float) -> None:
            o = np.clip(out.reshape(clean.shape), 0, 1)
            p, q = psnr(o, clean, data_range=1.0), ssim(o, clean, data_range=1.0)
            scores.setdefault(name, []).append((p, q, secs))
            row[name] = round(p, 3)

        x = noisy[..., 0]
        t = time.perf_counter()
        u8 = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
        add("nl_means (OpenCV, h 0.9 sigma)", cv2.fastNlMeansDenoising(u8, None, h=0.9 * sigma, templateWindowSize=7,
                                                                       searchWindowSize=21).astype(np.float32) / 255.0,
            time.perf_counter() - t)
        for f in sweep:
            t = time.perf_counter()
            add(f"#sweep {f}", denoise_nl_means(x, h=f * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True), time.perf_counter() - t)
        if bm3d is not None:
            t = time.perf_counter()
            add("BM3D (bm3d package)", np.asarray(bm3d.bm3d(x, sigma_psd=s), np.float32), time.perf_counter() - t)
        rows.append(row)
    out: dict[str, dict[str, float]] = {}
    best_f = max(sweep, key=lambda f: np.mean([v[0] for v in scores[f"#sweep {f}"]]))
    for name, vals in scores.items():
        if name.startswith("#sweep") and name != f"#sweep {best_f}":
            continue
        label = f"skimage nl_means (h {best_f:g} sigma, best of a sweep on the test images)" if name.startswith("#sweep") else name
        out[label] = {"psnr": float(np.mean([v[0] for v in vals])), "ssim": float(np.mean([v[1] for v in vals])),
                      "seconds": float(np.sum([v[2] for v in vals])), "n": len(vals)}
    for r in rows:
        r[f"skimage nl_means (h {best_f:g} sigma, sweep)"] = r.pop(f"#sweep {best_f}")
        for f in sweep:
            r.pop(f"#sweep {f}", None)
    return out, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="Folder holding train400/ and set12/.")
    ap.add_argument("--minutes", type=float, default=10.0, help="The budget handed to pixlearn train restore --minutes.")
    ap.add_argument("--sigma", type=float, default=25.0, help="Noise of the Set12 scoring (the run trains at its default, 25).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the Set12 noise (image k: sample_seed(seed, 0, k)).")
    ap.add_argument("--run-dir", type=Path, default=None, help="Keep the run folder here (default: a temporary folder).")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "denoise_defaults.json")
    ap.add_argument("--extra", action="append", default=[], help="one more argument for the training command (repeatable); "
                    "results with extras are not the defaults' and should go to another --json")
    args = ap.parse_args(argv)

    train_dir, test_dir = (args.data / "train400").resolve(), (args.data / "set12").resolve()
    if not list(train_dir.glob("*.png")) or not list(test_dir.glob("*.png")):
        print(f"no images in {train_dir} or {test_dir}; pass --data", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-denoise-defaults-")) / "run"
    cli = _pixlearn()
    load = {"before": _load()}

    # ------------------------------------------------------------ train, as a user types it
    cmd = [*cli, "train", "restore", "--task", "denoise", "--data", str(train_dir), "--minutes", f"{args.minutes:g}", "--out", str(run_dir),
           *args.extra]
    print("$ pixlearn " + " ".join(cmd[len(cli):]), file=sys.stderr)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    train_wall = time.perf_counter() - t0
    load["after_training"] = _load()
    sys.stderr.write(proc.stderr)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        print(f"pixlearn train restore failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    run_metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))

    # ------------------------------------------------------------ score on Set12 with the eval path
    ecmd = [*cli, "eval", str(run_dir), "--data", str(test_dir), "--sigma", f"{args.sigma:g}", "--seed", str(args.seed), "--format", "json",
            "--no-progress", *[a for m in CLASSICAL for a in ("--method", m)]]
    print("$ pixlearn " + " ".join(ecmd[len(cli):]), file=sys.stderr)
    t1 = time.perf_counter()
    ev = subprocess.run(ecmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eval_wall = time.perf_counter() - t1
    if ev.returncode != 0:
        sys.stderr.write(ev.stderr)
        print(f"pixlearn eval failed with exit code {ev.returncode}", file=sys.stderr)
        return ev.returncode
    scored = json.loads(ev.stdout)
    if scored["n"] != 12 or scored["split"] != "all":
        print(f"expected the 12 whole Set12 images, the eval path scored {scored['n']} ({scored['source']})", file=sys.stderr)
        return 1
    methods = {m: dict(v) for m, v in scored["methods"].items()}
    eval_input = {r["image"]: r["psnr"] for r in scored["per_image"] if r["method"] == "input"}

    # ------------------------------------------------------------ peers measured here, on the same noisy images
    extra, extra_rows = _peers(test_dir, sigma=args.sigma, seed=args.seed, eval_input=eval_input)
    load["after"] = _load()
    names = {"model": "pixlearn train restore --minutes (defaults)", "input": "noisy input",
             "nl_means": "nl_means (pixlearn: scikit-image, h 0.6 sigma)"}
    allm = {names.get(k, k): v for k, v in methods.items()}
    allm.update(extra)
    nlm = {k: v["psnr"] for k, v in allm.items() if "nl_means" in k}
    best_nlm_name = max(nlm, key=nlm.__getitem__)
    best_nlm = nlm[best_nlm_name]
    classical = {k: v["psnr"] for k, v in allm.items() if k not in (names["model"], names["input"])}
    best_classical = max(classical, key=classical.__getitem__)
    model = allm[names["model"]]["psnr"]
    table = [{"method": k, "psnr_db": round(v["psnr"], 2), "ssim": round(v["ssim"], 4), "vs_best_nl_means_db": round(v["psnr"] - best_nlm, 2),
              "seconds_12_images": round(v.get("seconds", 0.0), 2)} for k, v in allm.items()]
    for name, p in PUBLISHED.items():
        table.append({"method": name, "psnr_db": p, "ssim": "", "vs_best_nl_means_db": "", "seconds_12_images": ""})
    table.sort(key=lambda r: -float(r["psnr_db"]))
    print_table(table)
    gain = model - best_nlm
    meets = gain >= TARGET_DB
    plan = manifest.get("plan") or {}
    print(f"\npixlearn defaults ({args.minutes:g} min budget; {plan.get('recipe', 'no plan recorded')}): {model:.2f} dB on Set12 vs "
          f"{best_nlm_name} {best_nlm:.2f} dB -> {gain:+.2f} dB ({'meets' if meets else 'does NOT meet'} the +{TARGET_DB:g} dB target); "
          f"best classical: {best_classical} {classical[best_classical]:.2f} dB")
    hist = []
    csv_path = run_dir / "metrics.csv"
    if csv_path.is_file():
        import csv

        hist = [{k: r[k] for k in ("epoch", "val_psnr", "lr", "epoch_seconds", "train_patches_per_second")} for r in csv.DictReader(csv_path.open())]
    import torch

    out = {
        "benchmark": f"grey denoising, sigma {args.sigma:g}, Set12 (12 whole images), pixlearn's budget defaults",
        "command": "pixlearn " + " ".join(cmd[len(cli):-2]),
        "protocol": "noisy = clip(clean + N(0, sigma/255), 0, 1) in floats, image k seeded sample_seed(seed, 0, k) (pixlearn eval --sigma); "
                    "every method gets the same noisy image; PSNR on [0, 1] floats of the whole image, outputs clipped; the model is "
                    "applied tiled by the eval path exactly as pixlearn predict applies it",
        "target": f"model >= best non-local means + {TARGET_DB:g} dB",
        "meets_target": bool(meets),
        "model_psnr_db": round(model, 3),
        "best_nl_means": {"method": best_nlm_name, "psnr_db": round(best_nlm, 3)},
        "gain_over_best_nl_means_db": round(gain, 3),
        "best_classical": {"method": best_classical, "psnr_db": round(classical[best_classical], 3)},
        "results": table,
        "per_image_psnr": {"eval_path": scored["per_image"], "extra_peers": extra_rows},
        "training": {
            "budget_minutes": args.minutes, "train_wall_minutes": round(train_wall / 60, 2), "eval_wall_seconds": round(eval_wall, 1),
            "plan": plan, "model": manifest.get("model"), "budget": manifest.get("budget"), "stop_reason": manifest.get("stop_reason"),
            "epochs": hist, "run_val_split": {k: run_metrics.get(k) for k in ("split", "n", "psnr", "input", "best_classical")},
            "cli_stderr": proc.stderr.strip().splitlines()[-20:],
        },
        "load_average_1_5_15": load,
        "published": {"source": "Zhang et al. 2017 (DnCNN, Table 2) and 2018 (FFDNet), Set12 sigma 25, unclipped noise", **PUBLISHED},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
