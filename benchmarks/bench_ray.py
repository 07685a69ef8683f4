"""`--engine ray` against the local path: a classification run over 5,000 images, 1 vs 2 Ray workers, CPU.

Usage: python benchmarks/bench_ray.py RUN DIR [--workers 1,2] [--batch 64] [--repeat 1] [--limit N] [--smoke]
                                      [--json benchmarks/results/ray.json]

RUN is a classification run folder (e.g. the CIFAR-10 run of ``bench_int8.py``); DIR a folder of images
(``../shared/datasets/cifar10/train`` holds exactly 5,000). The files are listed once (``pixlearn.io.expand_sources``,
the listing ``pixlearn predict`` uses) and every side gets the same list in the same order:

* **peer / local**: ``pixlearn.tasks.classify.predict.predict_files(RUN, files, batch_size=--batch, workers=0)`` --
  what ``pixlearn predict RUN DIR`` runs -- with ``torch.set_num_threads(1)``: one worker, one thread;
* **pixlearn / Ray**: ``pixlearn.scale.ray_predict(RUN, files, workers=W, batch_size=--batch)`` for each W of
  ``--workers`` (default 1 and 2), inside one local cluster, ``pixlearn.scale.ray_cluster(workers=max(W))``.
  Starting that cluster is timed on its own (``cluster_start_s``) and is not part of any job's time; each job's time
  includes what Ray does per job (reading, scheduling, starting the actors, each loading the model once).

A one-image Ray job runs first, untimed in the comparison: its time (``ray_one_image_job_s``) is the fixed cost of a job
(planning, starting the actor, loading the model), which the 5,000-image jobs pay too.

Reported: seconds and images/s of every job, the scaling (job time at 1 worker / at 2 workers; target >= 1.6x),
Ray's overhead at 1 worker against the local path (Ray job time / local time - 1), and whether the rows are
identical to the local rows: the same paths in the same order, the same labels and top-k labels, scores within
1e-5, the same errors. With ``--repeat`` > 1 every job runs that many times (local and Ray jobs alternating) and
the medians count. Load averages before and after are recorded (the machine may be shared: a 2-core machine shared
with other work cannot show 2-worker scaling).

``--smoke``: the first 64 files, one repeat: seconds (plus Ray's start); the numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SCORE_TOL = 1e-5


def compare_rows(local: list[dict[str, Any]], ray: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether Ray's rows are the local rows: paths in order, labels, top-k labels, scores within 1e-5, errors."""
    out: dict[str, Any] = {"rows_local": len(local), "rows_ray": len(ray)}
    same_paths = [str(a.get("path")) for a in local] == [str(b.get("path")) for b in ray]
    by_path = {str(b.get("path")): b for b in ray}
    label_diff = score_bad = err_diff = topk_diff = missing = 0
    max_score_diff = 0.0
    for a in local:
        b = by_path.get(str(a.get("path")))
        if b is None:
            missing += 1
            continue
        if a.get("label") != b.get("label"):
            label_diff += 1
        if bool(a.get("error")) != bool(b.get("error")):
            err_diff += 1
        if [t["label"] for t in a.get("top_k") or []] != [t["label"] for t in b.get("top_k") or []]:
            topk_diff += 1
        if a.get("score") is not None and b.get("score") is not None:
            d = abs(float(a["score"]) - float(b["score"]))
            max_score_diff = max(max_score_diff, d)
            score_bad += d > SCORE_TOL
        elif (a.get("score") is None) != (b.get("score") is None):
            score_bad += 1
    out.update({"same_paths_in_order": same_paths, "missing_in_ray": missing, "label_differences": label_diff,
                "top_k_differences": topk_diff, "error_differences": err_diff, "scores_beyond_1e-5": score_bad,
                "max_score_diff": max_score_diff})
    out["identical"] = (len(local) == len(ray) and same_paths and not (missing or label_diff or topk_diff or err_diff or score_bad))
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a classification run folder")
    ap.add_argument("dir", type=Path, nargs="?", default=SHARED / "datasets" / "cifar10" / "train", help="the images")
    ap.add_argument("--workers", default="1,2", help="Ray worker counts, comma-separated")
    ap.add_argument("--batch", type=int, default=64, help="images per model call on both sides")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every job (alternating); medians count")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files")
    ap.add_argument("--address", default=None, help="a Ray cluster to use instead of a local one (ray://...)")
    ap.add_argument("--smoke", action="store_true", help="64 files, one repeat")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ray.json")
    args = ap.parse_args(argv)
    workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    if not workers or min(workers) < 1:
        raise SystemExit(f"--workers {args.workers!r}: give positive worker counts, e.g. 1,2")
    if args.smoke:
        args.limit, args.repeat = 64, 1

    import torch

    from pixlearn.io import expand_sources
    from pixlearn.tasks.classify.predict import predict_files

    try:
        from pixlearn.scale import ray_cluster, ray_predict
    except ImportError as exc:
        raise SystemExit(f"pixlearn.scale has no ray_predict / ray_cluster yet ({exc}); this benchmark needs --engine ray's API") from None
    import ray

    files = [str(p) for p, _ in expand_sources(args.dir)]
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise SystemExit(f"{args.dir}: no images")
    print(f"  {len(files)} images from {args.dir}", file=sys.stderr)
    torch.set_num_threads(1)
    load0 = os.getloadavg()

    def local_job() -> list[dict[str, Any]]:
        return predict_files(args.run, files, batch_size=args.batch, workers=0, progress=False)

    times: dict[str, list[float]] = {"local": [], **{f"ray_{w}": [] for w in workers}}
    rows: dict[str, list[dict[str, Any]]] = {}
    t_local, rows["local"] = timed(local_job)
    times["local"].append(t_local)
    print(f"  local, 1 worker, 1 thread: {t_local:.1f} s", file=sys.stderr)
    cluster = ray_cluster(address=args.address, workers=max(workers))
    t_cluster_start, _ = timed(cluster.__enter__)
    print(f"  Ray cluster start: {t_cluster_start:.1f} s", file=sys.stderr)
    resources: dict[str, Any] = {}
    try:
        resources = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "memory", "object_store_memory")}
        t_fixed, _ = timed(lambda: ray_predict(args.run, files[:1], workers=1, address=args.address, batch_size=args.batch))
        print(f"  Ray, a one-image job (the fixed cost of a job): {t_fixed:.1f} s", file=sys.stderr)
        for k in range(args.repeat):
            order = workers if k % 2 == 0 else workers[::-1]
            for w in order:
                t, out = timed(lambda w=w: ray_predict(args.run, files, workers=w, address=args.address, batch_size=args.batch))
                times[f"ray_{w}"].append(t)
                rows.setdefault(f"ray_{w}", out)
                print(f"  Ray, {w} worker(s): {t:.1f} s", file=sys.stderr)
            if k + 1 < args.repeat:
                t_local, _ = timed(local_job)
                times["local"].append(t_local)
    finally:
        t0 = time.perf_counter()
        cluster.__exit__(None, None, None)
        t_cluster_stop = time.perf_counter() - t0
    load1 = os.getloadavg()

    med = {k: statistics.median(v) for k, v in times.items() if v}
    n = len(files)
    agreement = {k: compare_rows(rows["local"], rows[k]) for k in rows if k != "local"}
    summary: dict[str, Any] = {"images": n, "local_s": round(med["local"], 2), "local_images_per_s": round(n / med["local"], 1),
                               "cluster_start_s": round(t_cluster_start, 2), "ray_one_image_job_s": round(t_fixed, 2)}
    for w in workers:
        summary[f"ray_{w}_s"] = round(med[f"ray_{w}"], 2)
        summary[f"ray_{w}_images_per_s"] = round(n / med[f"ray_{w}"], 1)
    if 1 in workers:
        summary["ray_overhead_at_1_worker"] = round(med["ray_1"] / med["local"] - 1, 3)
    if 1 in workers and 2 in workers:
        scaling = med["ray_1"] / med["ray_2"]
        summary.update({"scaling_1_to_2": round(scaling, 3), "scaling_target": 1.6, "meets_scaling_target": scaling >= 1.6})
    summary["rows_identical"] = all(a["identical"] for a in agreement.values())
    table = [{"job": "local (predict_files, 1 thread)", "s": f"{med['local']:.1f}", "img/s": f"{n / med['local']:.1f}",
              "vs local": "1.00", "rows": "-"}]
    for w in workers:
        t = med[f"ray_{w}"]
        table.append({"job": f"ray_predict workers={w}", "s": f"{t:.1f}", "img/s": f"{n / t:.1f}", "vs local": f"{med['local'] / t:.2f}",
                      "rows": "identical" if agreement[f"ray_{w}"]["identical"] else "DIFFER"})
    print_table(table)
    print(json.dumps(summary, indent=1))
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "ray": ray.__version__, "cpus": os.cpu_count(),
                    "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "run": str(args.run), "images": {"folder": str(args.dir), "count": n},
        "cluster": {"address": args.address or "local", "start_s": round(t_cluster_start, 2), "stop_s": round(t_cluster_stop, 2),
                    "resources": resources},
        "local_threads": 1,
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "agreement_with_local": agreement, "summary": summary, "smoke": bool(args.smoke),
        "ratios": "scaling = Ray job time at 1 worker / at 2 workers; overhead = Ray job time at 1 worker / local time - 1",
    }
    return write_results(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
