"""Wrapper overhead of the adjust / denoise / edges / threshold ops against the library calls they wrap.

Usage: python benchmarks/bench_ops_filters.py [--repeat 15] [--threads 1] [--only CASE ...]

Every case runs our op and the exact library call(s) it wraps, at identical parameters, on the
same 512x512 RGB photo (scikit-image's astronaut). Edge and threshold peers include the RGB -> grey
conversion our ops do; the nl_means peer is OpenCV's coloured NLM on a ready BGR copy, so ours pays
for the two channel swaps. A few extra rows (marked "alt") compare with the usual scikit-image /
NumPy recipe for the same result instead. Calls are interleaved, best of ``--repeat`` rounds
(three times as many for calls under 2 ms, half as many for calls over 0.5 s);
ratio = peer time / our time (>= 1.0: pixlearn is at least as fast; >= 0.95 is the target).
``overhead_us`` is our time minus the peer's on a 16x16 crop, where the library's own work is
almost nil: the wrapper's cost per call (validation, option checks), in microseconds, which a busy
machine's noise cannot hide the way it can at 512x512. ``max_abs_diff`` checks that both sides
computed the same pixels. Results go to benchmarks/results/ops_filters.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, interleaved, print_table, ratio_row  # noqa: E402

from pixlearn.ops import adjust, denoise, edges, threshold  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LEVELS = np.arange(256, dtype=np.float64)


def photo() -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    img = data.astronaut()
    if img.shape[:2] != (512, 512):
        img = resize(img, (512, 512), anti_aliasing=True, preserve_range=True)
    return np.ascontiguousarray(np.rint(img).astype(np.uint8))


def lut(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    return cv2.LUT(img, np.clip(np.rint(table), 0, 255).astype(np.uint8))


def gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def cases(img: np.ndarray) -> list[tuple[str, Callable[[], Any], Callable[[], Any], str, str]]:
    """(case, ours, peer, peer name, kind) with kind "exact" (same pixels expected) or "alt"."""
    from skimage.exposure import adjust_gamma, rescale_intensity
    from skimage.filters import threshold_multiotsu
    from skimage.restoration import denoise_tv_chambolle, denoise_wavelet

    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)

    def contrast_peer() -> np.ndarray:
        r, g, b, _ = cv2.mean(img)
        m = 0.299 * r + 0.587 * g + 0.114 * b
        return lut(img, 1.5 * LEVELS + (1 - 1.5) * m)

    def auto_contrast_peer() -> np.ndarray:
        hist = cv2.calcHist([img.reshape(img.shape[0], -1)], [0], None, [256], [0, 256])
        cdf = np.cumsum(hist.ravel().astype(np.float64))
        lo = int(np.searchsorted(cdf, 0.01 * cdf[-1]))
        hi = int(np.searchsorted(cdf, 0.99 * cdf[-1]))
        return lut(img, (LEVELS - lo) * 255.0 / (hi - lo))

    def auto_contrast_skimage() -> np.ndarray:
        lo, hi = np.percentile(img, (1, 99))
        return rescale_intensity(img, in_range=(lo, hi))

    def on_luma(func: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
        ycc[..., 0] = func(cv2.extractChannel(ycc, 0))
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)

    def sharpen_peer() -> np.ndarray:
        return cv2.addWeighted(img, 2.0, cv2.GaussianBlur(img, (0, 0), 1.0), -1.0, 0.0)

    def gradient_peer(kind: str) -> np.ndarray:
        g = gray(img)
        if kind == "sobel":
            gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
            alpha = 1 / 4
        else:
            gx, gy = cv2.Scharr(g, cv2.CV_32F, 1, 0), cv2.Scharr(g, cv2.CV_32F, 0, 1)
            alpha = 1 / 16
        return cv2.convertScaleAbs(cv2.magnitude(gx, gy), alpha=alpha)

    def canny_median_peer() -> np.ndarray:  # the usual "auto canny" recipe
        g = gray(img)
        m, sigma = np.median(g), 0.33
        return cv2.Canny(g, int(max(0, (1.0 - sigma) * m)), int(min(255, (1.0 + sigma) * m)))

    def multi_otsu_peer() -> np.ndarray:  # scikit-image's documented recipe
        g = gray(img)
        return np.digitize(g, bins=threshold_multiotsu(g, classes=3), right=True).astype(np.uint8)

    exact, alt = "exact", "alt"
    return [
        ("brightness", lambda: adjust.brightness(img, factor=1.3),
         lambda: cv2.convertScaleAbs(img, alpha=1.3), "cv2.convertScaleAbs", exact),
        ("contrast", lambda: adjust.contrast(img, factor=1.5), contrast_peer, "cv2.mean+cv2.LUT", exact),
        ("gamma", lambda: adjust.gamma(img, gamma=0.7),
         lambda: lut(img, 255 * (LEVELS / 255) ** 0.7), "cv2.LUT", exact),
        ("gamma (alt)", lambda: adjust.gamma(img, gamma=0.7),
         lambda: adjust_gamma(img, 0.7), "skimage.exposure.adjust_gamma", alt),
        ("auto_contrast", lambda: adjust.auto_contrast(img, percentiles=(1.0, 99.0)),
         auto_contrast_peer, "cv2.calcHist+cv2.LUT", exact),
        ("auto_contrast (alt)", lambda: adjust.auto_contrast(img, percentiles=(1.0, 99.0)),
         auto_contrast_skimage, "np.percentile+skimage rescale_intensity", alt),
        ("equalize", lambda: adjust.equalize(img),
         lambda: on_luma(cv2.equalizeHist), "cv2 YCrCb+equalizeHist", exact),
        ("equalize per_channel", lambda: adjust.equalize(img, per_channel=True),
         lambda: cv2.merge([cv2.equalizeHist(c) for c in cv2.split(img)]),
         "cv2.split+equalizeHist+merge", exact),
        ("clahe", lambda: adjust.clahe(img, clip_limit=2.0, tile=(8, 8)),
         lambda: on_luma(cv2.createCLAHE(2.0, (8, 8)).apply), "cv2 YCrCb+createCLAHE", exact),
        ("grayscale", lambda: adjust.grayscale(img), lambda: gray(img), "cv2.cvtColor", exact),
        ("invert", lambda: adjust.invert(img), lambda: cv2.bitwise_not(img), "cv2.bitwise_not", exact),
        ("gaussian", lambda: denoise.gaussian(img, sigma=2.0),
         lambda: cv2.GaussianBlur(img, (0, 0), 2.0), "cv2.GaussianBlur", exact),
        ("median", lambda: denoise.median(img, ksize=5),
         lambda: cv2.medianBlur(img, 5), "cv2.medianBlur", exact),
        ("bilateral", lambda: denoise.bilateral(img, ksize=9, sigma_color=75.0, sigma_space=75.0),
         lambda: cv2.bilateralFilter(img, 9, 75.0, 75.0), "cv2.bilateralFilter", exact),
        ("nl_means", lambda: denoise.nl_means(img, h=10.0, h_color=10.0),
         lambda: cv2.fastNlMeansDenoisingColored(bgr, None, 10.0, 10.0, 7, 21),
         "cv2.fastNlMeansDenoisingColored (BGR in)", "exact-bgr"),
        ("tv", lambda: denoise.tv(img, weight=0.1),
         lambda: denoise_tv_chambolle(img, weight=0.1, channel_axis=-1),
         "skimage denoise_tv_chambolle", "float"),
        ("wavelet", lambda: denoise.wavelet(img),
         lambda: denoise_wavelet(img, convert2ycbcr=True, rescale_sigma=True, channel_axis=-1),
         "skimage denoise_wavelet", "float"),
        ("sharpen", lambda: denoise.sharpen(img, sigma=1.0, amount=1.0),
         sharpen_peer, "cv2.GaussianBlur+addWeighted", exact),
        ("sobel", lambda: edges.sobel(img),
         lambda: gradient_peer("sobel"), "cv2.Sobel+magnitude+convertScaleAbs", exact),
        ("scharr", lambda: edges.scharr(img),
         lambda: gradient_peer("scharr"), "cv2.Scharr+magnitude+convertScaleAbs", exact),
        ("laplacian", lambda: edges.laplacian(img),
         lambda: cv2.convertScaleAbs(cv2.Laplacian(gray(img), cv2.CV_16S, ksize=1), alpha=0.25),
         "cv2.Laplacian+convertScaleAbs", exact),
        ("canny", lambda: edges.canny(img, low=100, high=200),
         lambda: cv2.Canny(gray(img), 100, 200), "cv2.Canny", exact),
        ("canny auto", lambda: edges.canny(img), canny_median_peer, "np.median rule+cv2.Canny", exact),
        ("threshold", lambda: threshold.threshold(img, value=127),
         lambda: cv2.threshold(gray(img), 127, 255, cv2.THRESH_BINARY)[1],
         "cv2.threshold", exact),
        ("otsu", lambda: threshold.otsu(img),
         lambda: cv2.threshold(gray(img), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1],
         "cv2.threshold OTSU", exact),
        ("multi_otsu", lambda: threshold.multi_otsu(img, classes=3, output="labels"),
         multi_otsu_peer, "skimage threshold_multiotsu+np.digitize", exact),
        ("adaptive_threshold",
         lambda: threshold.adaptive_threshold(img, method="gaussian", ksize=11, offset=2.0),
         lambda: cv2.adaptiveThreshold(
             gray(img), 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 11, 2.0),
         "cv2.adaptiveThreshold", exact),
    ]


def max_abs_diff(ours: np.ndarray, peer: np.ndarray, kind: str) -> int:
    if kind == "exact-bgr":
        peer = peer[..., ::-1]
    elif kind == "float":
        peer = np.rint(np.asarray(peer) * 255)
    return int(np.abs(ours.astype(np.int64) - np.asarray(peer).astype(np.int64)).max())


def timed_pair(ours: Callable[[], Any], peer: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best seconds per call of both, interleaved; fast calls batched into ~5 ms rounds, with more rounds."""
    one = best_time(ours, repeat=1)
    number = max(1, min(500, int(0.005 / max(one, 1e-7))))  # short rounds dodge a busy machine's noise
    rounds = 3 * repeat if one < 0.002 else repeat if one < 0.5 else max(3, repeat // 2)
    return interleaved(ours, peer, repeat=rounds, number=number)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (1: stable numbers)")
    ap.add_argument("--only", nargs="*", help="run only these cases")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    img = photo()
    tiny = np.ascontiguousarray(img[200:216, 200:216])  # where the library's own work is almost nil
    tiny_cases = {c[0]: c for c in cases(tiny)}
    rows = []
    for case, ours, peer, peer_name, kind in cases(img):
        if args.only and case not in args.only:
            continue
        diff = max_abs_diff(ours(), peer(), kind)
        t_ours, t_peer = timed_pair(ours, peer, args.repeat)
        row = ratio_row(case, t_ours, t_peer, peer_name)
        t_ours_tiny, t_peer_tiny = timed_pair(tiny_cases[case][1], tiny_cases[case][2], args.repeat)
        row["overhead_us"] = round((t_ours_tiny - t_peer_tiny) * 1e6, 2)
        row["max_abs_diff"] = diff
        rows.append(row)
        print(f"{case}: {row['ratio']}", file=sys.stderr, flush=True)
    print_table(rows)
    print(f"(cv2 {cv2.__version__}, {args.threads} cv2 thread(s), numpy {np.__version__}, "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs)")
    if args.only:
        print("(--only: partial run, benchmarks/results/ops_filters.json left as it was)")
        return
    out = ROOT / "benchmarks" / "results" / "ops_filters.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
