"""Decoding speed: pixlearn.read_image against a plain Pillow loop and cv2.imdecode on the same JPEGs.

Usage: python benchmarks/bench_io.py [--cifar ../shared/datasets/cifar10] [--n 400]

Two sets: real CIFAR-10 JPEGs (32x32) from ../shared/datasets, and larger JPEGs (640x480, quality 90)
generated from scikit-image's sample photos. Each loop decodes every file of a set to an RGB uint8 array;
the loops are interleaved, best of several rounds, and the ratio is peer time / pixlearn time
(>= 1.0: pixlearn is at least as fast). Results go to benchmarks/results/io_decode.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved, print_table, ratio_row  # noqa: E402

import pixlearn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def large_jpegs(folder: Path, n: int) -> list[Path]:
    from skimage import data
    from skimage.transform import resize

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.hubble_deep_field()]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        src = photos[i % len(photos)]
        y, x = rng.integers(0, 40, size=2)
        img = resize(src[y:, x:], (480, 640), preserve_range=True, anti_aliasing=True).astype(np.uint8)
        path = folder / f"large_{i:04d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def pillow_loop(paths):
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def cv2_loop(paths):
    return [cv2.cvtColor(cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in paths]


def cv2_bgr_loop(paths):
    return [cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_COLOR) for p in paths]


def ours_loop(paths):
    return [pixlearn.read_image(p) for p in paths]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cifar", default=str(ROOT.parent / "shared" / "datasets" / "cifar10"))
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    sets = {}
    cifar = sorted(Path(args.cifar).glob("train/*/*.jpg"))[:: max(1, 5000 // args.n)][: args.n]
    if cifar:
        sets["cifar10 32x32"] = cifar
    else:
        print(f"(no CIFAR-10 JPEGs under {args.cifar}; skipping that set)", file=sys.stderr)
    tmp = tempfile.TemporaryDirectory()
    sets["generated 640x480"] = large_jpegs(Path(tmp.name), min(args.n, 300))
    rows = []
    for name, paths in sets.items():
        # correctness first: same pixels as Pillow within JPEG decoder rounding
        diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(ours_loop(paths[:20]), pillow_loop(paths[:20])))
        for peer_name, peer in (("Pillow open+convert", pillow_loop), ("cv2.imdecode+cvtColor", cv2_loop), ("cv2.imdecode (BGR only)", cv2_bgr_loop)):
            t_ours, t_peer = interleaved(lambda: ours_loop(paths), lambda: peer(paths), repeat=args.repeat)
            row = ratio_row(f"{name} x{len(paths)}", t_ours, t_peer, peer_name)
            row["max_abs_diff_vs_pillow"] = diff
            rows.append(row)
    print_table(rows)
    out = ROOT / "benchmarks" / "results" / "io_decode.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
