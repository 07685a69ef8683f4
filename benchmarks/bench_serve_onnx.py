"""An exported classifier served over OIP v2 (`pixlearn serve --model EXPORT`) against in-process onnxruntime, 8 clients.

Usage: python benchmarks/bench_serve_onnx.py EXPORT [--clients 8] [--requests 200] [--batch 1] [--warmup 10]
           [--images ../shared/datasets/cifar10/val] [--smoke] [--json benchmarks/results/serve_onnx.json]

EXPORT is what ``pixlearn export RUN --format onnx`` wrote (``RUN/export/onnx``: ``model.onnx`` + ``model.json``), e.g.
the export ``bench_int8.py`` leaves in the CIFAR-10 run.

* **pixlearn / service**: one real ``pixlearn serve --model EXPORT`` process on loopback (a free port, a temporary
  ``--storage``), at its DEFAULT worker settings (``--workers``, ``--concurrency``, ``--queue`` as a user gets them;
  the start-up line that states them is recorded), ready once ``GET /v2/health/ready`` answers 200 and the model's
  ``/v2/models/NAME/ready`` says ready (NAME from ``GET /v1/models``: the record whose backend is onnxruntime).
  ``--clients`` threads, each with its own keep-alive ``httpx.Client``, send ``--requests`` requests each,
  back to back: ``POST /v2/models/NAME/infer`` with the graph's own input ``images`` UINT8 ``[batch, H, W, 3]`` as
  binary tensor data (``Inference-Header-Content-Length``, as ``tritonclient.http`` sends it) and the
  ``probabilities`` output asked for in JSON;
* **peer / in-process**: as many threads calling ``pixlearn.export.runtime.load_onnx_model(EXPORT).probabilities``
  (one shared model, onnxruntime's session at pixlearn's default thread settings) on the same pixel batches,
  ``--requests`` calls each.

The pixels: the first images of ``--images`` (class folders or flat; default CIFAR-10 val), resized to the export's
input size with the runtime's own ``resize_image`` (random pixels when the folder is missing; the results say which).
Reported for both: throughput (requests/s and images/s over the wall time of the whole drive), p50/p95/p99/max
latency, errors (any non-200 answer or exception), and the ratio service / in-process throughput, side by side. The
service's probabilities are checked against the in-process ones first (largest |difference|), so both do the same
work. Each side gets ``--warmup`` untimed requests per client first. Load averages before and after are recorded
(the server shares the cores with whatever else runs).

``--smoke``: 2 clients x 5 requests: seconds; the numbers mean nothing.
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
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table, write_results  # noqa: E402
from bench_serve import Load, free_port, percentiles, server_banner, start_server, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def pixel_batches(folder: Path, height: int, width: int, *, count: int, batch: int) -> tuple[list[np.ndarray], str]:
    """``count`` uint8 (batch, H, W, 3) batches of real images from ``folder`` (random pixels without it)."""
    from pixlearn.export.runtime import resize_image

    need = count * batch
    if folder.is_dir():
        from pixlearn.io import read_image

        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            step = max(1, len(files) // need)
            chosen = [files[(i * step) % len(files)] for i in range(need)]
            pixels = np.stack([resize_image(read_image(p, mode="RGB"), (height, width)) for p in chosen])
            return [pixels[i * batch:(i + 1) * batch] for i in range(count)], f"{len(chosen)} images of {folder}, resized to {height}x{width}"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (need, height, width, 3), dtype=np.uint8)
    return [pixels[i * batch:(i + 1) * batch] for i in range(count)], f"random uint8 pixels ({folder} not found)"


def infer_body(pixels: np.ndarray) -> tuple[bytes, int]:
    """An OIP v2 infer request with ``images`` as binary tensor data, and its JSON header's length."""
    raw = np.ascontiguousarray(pixels).tobytes()
    head = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(pixels.shape),
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}]}).encode()
    return head + raw, len(head)


