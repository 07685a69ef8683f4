"""The service under load: `/v1/analyze` throughput against in-process, health under a CPU burst, memory after extreme options.

Usage: python benchmarks/bench_serve.py [--seconds 120] [--clients 16] [--warmup 3] [--core-threads N]
           [--burst-clients 64] [--burst-seconds 30] [--no-sweep] [--server-arg=--workers=4 ...]

One real `pixlearn serve` process on loopback (its own storage folder, no model) at its DEFAULT settings
(`--workers`, `--concurrency`, `--queue` as a user gets them; `--server-arg` adds flags), then three phases:

1. Throughput. `--clients` threads, each with its own keep-alive httpx client, upload 8 real-photo JPEGs
   (640x480 crops of scikit-image's sample photos, quality 90, cycled) as multipart field `file` to
   `POST /v1/analyze?features=colors,quality` back to back for `--seconds`. The same number of threads
   then call what the route calls in-process (pixlearn.io.read_image, dominant_colors(k=5), quality) for
   as long. A request counts when it started before the deadline. Reported: requests/s, p50/p95/p99
   latency, errors (any non-200 answer or exception; the HTTP statuses are counted) and the ratio service /
   in-process throughput. As a reference the in-process side also runs with one thread per core
   (`--core-threads`, default the CPU count; 0 skips it).
2. Health under a CPU burst. `--burst-clients` threads post a CPU-heavy op (`/v1/ops/nl_means`, h=10, on
   the same photos) back to back for `--burst-seconds` (the answers are 200s, or 429s once the queue is
   full); meanwhile one client asks `GET /v1/health` every 20 ms. Reported: the health latency p50/p99/max
   (target p99 <= 50 ms) and the burst's statuses.
3. Memory after extreme options. The resident memory (RSS) of the server and all its processes (the fork
   server and CPU workers) before and after a few requests with the largest values each option's documented
   range allows (GET /v1/ops gives the ranges), sent one by one, and its peak meanwhile (sampled every 0.1 s).
   Answers must be 200, 400, 413 or 504 (a 504 means the worker was killed at --timeout). `--no-sweep` skips.

The machine's load is recorded beside every figure because the server shares its cores with whatever else
runs: the busy share of all cores (/proc/stat), the share this benchmark used (its own process plus the
server's whole process tree), the rest (other work), and the 1-min load average (which counts this
benchmark's own runnable threads too). Results go to benchmarks/results/serve.json.
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
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "serve.json"
N_COLORS = 5
HEAVY = ("/v1/ops/nl_means", {"h": 10})


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
    """CPU time (user + system, all threads) a process has used, in the jiffies of /proc/stat (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return float(fields[11]) + float(fields[12])  # utime, stime


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the server, its fork server and CPU workers, training workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


class Load:
    """Machine load over a phase: the share of all cores that was busy, the share this benchmark used
    (its own process and the server's whole process tree), so the rest is other work on the machine, and
    the 1-min load average at the end (it counts this benchmark's runnable threads too)."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid

    def _own(self) -> float:
        pids: list[int | str] = ["self", *(process_tree(self.server_pid) if self.server_pid else [])]
        return sum(proc_jiffies(p) for p in pids)

    def __enter__(self) -> Load:
        self.start = cpu_busy()
        self.own_start = self._own()
        return self

    def __exit__(self, *exc: Any) -> None:
        busy, total = cpu_busy()
        own = max(self._own() - self.own_start, 0.0)  # a worker killed meanwhile takes its CPU time with it
        span = max(total - self.start[1], 1e-9)
        self.busy_fraction = round((busy - self.start[0]) / span, 3)
        self.own_fraction = round(min(own / span, self.busy_fraction), 3)
        self.others_fraction = round(max(self.busy_fraction - self.own_fraction, 0.0), 3)
        self.loadavg_1m = round(os.getloadavg()[0], 2)

    def row(self) -> dict[str, Any]:
        return {"cpu_busy": self.busy_fraction, "cpu_ours": self.own_fraction, "cpu_others": self.others_fraction,
                "loadavg_1m": self.loadavg_1m}


def percentiles(ms: np.ndarray) -> dict[str, float | None]:
    if not ms.size:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}


def drive(call, images: list[bytes], *, clients: int, seconds: float) -> dict[str, Any]:
    """Run ``call(image_bytes, worker_state) -> (status, problem)`` from ``clients`` threads for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    statuses: list[Counter] = [Counter() for _ in range(clients)]
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
                status, problem = call(data, state)
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
        "statuses": dict(sum(statuses, Counter())),
        "seconds": round(wall, 2),
        "throughput_rps": round(lat.size / wall, 2),
        **percentiles(lat),
        "mean_ms": round(float(lat.mean()), 2) if lat.size else None,
    }


