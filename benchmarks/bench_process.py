"""`pixlearn process` (blur + Canny recipe) against an equivalent hand-written OpenCV loop.

Usage: python benchmarks/bench_process.py [--n 500]

Generates N real-photo JPEGs (640x480 crops of scikit-image's sample photos, quality 90), then times
  * peer: for each file cv2.imread -> GaussianBlur(sigma 1.5) -> grey -> median-rule thresholds -> Canny -> cv2.imwrite PNG
  * pixlearn: pixlearn.ops.batch.process("edges", ...) with 1 and with 2 workers (overwrite on, progress off)
  * the same through the CLI (`pixlearn process edges DIR --out OUT --workers W`), interpreter start-up included
Rounds are interleaved; the best round of each counts. Ratio = peer time / pixlearn time.
Results go to benchmarks/results/process.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

from pixlearn.ops.batch import process  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, n: int) -> list[Path]:
    from bench_io import large_jpegs

    return large_jpegs(folder, n)


def peer_loop(paths: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        blur = cv2.GaussianBlur(img, (0, 0), 1.5)
        gray = cv2.cvtColor(blur, cv2.COLOR_BGR2GRAY)
        m = float(np.median(gray))
        edges = cv2.Canny(gray, int(max(0, 0.67 * m)), int(min(255, 1.33 * m)))
        cv2.imwrite(str(out / (p.stem + ".png")), edges)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    src = tmp / "in"
    src.mkdir()
    paths = make_inputs(src, args.n)
    exe = str(Path(sys.executable).with_name("pixlearn"))
    best: dict[str, float] = {}

    def note(key: str, seconds: float) -> None:
        best[key] = min(best.get(key, float("inf")), seconds)

    # same outputs? compare one file
    peer_loop(paths[:1], tmp / "check_peer")
    process("edges", [paths[0]], tmp / "check_ours", progress=False, report=None)
    a = cv2.imread(str(tmp / "check_peer" / (paths[0].stem + ".png")), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(tmp / "check_ours" / (paths[0].stem + ".png")), cv2.IMREAD_GRAYSCALE)
    agree = float((a == b).mean())

    for _ in range(args.rounds):
        note("peer cv2 loop (1 process)", timed(lambda: peer_loop(paths, tmp / "peer")))
        for w in (1, 2):
            note(f"pixlearn API workers={w}", timed(lambda: process("edges", src, tmp / f"api{w}", workers=w, overwrite=True, progress=False)))
            note(
                f"pixlearn CLI workers={w}",
                timed(lambda: subprocess.run([exe, "process", "edges", str(src), "--out", str(tmp / f"cli{w}"), "--workers", str(w), "--overwrite", "--no-progress"], check=True, capture_output=True)),
            )
    peer = best["peer cv2 loop (1 process)"]
    rows = []
    for key, seconds in best.items():
        rows.append({
            "case": key,
            "files": len(paths),
            "seconds": round(seconds, 3),
            "files_per_s": round(len(paths) / seconds, 1),
            "ratio_vs_peer": round(peer / seconds, 3),
        })
    rows.append({"case": "scaling API 1->2 workers", "ratio_vs_peer": round(best["pixlearn API workers=1"] / best["pixlearn API workers=2"], 3)})
    rows.append({"case": "pixel agreement with peer (one file)", "ratio_vs_peer": round(agree, 4)})
    print_table(rows)
    out = ROOT / "benchmarks" / "results" / "process.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