def drive(call: Callable[[np.ndarray, dict[str, Any]], tuple[str, str | None]], batches: list[np.ndarray], *,
          clients: int, requests: int, warmup: int) -> dict[str, Any]:
    """``clients`` threads, each ``warmup`` untimed then ``requests`` timed calls back to back."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    statuses: list[Counter] = [Counter() for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    go = threading.Barrier(clients + 1)

    def worker(i: int) -> None:
        state: dict[str, Any] = {}
        for k in range(warmup):
            call(batches[(i + k) % len(batches)], state)
        ready.wait()
        go.wait()
        for k in range(requests):
            t0 = time.perf_counter()
            try:
                status, problem = call(batches[(i * requests + k) % len(batches)], state)
            except Exception as exc:  # counted, never hidden
                status, problem = type(exc).__name__, f"{type(exc).__name__}: {exc}"
            latencies[i].append(time.perf_counter() - t0)
            statuses[i][str(status)] += 1
            if problem:
                errors[i].append(problem)
        if "close" in state:
            state["close"]()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    t_start = time.perf_counter()
    go.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    lat = np.array([v for per in latencies for v in per]) * 1e3
    errs = [e for per in errors for e in per]
    n_img = int(lat.size) * len(batches[0])
    return {"requests": int(lat.size), "errors": len(errs), "first_error": errs[0] if errs else None,
            "statuses": dict(sum(statuses, Counter())), "seconds": round(wall, 3),
            "throughput_rps": round(lat.size / wall, 2), "images_per_s": round(n_img / wall, 2),
            **percentiles(lat), "mean_ms": round(float(lat.mean()), 2) if lat.size else None}


def service_call(base: str, name: str) -> Callable[[np.ndarray, dict[str, Any]], tuple[str, str | None]]:
    import httpx

    url = f"{base}/v2/models/{name}/infer"

    def call(pixels: np.ndarray, state: dict[str, Any]) -> tuple[str, str | None]:
        client = state.get("client")
        if client is None:
            client = state["client"] = httpx.Client(timeout=300)
            state["close"] = client.close
        body, head = infer_body(pixels)
        r = client.post(url, content=body, headers={"Inference-Header-Content-Length": str(head),
                                                     "Content-Type": "application/octet-stream"})
        if r.status_code != 200:
            return str(r.status_code), f"HTTP {r.status_code}: {r.text[:200]}"
        out = r.json()["outputs"][0]
        if out["name"] != "probabilities" or out["shape"][0] != len(pixels):
            return str(r.status_code), f"unexpected answer: {out['name']} {out['shape']}"
        return "200", None

    return call


def onnx_model_name(base: str) -> tuple[str, dict[str, Any]]:
    import httpx

    models = httpx.get(f"{base}/v1/models", timeout=30).json()["models"]
    onnx = [m for m in models if m.get("backend") == "onnxruntime"]
    if len(onnx) != 1:
        raise SystemExit(f"expected one onnxruntime model on the server, found {[(m['name'], m.get('backend')) for m in models]}")
    return str(onnx[0]["name"]), onnx[0]


def wait_model(base: str, name: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{base}/v2/models/{name}/ready", timeout=10)
        if r.status_code == 200 and r.json().get("ready"):
            return
        time.sleep(0.3)
    raise SystemExit(f"model {name} never became ready on the server")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path, help="an export folder (model.onnx + model.json) of a classifier")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="timed requests per client")
    ap.add_argument("--warmup", type=int, default=10, help="untimed requests per client first")
    ap.add_argument("--batch", type=int, default=1, help="images per request")
    ap.add_argument("--images", type=Path, default=SHARED / "datasets" / "cifar10" / "val")
    ap.add_argument("--smoke", action="store_true", help="2 clients x 5 requests: seconds, meaningless numbers")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "serve_onnx.json")
    args = ap.parse_args(argv)
    if args.smoke:
        args.clients, args.requests, args.warmup = 2, 5, 1

    import httpx
    import onnxruntime as ort

    from pixlearn.export.runtime import load_onnx_model

    local = load_onnx_model(args.export)
    if local.task != "classify":
        raise SystemExit(f"{args.export}: an exported {local.task} model; the service serves exported classifiers over OIP")
    batches, pixels_from = pixel_batches(args.images, local.height, local.width, count=64, batch=args.batch)
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="pixlearn-bench-serve-onnx-"))
    try:
        (tmp / "storage").mkdir()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(tmp / "storage", port, ["--model", str(args.export.resolve())])
        try:
            t0 = time.perf_counter()
            wait_ready(proc, base)
            name, record = onnx_model_name(base)
            wait_model(base, name)
            startup_s = time.perf_counter() - t0
            banner = server_banner(tmp / "storage")
            body, head = infer_body(batches[0])
            r = httpx.post(f"{base}/v2/models/{name}/infer", content=body, headers={"Inference-Header-Content-Length": str(head)},
                           timeout=60)
            r.raise_for_status()
            served = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(len(batches[0]), -1)
            max_diff = float(np.abs(served - local.probabilities(batches[0])).max())
            with Load(proc.pid) as service_load:
                service = drive(service_call(base, name), batches, clients=args.clients, requests=args.requests, warmup=args.warmup)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

        def in_process(pixels: np.ndarray, state: dict[str, Any]) -> tuple[str, str | None]:
            local.probabilities(pixels)
            return "ok", None

        with Load() as local_load:
            inproc = drive(in_process, batches, clients=args.clients, requests=args.requests, warmup=args.warmup)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    ratio = service["throughput_rps"] / inproc["throughput_rps"] if inproc["throughput_rps"] else float("nan")
    rows = [{"case": f"service: pixlearn serve, OIP v2 infer, {args.clients} HTTP clients", **service, **service_load.row()},
            {"case": f"in-process: load_onnx_model().probabilities, {args.clients} threads", **inproc, **local_load.row()}]
    print_table([{"case": r["case"].split(":")[0], "req/s": r["throughput_rps"], "img/s": r["images_per_s"], "p50_ms": r["p50_ms"],
                  "p99_ms": r["p99_ms"], "errors": r["errors"], "cpu_others": r["cpu_others"]} for r in rows])
    print(f"service / in-process throughput: {ratio:.3f}; p99 {service['p99_ms']} ms vs {inproc['p99_ms']} ms")
    results = {
        "benchmark": "POST /v2/models/NAME/infer (images UINT8, binary tensor data) vs OnnxClassifier.probabilities in-process",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "onnxruntime": ort.__version__,
                    "cpus": os.cpu_count(), "note": "CPU only; other work may have run on the machine at the same time"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "export": str(args.export), "input": [local.height, local.width, 3], "pixels": pixels_from,
        "server": {"startup_line": banner, "args": "defaults (--workers, --concurrency, --queue not given)",
                   "model_name": name, "record": {k: record.get(k) for k in ("backend", "task", "input_shape", "classes")},
                   "startup_seconds": round(startup_s, 2)},
        "in_process_threads": local.threads, "served_vs_in_process_max_abs_diff": max_diff,
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "rows": rows,
        "summary": {"throughput_ratio_service_over_in_process": round(ratio, 3), "service_p50_ms": service["p50_ms"],
                    "service_p99_ms": service["p99_ms"], "in_process_p50_ms": inproc["p50_ms"], "in_process_p99_ms": inproc["p99_ms"],
                    "errors": service["errors"] + inproc["errors"]},
        "smoke": bool(args.smoke),
    }
    return write_results(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