def in_process_call(data: bytes, state: dict[str, Any]) -> tuple[str, str | None]:
    from pixlearn.io import read_image
    from pixlearn.ops.color import dominant_colors, quality

    image = read_image(data)
    dominant_colors(image, k=N_COLORS)
    quality(image)
    return "ok", None


def _client(state: dict[str, Any]):
    import httpx

    client = state.get("client")
    if client is None:
        client = state["client"] = httpx.Client(timeout=300)
        state["close"] = client.close
    return client


def service_call(base: str):
    url = f"{base}/v1/analyze"

    def call(data: bytes, state: dict[str, Any]) -> tuple[int, str | None]:
        r = _client(state).post(url, params={"features": "colors,quality", "n_colors": N_COLORS},
                                files={"file": ("photo.jpg", data, "image/jpeg")})
        if r.status_code != 200:
            return r.status_code, f"HTTP {r.status_code}: {r.text[:200]}"
        body = r.json()
        if "colors" not in body or "quality" not in body:
            return r.status_code, f"incomplete answer: {sorted(body)}"
        return r.status_code, None

    return call


def heavy_call(base: str):
    path, params = HEAVY

    def call(data: bytes, state: dict[str, Any]) -> tuple[int, str | None]:
        r = _client(state).post(base + path, params=params, files={"file": ("photo.jpg", data, "image/jpeg")})
        return r.status_code, None if r.status_code in (200, 429) else f"HTTP {r.status_code}: {r.text[:200]}"

    return call


def start_server(storage: Path, port: int, extra: list[str]) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("pixlearn")
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--storage", str(storage),
           "--log-level", "warning", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("PIXLEARN_API_KEYS", "PIXLEARN_API_KEY")}
    with open(storage / "serve.log", "wb") as err:  # a file, not a pipe: the server can never block on it
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=storage)


def server_banner(storage: Path) -> str:
    text = (storage / "serve.log").read_text(errors="replace")
    return next((line for line in text.splitlines() if line.startswith("pixlearn serve:")), "")


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
    want = {"colors": dominant_colors(image, k=N_COLORS), "quality": quality(image)}
    return _close(want, {k: r[k] for k in want})


