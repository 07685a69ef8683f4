"""Timing helpers shared by the benchmarks: best-of-N wall time and ratios against a named peer."""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def best_time(fn: Callable[[], Any], *, repeat: int = 7, number: int = 1, warmup: int = 1) -> float:
    """Best (minimum) seconds per call over ``repeat`` rounds of ``number`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    return best


def interleaved(ours: Callable[[], Any], peer: Callable[[], Any], *, repeat: int = 7, number: int = 1) -> tuple[float, float]:
    """Best seconds per call of ``ours`` and ``peer``, measured alternately so machine noise hits both."""
    ours(); peer()
    t_ours = t_peer = float("inf")
    for _ in range(repeat):
        t_ours = min(t_ours, best_time(ours, repeat=1, number=number, warmup=0))
        t_peer = min(t_peer, best_time(peer, repeat=1, number=number, warmup=0))
    return t_ours, t_peer


def ratio_row(name: str, t_ours: float, t_peer: float, peer: str) -> dict[str, Any]:
    """A result row: throughput ratio = peer time / our time (>= 1.0 means pixlearn is as fast or faster)."""
    return {
        "case": name,
        "peer": peer,
        "ours_ms": round(t_ours * 1e3, 4),
        "peer_ms": round(t_peer * 1e3, 4),
        "ratio": round(t_peer / t_ours, 3) if t_ours > 0 else float("nan"),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0]) if rows else []
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))


def interleaved_times(ours: Callable[[], Any], peer: Callable[[], Any], *, repeat: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds of every call of both sides, alternated (ours, peer, peer, ours, ...) after ``warmup`` untimed calls
    each, so machine noise hits both; take the medians."""
    for _ in range(warmup):
        ours()
        peer()
    t_ours: list[float] = []
    t_peer: list[float] = []
    for k in range(repeat):
        pair = ((ours, t_ours), (peer, t_peer))
        for fn, sink in (pair if k % 2 == 0 else pair[::-1]):
            t0 = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - t0)
    return t_ours, t_peer


def write_results(path: Path, results: dict[str, Any]) -> int:
    """Write a benchmark's results JSON (its folder made), say where on stderr; 0, the script's exit status."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {path}", file=sys.stderr)
    return 0
