"""`POST /v1/analyze?features=colors,quality` over HTTP against the same functions called in-process.

Usage: python benchmarks/bench_serve.py [--seconds 30] [--clients 8] [--warmup 3] [--core-threads N]

Both sides work on the same 8 real-photo JPEGs (640x480 crops of scikit-image's sample photos,
quality 90), cycled:
  * service: a real `pixlearn serve` process on loopback (its own storage folder, no model, the
    concurrency limit raised to the client count so no request is refused); `--clients` threads, each
    with its own keep-alive httpx client, upload the JPEG as multipart field `file` back to back for
    `--seconds`;
  * in-process: `--clients` threads call what the route calls -- pixlearn.io.read_image on the JPEG
    bytes, then pixlearn.ops dominant_colors(k=5) and quality -- back to back for `--seconds`.
A request counts when it started before the deadline. Latency percentiles are per request (p50, p99);
throughput is completed requests / wall seconds; an error is any non-200 answer or exception (must be
0). Ratio = service throughput / in-process throughput (how much of the in-process rate the HTTP
service keeps). As a reference the in-process side also runs with one thread per core
(`--core-threads`, default the CPU count; 0 skips it): more threads than cores can be slower in-process,
where nothing limits how many images are worked on at once. The machine's load is recorded per phase
because both sides share its cores with whatever else runs: the busy share of all cores (/proc/stat),
the share this benchmark used (its own process plus the server's), the rest (other work), and the
1-min load average (which counts this benchmark's own runnable threads too).
Results go to benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "serve.json"
N_COLORS = 5


def make_images(folder: Path, n: int = 8) -> list[bytes]:
    from bench_io import large_jpegs

    return [p.read_bytes() for p in large_jpegs(folder, n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all cores since boot."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def proc_jiffies(pid: int | str) -> float:
    """CPU time (user + system, all threads) a process has used, in the jiffies of /proc/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return float(fields[11]) + float(fields[12])  # utime, stime


class Load:
    """Machine load over a phase: the share of all cores that was busy, the share this benchmark used
    (its own process and the server's), so the rest is other work on the machine, and the 1-min load
    average at the end (it counts this benchmark's runnable threads too)."""

    def __init__(self, *pids: int) -> None:
        self.pids = ("self", *pids)

    def __enter__(self) -> Load:
        self.start = cpu_busy()
        self.own_start = sum(proc_jiffies(p) for p in self.pids)
        return self

    def __exit__(self, *exc: Any) -> None:
        busy, total = cpu_busy()
        own = sum(proc_jiffies(p) for p in self.pids) - self.own_start
        span = max(total - self.start[1], 1e-9)
        self.busy_fraction = round((busy - self.start[0]) / span, 3)
        self.own_fraction = round(own / span, 3)
        self.others_fraction = round(max(self.busy_fraction - self.own_fraction, 0.0), 3)
        self.loadavg_1m = round(os.getloadavg()[0], 2)

    def row(self) -> dict[str, Any]:
        return {"cpu_busy": self.busy_fraction, "cpu_ours": self.own_fraction, "cpu_others": self.others_fraction,
                "loadavg_1m": self.loadavg_1m}


