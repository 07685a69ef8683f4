"""Latency per image of the COCO YOLOX-Nano through pixlearn vs the same ONNX called directly with onnxruntime, CPU.

Usage: python benchmarks/bench_yolox_latency.py [--onnx ../shared/weights/yolox_nano_coco80.onnx] [--repeat 30]
                                                [--threads N] [--raccoon 4] [--json benchmarks/results/yolox_latency.json]

Both sides get the same decoded RGB uint8 photo (scikit-image's astronaut, coffee, chelsea and rocket, and the
first ``--raccoon`` images of ``../shared/datasets/raccoon``) and return boxes in its pixels:

* **pixlearn**: ``pixlearn.tasks.detect.yolox.load_yolox(ONNX).predict([image], score=S, iou=I, max_detections=100)``;
* **peer** (written here, after the YOLOX demo's ``onnx_inference.py`` and ``yolox/utils/boxes.py``): letterbox to
  416x416 (``cv2.resize`` INTER_LINEAR by ``r = min(416/h, 416/w)``, pad value 114, top-left), BGR 0-255 float32 CHW,
  ``onnxruntime.InferenceSession.run``, grid decode with strides 8/16/32 (``(xy + grid) * stride``,
  ``exp(wh) * stride``), score = objectness x best class score, boxes divided by ``r``, class-wise greedy NMS in
  numpy, the best 100.

Both sessions use the CPU execution provider with the same intra-op thread count (``--threads``; by default
onnxruntime's own default for the peer, and whatever pixlearn's loader sets for pixlearn, which the results record).
Repetitions are interleaved (pixlearn, peer, peer, pixlearn, ...) after a warm-up, so the machine's noise hits
both; per image the median and 90th percentile of each side are reported with the ratio peer median / pixlearn
median (target >= 0.95: pixlearn costs at most ~5 % more than the bare session). The script also checks that
both sides find the same boxes (count, and mean IoU of matched boxes), so the timing compares equal work.
The machine may be shared: load averages before and after are recorded. Results go to ``--json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
STRIDES = (8, 16, 32)


# --------------------------------------------------------------------------------------------- the peer, by hand
class DirectYolox:
    """The YOLOX ONNX called with onnxruntime, with the YOLOX demo's letterbox and decoding written out here."""

    def __init__(self, path: Path, *, threads: int | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = (int(inp.shape[2]), int(inp.shape[3]))
        self.grids, self.strides = self._grids(self.size)

    @staticmethod
    def _grids(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        grids, strides = [], []
        for s in STRIDES:
            hs, ws = size[0] // s, size[1] // s
            xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
            grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
            strides.append(np.full((hs * ws, 1), s))
        return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        h, w = image.shape[:2]
        r = min(self.size[0] / h, self.size[1] / w)
        resized = cv2.resize(image[:, :, ::-1], (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
        padded = np.full((*self.size, 3), 114, np.uint8)
        padded[: resized.shape[0], : resized.shape[1]] = resized
        return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), r

    def __call__(self, image: np.ndarray, *, score: float, iou: float, max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        blob, r = self.letterbox(image)
        out = self.session.run(None, {self.input_name: blob})[0][0]
        xy = (out[:, :2] + self.grids) * self.strides
        wh = np.exp(out[:, 2:4]) * self.strides
        cls = out[:, 5:] * out[:, 4:5]
        labels = cls.argmax(1)
        scores = cls[np.arange(len(cls)), labels]
        keep = scores >= score
        xy, wh, scores, labels = xy[keep], wh[keep], scores[keep], labels[keep]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r
        h, w = image.shape[:2]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        idx = nms_classwise(boxes, scores, labels, iou)[:max_detections]
        return boxes[idx], scores[idx], labels[idx]


def nms_classwise(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS within each class (boxes shifted apart by class, as torchvision's batched_nms does)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    shifted = boxes + (labels.astype(np.float32) * (boxes.max() + 1))[:, None]
    x1, y1, x2, y2 = shifted.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return np.asarray(keep, np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


# --------------------------------------------------------------------------------------------- pixlearn's side
def load_ours(path: Path, threads: int | None) -> Any:
    from pixlearn.tasks.detect.yolox import load_yolox

    params = inspect.signature(load_yolox).parameters
    if threads and "threads" in params:
        return load_yolox(path, threads=threads)
    if threads:
        print(f"  note: load_yolox takes no threads option; pixlearn uses its own session settings ({list(params)})", file=sys.stderr)
    return load_yolox(path)


def session_threads(detector: Any) -> Any:
    """The intra-op thread count of the onnxruntime session inside pixlearn's detector, when it can be found."""
    if isinstance(getattr(detector, "threads", None), int):
        return detector.threads
    for name in ("session", "_session"):
        sess = getattr(detector, name, None)
        if sess is not None:
            try:
                return sess.get_session_options().intra_op_num_threads
            except Exception:
                return "unknown"
    return "unknown"


# --------------------------------------------------------------------------------------------- images and timing
def photos(raccoon: int) -> list[tuple[str, np.ndarray]]:
    import skimage.data

    from pixlearn import read_image

    out = [(f"skimage.{n}", np.ascontiguousarray(getattr(skimage.data, n)()[..., :3])) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    folder = SHARED / "datasets" / "raccoon" / "images"
    if raccoon and folder.is_dir():
        files = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem.split("-")[-1]) if p.stem.split("-")[-1].isdigit() else 0)
        out += [(f"raccoon/{p.name}", read_image(p)) for p in files[:raccoon]]
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def agreement(ours: Any, peer: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    pb, ps, pl = peer
    ob, ol = np.asarray(ours.boxes), np.asarray(ours.labels)
    matched_iou: list[float] = []
    if len(ob) and len(pb):
        m = box_iou(ob, pb)
        for i in range(len(ob)):
            j = int(m[i].argmax())
            if ol[i] == pl[j]:
                matched_iou.append(float(m[i, j]))
    return {"pixlearn_boxes": int(len(ob)), "peer_boxes": int(len(pb)),
            "matched_same_class": len(matched_iou), "mean_iou_of_matches": round(float(np.mean(matched_iou)), 4) if matched_iou else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=SHARED / "weights" / "yolox_nano_coco80.onnx")
    ap.add_argument("--repeat", type=int, default=30, help="timed calls per image and side (interleaved)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls per image and side first")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads of both sessions (default: onnxruntime's / pixlearn's own)")
    ap.add_argument("--raccoon", type=int, default=4, help="raccoon photos added to the four scikit-image ones")
    ap.add_argument("--score", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "yolox_latency.json")
    args = ap.parse_args(argv)
    if not args.onnx.is_file():
        raise SystemExit(f"{args.onnx}: no such file; give the YOLOX-Nano ONNX with --onnx")

    import onnxruntime as ort

    images = photos(args.raccoon)
    load0 = os.getloadavg()
    ours = load_ours(args.onnx, args.threads)
    ours_threads = session_threads(ours)
    peer_threads = args.threads if args.threads else (ours_threads if isinstance(ours_threads, int) and ours_threads > 0 else None)
    peer = DirectYolox(args.onnx, threads=peer_threads)
    kw = {"score": args.score, "iou": args.iou, "max_detections": 100}

    rows, per_image = [], []
    all_ours, all_peer = [], []
    for name, img in images:
        run_ours = lambda img=img: ours.predict([img], **kw)[0]  # noqa: E731
        run_peer = lambda img=img: peer(img, **kw)  # noqa: E731
        for _ in range(args.warmup):
            run_ours(); run_peer()
        t_ours, t_peer = [], []
        for k in range(args.repeat):
            pair = ((run_ours, t_ours), (run_peer, t_peer))
            for fn, sink in (pair if k % 2 == 0 else pair[::-1]):
                t0 = time.perf_counter()
                fn()
                sink.append(time.perf_counter() - t0)
        agree = agreement(run_ours(), run_peer())
        mo, mp = statistics.median(t_ours), statistics.median(t_peer)
        all_ours += t_ours
        all_peer += t_peer
        per_image.append({"image": name, "size_hw": list(img.shape[:2]), "pixlearn_ms": [round(t * 1e3, 3) for t in t_ours],
                          "peer_ms": [round(t * 1e3, 3) for t in t_peer], "pixlearn_median_ms": round(mo * 1e3, 3),
                          "pixlearn_p90_ms": round(pct(t_ours, 90) * 1e3, 3), "peer_median_ms": round(mp * 1e3, 3),
                          "peer_p90_ms": round(pct(t_peer, 90) * 1e3, 3), "ratio": round(mp / mo, 3), **agree})
        rows.append({"image": name, "hxw": f"{img.shape[0]}x{img.shape[1]}", "pixlearn_med_ms": f"{mo * 1e3:.2f}",
                     "pixlearn_p90_ms": f"{pct(t_ours, 90) * 1e3:.2f}", "onnxruntime_med_ms": f"{mp * 1e3:.2f}",
                     "onnxruntime_p90_ms": f"{pct(t_peer, 90) * 1e3:.2f}", "ratio": f"{mp / mo:.3f}",
                     "boxes": f"{agree['pixlearn_boxes']}/{agree['peer_boxes']}",
                     "iou": "-" if agree["mean_iou_of_matches"] is None else f"{agree['mean_iou_of_matches']:.3f}"})
    load1 = os.getloadavg()
    med_ours, med_peer = statistics.median(all_ours), statistics.median(all_peer)
    ratios = [r["ratio"] for r in per_image]
    summary = {"pixlearn_median_ms": round(med_ours * 1e3, 3), "pixlearn_p90_ms": round(pct(all_ours, 90) * 1e3, 3),
               "peer_median_ms": round(med_peer * 1e3, 3), "peer_p90_ms": round(pct(all_peer, 90) * 1e3, 3),
               "ratio_of_medians": round(med_peer / med_ours, 3), "median_of_per_image_ratios": round(statistics.median(ratios), 3),
               "target_ratio": 0.95, "meets_target": med_peer / med_ours >= 0.95,
               "boxes_agree": all(r["pixlearn_boxes"] == r["peer_boxes"] for r in per_image)}
    rows.append({"image": "all", "hxw": "-", "pixlearn_med_ms": f"{med_ours * 1e3:.2f}", "pixlearn_p90_ms": f"{pct(all_ours, 90) * 1e3:.2f}",
                 "onnxruntime_med_ms": f"{med_peer * 1e3:.2f}", "onnxruntime_p90_ms": f"{pct(all_peer, 90) * 1e3:.2f}",
                 "ratio": f"{med_peer / med_ours:.3f}", "boxes": "-", "iou": "-"})
    print_table(rows)
    print(json.dumps(summary, indent=1), file=sys.stderr)
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "onnxruntime": ort.__version__,
                    "cpus": os.cpu_count(), "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "threads": {"pixlearn_session": ours_threads, "peer_session": peer_threads or "onnxruntime default"},
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "peer": "the same ONNX through onnxruntime.InferenceSession, letterbox + grid decode + class-wise NMS by hand (this script)",
        "ratio": "peer median / pixlearn median (>= 1: pixlearn as fast or faster)",
        "images": per_image, "summary": summary,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
