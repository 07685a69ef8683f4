"""Timing helpers shared by the benchmarks: best-of-N wall time and ratios against a named peer."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
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