def drive(call, images: list[bytes], *, clients: int, seconds: float) -> dict[str, Any]:
    """Run ``call(image_bytes, worker_state)`` from ``clients`` threads for ``seconds``; latencies and errors."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(i: int) -> None:
        state: dict[str, Any] = {}
        k = i
        start.wait()
        while time.perf_counter() < deadline[0]:
            data = images[k % len(images)]
            k += clients
            t0 = time.perf_counter()
            try:
                problem = call(data, state)
            except Exception as exc:  # counted, never hidden
                problem = f"{type(exc).__name__}: {exc}"
            latencies[i].append(time.perf_counter() - t0)
            if problem:
                errors[i].append(problem)
        if "close" in state:
            state["close"]()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    deadline[0] = t_start + seconds
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    lat = np.array([v for per in latencies for v in per]) * 1e3
    errs = [e for per in errors for e in per]
    return {
        "requests": int(lat.size),
        "errors": len(errs),
        "first_error": errs[0] if errs else None,
        "seconds": round(wall, 2),
        "throughput_rps": round(lat.size / wall, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "mean_ms": round(float(lat.mean()), 2) if lat.size else None,
    }


def in_process_call(data: bytes, state: dict[str, Any]) -> str | None:
    from pixlearn.io import read_image
    from pixlearn.ops.color import dominant_colors, quality

    image = read_image(data)
    dominant_colors(image, k=N_COLORS)
    quality(image)
    return None


def service_call(base: str):
    import httpx

    url = f"{base}/v1/analyze"

    def call(data: bytes, state: dict[str, Any]) -> str | None:
        client = state.get("client")
        if client is None:
            client = state["client"] = httpx.Client(timeout=60)
            state["close"] = client.close
        r = client.post(url, params={"features": "colors,quality", "n_colors": N_COLORS},
                        files={"file": ("photo.jpg", data, "image/jpeg")})
        if r.status_code != 200:
            return f"HTTP {r.status_code}: {r.text[:200]}"
        body = r.json()
        if "colors" not in body or "quality" not in body:
            return f"incomplete answer: {sorted(body)}"
        return None

    return call


def start_server(storage: Path, port: int, clients: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("pixlearn")
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--storage", str(storage),
           "--concurrency", str(max(clients, 4)), "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if k not in ("PIXLEARN_API_KEYS", "PIXLEARN_API_KEY")}
    with open(storage / "serve.log", "wb") as err:  # a file, not a pipe: the server can never block on it
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=storage)


def wait_ready(proc: subprocess.Popen, base: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = Path(proc.args[proc.args.index("--storage") + 1]) / "serve.log"
            raise SystemExit(f"pixlearn serve exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("pixlearn serve did not become ready")


def same_answer(base: str, data: bytes) -> bool:
    """The service's colours and quality equal the in-process call's (same functions, same image)."""
    import httpx

    from pixlearn.io import read_image
    from pixlearn.ops.color import dominant_colors, quality

    r = httpx.post(f"{base}/v1/analyze", params={"features": "colors,quality", "n_colors": N_COLORS},
                   files={"file": ("photo.jpg", data, "image/jpeg")}, timeout=60).json()
    image = read_image(data)
    return r["colors"] == dominant_colors(image, k=N_COLORS) and r["quality"] == quality(image)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--core-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pixlearn-bench-serve-"))
    try:
        (tmp / "in").mkdir()
        images = make_images(tmp / "in")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        (tmp / "storage").mkdir()
        proc = start_server(tmp / "storage", port, args.clients)
        try:
            wait_ready(proc, base)
            agree = same_answer(base, images[0])
            call = service_call(base)
            drive(call, images, clients=args.clients, seconds=args.warmup)
            with Load(proc.pid) as service_load:
                service = drive(call, images, clients=args.clients, seconds=args.seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        drive(in_process_call, images, clients=args.clients, seconds=args.warmup)
        with Load() as local_load:
            local = drive(in_process_call, images, clients=args.clients, seconds=args.seconds)
        per_core = None
        if args.core_threads and args.core_threads != args.clients:
            with Load() as core_load:
                per_core = drive(in_process_call, images, clients=args.core_threads, seconds=args.seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        {"case": f"service: pixlearn serve, {args.clients} HTTP clients", **service, **service_load.row()},
        {"case": f"in-process: {args.clients} threads", **local, **local_load.row()},
    ]
    if per_core is not None:
        rows.append({"case": f"in-process: {args.core_threads} threads (reference)", **per_core, **core_load.row()})
    ratio = round(service["throughput_rps"] / local["throughput_rps"], 3) if local["throughput_rps"] else float("nan")
    result = {
        "benchmark": "POST /v1/analyze?features=colors,quality vs read_image + dominant_colors + quality in-process",
        "image": "640x480 JPEG photos (8, cycled), multipart upload",
        "clients": args.clients,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "same_answer_as_in_process": agree,
        "rows": rows,
        "ratio_service_vs_in_process_throughput": ratio,
    }
    if per_core is not None:
        result[f"ratio_service_vs_in_process_{args.core_threads}_threads"] = round(
            service["throughput_rps"] / per_core["throughput_rps"], 3) if per_core["throughput_rps"] else float("nan")
    print_table([{k: r[k] for k in ("case", "requests", "errors", "throughput_rps", "p50_ms", "p99_ms",
                                    "cpu_busy", "cpu_ours", "cpu_others", "loadavg_1m")} for r in rows])
    print(f"ratio (service / in-process throughput, {args.clients} each): {ratio}   same answer: {agree}   "
          f"cpus: {os.cpu_count()}")
    if per_core is not None:
        key = f"ratio_service_vs_in_process_{args.core_threads}_threads"
        print(f"ratio (service / in-process with {args.core_threads} threads): {result[key]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if service["errors"] or local["errors"] or (per_core or {}).get("errors"):
        raise SystemExit(f"errors: service {service['first_error']!r}, in-process {local['first_error']!r}")


if __name__ == "__main__":
    main()