def _close(a: Any, b: Any) -> bool:
    """Equal, floats up to their last bits (the server's workers sum with one OpenCV thread, this process with many)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-9, atol=0))
    return a == b


def health_under_burst(base: str, images: list[bytes], *, clients: int, seconds: float) -> dict[str, Any]:
    """Health latency (one client, every 20 ms) while ``clients`` threads post the heavy op for ``seconds``."""
    import httpx

    health: list[float] = []
    failures: Counter = Counter()
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    code = http.get(f"{base}/v1/health").status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                health.append(time.perf_counter() - t0)
                if code != 200:
                    failures[str(code)] += 1
                stop.wait(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    burst = drive(heavy_call(base), images, clients=clients, seconds=seconds)
    stop.set()
    poller.join()
    ms = np.array(health) * 1e3
    return {"health_requests": int(ms.size), "health_failures": dict(failures),
            **{f"health_{k}": v for k, v in percentiles(ms).items()},
            "burst_requests": burst["requests"], "burst_statuses": burst["statuses"],
            "burst_first_error": burst["first_error"], "burst_p50_ms": burst["p50_ms"]}


def extreme_requests(base: str) -> list[tuple[str, dict[str, Any]]]:
    """A few requests with the largest values the documented ranges allow (one option pushed at a time)."""
    import httpx

    ops = {o["name"]: o for o in httpx.get(f"{base}/v1/ops", timeout=30).json()["ops"]}
    wanted = [("gaussian", "sigma"), ("sharpen", "sigma"), ("median", "ksize"), ("bilateral", "ksize"),
              ("erode", "iterations"), ("close", "ksize"), ("clahe", "tile"), ("resize", "size"), ("pad", "top"),
              ("dominant_colors", "sample"), ("kmeans", "k"), ("slic", "n_segments"), ("tv", "max_iter")]
    out = []
    for op, option in wanted:
        spec = ops.get(op, {}).get("options", {}).get(option)
        if not spec or spec.get("max") is None:
            continue
        high = spec["max"]
        if "odd" in str(spec.get("range", "")) and int(high) % 2 == 0:
            high = int(high) - 1
        value = f"{high},{high}" if "tuple" in str(spec.get("type", "")) or option in ("tile", "size") else high
        out.append((f"/v1/ops/{op}", {option: value}))
    return out


def memory_after_sweep(proc: subprocess.Popen, base: str, image: bytes) -> dict[str, Any]:
    """RSS of the server's process tree before, at its peak during, and after the extreme-option requests."""
    import httpx

    before = rss_mb(proc.pid)
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    answers = []
    with httpx.Client(timeout=600) as http:
        for path, params in extreme_requests(base):
            t0 = time.perf_counter()
            try:
                code: int | str = http.post(base + path, params=params,
                                            files={"file": ("photo.jpg", image, "image/jpeg")}).status_code
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            answers.append({"request": f"{path}?{'&'.join(f'{k}={v}' for k, v in params.items())}", "status": code,
                            "seconds": round(time.perf_counter() - t0, 2)})
    stop.set()
    sampler.join()
    return {"rss_before_mb": before, "rss_peak_mb": peak[0], "rss_after_mb": rss_mb(proc.pid), "answers": answers,
            "unexpected": [a for a in answers if a["status"] not in (200, 400, 413, 504)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--core-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--burst-clients", type=int, default=64)
    ap.add_argument("--burst-seconds", type=float, default=30.0)
    ap.add_argument("--no-sweep", dest="sweep", action="store_false")
    ap.add_argument("--server-arg", action="append", default=[], help="an extra `pixlearn serve` flag (repeatable), "
                                                                     "e.g. --server-arg=--concurrency=16")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pixlearn-bench-serve-"))
    burst: dict[str, Any] | None = None
    sweep: dict[str, Any] | None = None
    try:
        (tmp / "in").mkdir()
        images = make_images(tmp / "in")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        (tmp / "storage").mkdir()
        proc = start_server(tmp / "storage", port, args.server_arg)
        try:
            wait_ready(proc, base)
            banner = server_banner(tmp / "storage")
            agree = same_answer(base, images[0])
            call = service_call(base)
            drive(call, images, clients=args.clients, seconds=args.warmup)
            with Load(proc.pid) as service_load:
                service = drive(call, images, clients=args.clients, seconds=args.seconds)
            if args.burst_clients and args.burst_seconds:
                with Load(proc.pid) as burst_load:
                    burst = health_under_burst(base, images, clients=args.burst_clients, seconds=args.burst_seconds)
                burst.update(burst_load.row())
            if args.sweep:
                with Load(proc.pid) as sweep_load:
                    sweep = memory_after_sweep(proc, base, images[0])
                sweep.update(sweep_load.row())
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
    result: dict[str, Any] = {
        "benchmark": "POST /v1/analyze?features=colors,quality vs read_image + dominant_colors + quality in-process",
        "image": "640x480 JPEG photos (8, cycled), multipart upload",
        "server": banner.rsplit("; ", 1)[-1].rstrip(")") if banner else "",
        "server_args": args.server_arg,
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
    if burst is not None:
        result["health_under_burst"] = {"burst": f"{args.burst_clients} clients posting {HEAVY[0]} {HEAVY[1]} for "
                                                 f"{args.burst_seconds:g} s", "target_p99_ms": 50, **burst}
    if sweep is not None:
        result["memory_after_extreme_options"] = sweep
    print_table([{k: r[k] for k in ("case", "requests", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms",
                                    "cpu_busy", "cpu_ours", "cpu_others", "loadavg_1m")} for r in rows])
    print(f"service statuses: {service['statuses']}   server: {result['server']}")
    print(f"ratio (service / in-process throughput, {args.clients} each): {ratio}   same answer: {agree}   "
          f"cpus: {os.cpu_count()}")
    if per_core is not None:
        key = f"ratio_service_vs_in_process_{args.core_threads}_threads"
        print(f"ratio (service / in-process with {args.core_threads} threads): {result[key]}")
    if burst is not None:
        print(f"health under a burst of {args.burst_clients} {HEAVY[0]} clients: p50 {burst['health_p50_ms']} ms, "
              f"p99 {burst['health_p99_ms']} ms (target <= 50), max {burst['health_max_ms']} ms, "
              f"{burst['health_requests']} probes, failures {burst['health_failures']}; burst answers "
              f"{burst['burst_statuses']}; load avg {burst['loadavg_1m']}, cpu busy {burst['cpu_busy']}")
    if sweep is not None:
        print(f"server RSS (all its processes): {sweep['rss_before_mb']} MB before, peak {sweep['rss_peak_mb']} MB, "
              f"{sweep['rss_after_mb']} MB after {len(sweep['answers'])} extreme-option requests "
              f"({Counter(str(a['status']) for a in sweep['answers'])}); load avg {sweep['loadavg_1m']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    problems = []
    if service["errors"] or local["errors"] or (per_core or {}).get("errors"):
        problems.append(f"errors: service {service['first_error']!r}, in-process {local['first_error']!r}")
    if burst is not None and (burst["burst_first_error"] or burst["health_failures"]):
        problems.append(f"burst: {burst['burst_first_error']!r}, health failures {burst['health_failures']}")
    if sweep is not None and sweep["unexpected"]:
        problems.append(f"extreme options answered {sweep['unexpected']}")
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
