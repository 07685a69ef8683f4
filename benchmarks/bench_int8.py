"""INT8 vs fp32 through onnxruntime on a fine-tuned CIFAR-10 EfficientNet-Lite0: top-1 on all of val/, speed, size.

Usage: python benchmarks/bench_int8.py RUN --val ../shared/datasets/cifar10/val --calibration ../shared/datasets/cifar10/train
           [--calibration-images 100] [--max-drop 100] [--threads 2] [--repeat 30] [--repeat-large 8] [--out DIR]
           [--smoke] [--json benchmarks/results/int8.json]

RUN is a classification run, e.g. ``pixlearn train classify --data ../shared/datasets/cifar10 --minutes 10`` (the
default recipe fine-tunes EfficientNet-Lite0 when its weights are local). The script takes the path of
``pixlearn export RUN --int8 --calibration DIR [--max-drop X]`` by calling the functions that command calls:

1. ``pixlearn.export.onnx.export_run(RUN, out=OUT)`` (OUT default ``RUN/export/onnx``, where the command writes);
2. ``pixlearn.export.int8.quantize_run_export(RUN, OUT, CALIB)`` with the default ``max_drop`` (1 point): the
   results record whether the command would refuse (``Int8AccuracyError``, nothing written) and its report;
3. when it refused, again with ``--max-drop`` (default 100) so ``model.int8.onnx`` and the card's ``int8`` block are
   written and the drop is recorded as it is. The card's ``int8`` block (the command's own report: its accuracy on
   the run's held-out split, at most 200 images, its batch-1 speed ratio and size ratio) goes into the results.

CALIB: the command takes a folder and uses its first ``--calibration-images`` files in sorted order; CIFAR-10's
``train/`` is sorted by class, so the script links an equal share of each class folder's first files (``--calibration-
images`` in all, default 100 = 10 per class) into a temporary folder and passes that. The results list the count.

Then, beyond the command's own check, on ALL images of ``--val`` (CIFAR-10 val: 1000, 100 per class; labels from
the class folders, which must be the run's class names): fp32 ``model.onnx`` and INT8 ``model.int8.onnx`` through
``pixlearn.export.runtime.load_onnx_model`` (the runtime ``pixlearn predict EXPORT`` uses; ``--threads``
intra-op threads on both), top-1 of each, the drop in points, and the top-1 agreement of the two. Latency at
batch 1 and batch 32 (real val images at the model's input size), interleaved calls after a warm-up, medians, ratio
fp32 / INT8 (>= 1: INT8 faster). Size ratio: fp32 bytes / INT8 bytes. Load averages before and after are recorded.

``--smoke``: the first 20 val images, a few repeats: seconds; the numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_times, print_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "datasets" / "cifar10"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def labelled_images(folder: Path, limit: int | None = None) -> list[tuple[Path, str]]:
    """``(path, class folder name)`` for every image in ``folder/<class>/``, sorted."""
    out = [(p, d.name) for d in sorted(folder.iterdir()) if d.is_dir()
           for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return out[:limit] if limit else out


def balanced_calibration(folder: Path, count: int, dest: Path) -> tuple[Path, dict[str, int]]:
    """A folder of links to ``count`` images of ``folder``: an equal share of each class folder's first files
    (``folder`` itself when it has no class folders)."""
    classes = [d for d in sorted(folder.iterdir()) if d.is_dir()]
    if not classes:
        return folder, {"(flat folder)": count}
    per = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for d in classes}
    share, extra = divmod(count, len(classes))
    used: dict[str, int] = {}
    dest.mkdir(parents=True, exist_ok=True)
    for i, (name, files) in enumerate(per.items()):
        take = files[: share + (1 if i < extra else 0)]
        for p in take:
            (dest / f"{name}_{p.name}").symlink_to(p.resolve())
        used[name] = len(take)
    return dest, used


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a classification run folder (pixlearn train classify)")
    ap.add_argument("--val", type=Path, default=CIFAR / "val", help="labelled images in class folders: every one is scored")
    ap.add_argument("--calibration", type=Path, default=CIFAR / "train", help="calibration images (class folders or flat)")
    ap.add_argument("--calibration-images", type=int, default=100, help="calibration images in all (1..500)")
    ap.add_argument("--max-drop", type=float, default=100.0, help="the drop accepted on the second pass, so the report is written")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads of both models")
    ap.add_argument("--repeat", type=int, default=30, help="timed calls per model at batch 1 (interleaved)")
    ap.add_argument("--repeat-large", type=int, default=8, help="timed calls per model at batch 32")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="the export folder (default RUN/export/onnx, as pixlearn export)")
    ap.add_argument("--smoke", action="store_true", help="20 val images, few repeats: seconds, meaningless numbers")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "int8.json")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat, args.repeat_large, args.warmup = 2, 1, 1
    for name in ("val", "calibration"):
        if not getattr(args, name).is_dir():
            raise SystemExit(f"--{name} {getattr(args, name)}: no such folder")

    import onnxruntime as ort

    from pixlearn.export.int8 import INT8_FILE, Int8AccuracyError, quantize_run_export
    from pixlearn.export.onnx import export_run
    from pixlearn.export.runtime import load_onnx_model
    from pixlearn.io import read_image

    log = lambda msg: print(f"  {msg}", file=sys.stderr)  # noqa: E731
    load0 = os.getloadavg()
    out = args.out or args.run / "export" / "onnx"
    t0 = time.perf_counter()
    exported = export_run(args.run, format="onnx", out=out, log=log)
    export_s = time.perf_counter() - t0
    card = exported.card
    if card["task"] != "classify":
        raise SystemExit(f"{args.run}: a {card['task']} run; this benchmark scores classifiers (top-1)")

    command: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pixlearn-bench-int8-") as tmp:
        calib, per_class = balanced_calibration(args.calibration, args.calibration_images, Path(tmp) / "calibration")
        command["calibration"] = {"from": str(args.calibration), "images": sum(per_class.values()), "per_class": per_class,
                                  "which": "the first files (sorted) of each class folder"}
        t1 = time.perf_counter()
        try:
            report = quantize_run_export(args.run, exported.folder, calib, calibration_count=args.calibration_images)
            command["default_max_drop"] = {"max_drop": 1.0, "refused": False, "report": report.to_dict()}
        except Int8AccuracyError as exc:
            command["default_max_drop"] = {"max_drop": 1.0, "refused": True, "message": str(exc), "report": exc.report.to_dict()}
            log(f"with the default --max-drop 1 the command refuses: {exc}")
            report = quantize_run_export(args.run, exported.folder, calib, calibration_count=args.calibration_images,
                                         max_drop=args.max_drop)
            command["given_max_drop"] = {"max_drop": args.max_drop, "refused": False, "report": report.to_dict()}
        command["quantize_seconds"] = round(time.perf_counter() - t1, 1)
    log(f"int8 (the command's report): {report.summary()}")
    card_int8 = json.loads((exported.folder / "model.json").read_text(encoding="utf-8"))["int8"]

    fp32 = load_onnx_model(exported.folder, threads=args.threads, batch=32)
    int8 = load_onnx_model(exported.folder / INT8_FILE, threads=args.threads, batch=32)
    classes = fp32.classes
    files = labelled_images(args.val, 20 if args.smoke else None)
    unknown = sorted({c for _, c in files} - set(classes))
    if unknown:
        raise SystemExit(f"--val {args.val}: class folders {unknown} are not the run's classes {classes}")
    labels = np.array([classes.index(c) for _, c in files])
    batch_all = fp32.to_batch([read_image(p, mode="RGB") for p, _ in files])  # the runtime's resize, once for both
    p32 = fp32.probabilities(batch_all)
    p8 = int8.probabilities(batch_all)
    top1_fp32 = float((p32.argmax(1) == labels).mean())
    top1_int8 = float((p8.argmax(1) == labels).mean())
    agree = float((p32.argmax(1) == p8.argmax(1)).mean())
    log(f"val: {len(files)} images, top-1 fp32 {top1_fp32:.4f}, int8 {top1_int8:.4f}, agreement {agree:.4f}")

    latency = []
    for b, reps in ((1, args.repeat), (32, args.repeat_large)):
        idx = np.arange(b) % len(batch_all)
        batch = np.ascontiguousarray(batch_all[idx])
        t32, t8 = interleaved_times(lambda batch=batch: fp32.probabilities(batch), lambda batch=batch: int8.probabilities(batch),
                              repeat=reps, warmup=args.warmup)
        m32, m8 = statistics.median(t32), statistics.median(t8)
        latency.append({"batch": b, "repeats": reps, "fp32_median_ms": round(m32 * 1e3, 3), "int8_median_ms": round(m8 * 1e3, 3),
                        "fp32_ms": [round(t * 1e3, 3) for t in t32], "int8_ms": [round(t * 1e3, 3) for t in t8],
                        "speedup_fp32_over_int8": round(m32 / m8, 3)})
    size32 = (exported.folder / "model.onnx").stat().st_size
    size8 = (exported.folder / INT8_FILE).stat().st_size
    load1 = os.getloadavg()

    summary = {"val_images": len(files), "top1_fp32": round(top1_fp32, 4), "top1_int8": round(top1_int8, 4),
               "drop_points": round(100 * (top1_fp32 - top1_int8), 2), "top1_agreement": round(agree, 4),
               "speedup_batch1": latency[0]["speedup_fp32_over_int8"], "speedup_batch32": latency[1]["speedup_fp32_over_int8"],
               "size_ratio": round(size32 / size8, 3), "fp32_bytes": size32, "int8_bytes": size8,
               "default_max_drop_refused": command["default_max_drop"]["refused"],
               "line": (f"top-1 {top1_fp32:.3f} -> {top1_int8:.3f} on {len(files)} val images, "
                        f"{latency[0]['speedup_fp32_over_int8']:.2f}x (batch 1) / {latency[1]['speedup_fp32_over_int8']:.2f}x "
                        f"(batch 32) faster, {size32 / size8:.2f}x smaller")}
    print_table([{"model": "fp32", "top1": f"{top1_fp32:.4f}", "batch1_ms": f"{latency[0]['fp32_median_ms']:.2f}",
                  "batch32_ms": f"{latency[1]['fp32_median_ms']:.1f}", "MB": f"{size32 / 1e6:.2f}"},
                 {"model": "int8", "top1": f"{top1_int8:.4f}", "batch1_ms": f"{latency[0]['int8_median_ms']:.2f}",
                  "batch32_ms": f"{latency[1]['int8_median_ms']:.1f}", "MB": f"{size8 / 1e6:.2f}"},
                 {"model": "ratio", "top1": f"{summary['drop_points']:+.2f} pt drop", "batch1_ms": f"{summary['speedup_batch1']:.2f}x",
                  "batch32_ms": f"{summary['speedup_batch32']:.2f}x", "MB": f"{summary['size_ratio']:.2f}x"}])
    print(summary["line"])
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "onnxruntime": ort.__version__,
                    "cpus": os.cpu_count(), "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "run": str(args.run), "export": {"folder": str(exported.folder), "seconds": round(export_s, 1),
                                         "input": card["input"], "parity": card.get("parity")},
        "threads": {"onnxruntime_intra_op": fp32.threads, "onnxruntime_inter_op": 1},
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "command": command, "card_int8": card_int8,
        "val": {"folder": str(args.val), "images": len(files), "labels": "class folder names"},
        "latency": latency, "summary": summary, "smoke": bool(args.smoke),
        "ratio": "speedup = fp32 median / INT8 median (>= 1: INT8 faster); size_ratio = fp32 bytes / INT8 bytes",
    }
    return write_results(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
