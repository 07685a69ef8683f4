"""Faces on ../shared/datasets/faces: detection recall, identification accuracy, verification ROC AUC, detector time.

Usage: python benchmarks/bench_faces.py [--data ../shared/datasets/faces] [--truth benchmarks/data/faces_truth.json]
                                        [--repeat 3] [--limit N] [--json benchmarks/results/faces.json]

The set: five people, train/<person>/ (9 photos, one face each) and test/ (5 photos, 8 faces: 7 of the five people and
one unknown girl). The ground truth of test/ is benchmarks/data/faces_truth.json (its ``how_made`` says how it was
written: by eye, once). Everything runs on the CPU, in this order:

* **Detection recall** on test/ for three settings: HOG at upsample 0, HOG at upsample 1 (pixlearn's default) and the
  MMOD CNN at upsample 0 (upsample 1 would cost the CNN 4x more: about 2 minutes on the 2000x1428 photo). A face is
  found when a detection overlaps its box by IoU >= 0.3 or has its centre inside it (one detection per face);
  detections that match no face are counted as false positives.
* **Identification** (1:N): every train/ photo enrolled under its folder's name with ``Gallery.enroll`` (HOG, upsample
  1), then ``Gallery.identify`` on each test/ photo at dlib's threshold 0.6. Right when a face of a known person gets
  that name, and when the unknown face gets "unknown"; a face not detected is wrong. Reported: accuracy on all truth
  faces, on the enrolled people's faces, and whether the unknown face was rejected.
* **Verification** (1:1): the embeddings of the 9 train faces and of the test faces found (with their truth names,
  the unknown face left out), every pair among them labelled same/different: ROC AUC, EER, and FAR/FRR at 0.6 and at
  the threshold calibrated on these same pairs (an optimistic number: it is chosen on what it is scored on).
* **Time per image**: ``detect_faces`` with HOG (upsample 0 and 1) and with the CNN (upsample 0) on each test/ photo,
  alternated call by call (``--repeat`` rounds, the order rotated each round), median seconds per image; and HOG
  through pixlearn against dlib's detector called directly on the same array (the wrapper's overhead; ratio =
  dlib / pixlearn, >= 0.95 expected).

``--limit 2 --repeat 1`` is a smoke test (the two smallest test files). Results go
to ``--json`` with the machine, the library versions and the load averages before and after (the machine may be
shared: compare numbers measured in the same run).
"""

from __future__ import annotations

import argparse
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
from _timing import interleaved_times, print_table, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETTINGS = (("hog", 0), ("hog", 1), ("cnn", 0))


def iou(a: list[int], b: list[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[dict[str, Any]], boxes: list[list[int]]) -> tuple[dict[int, int], int]:
    """Truth face index -> detection index (greedy, best IoU first; centre-inside counts as IoU 0.3), and the number
    of detections left unmatched (false positives)."""
    pairs = []
    for t, face in enumerate(truth):
        for d, box in enumerate(boxes):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            tb = face["box"]
            inside = tb[0] <= cx <= tb[2] and tb[1] <= cy <= tb[3]
            score = max(iou(tb, box), 0.3 if inside else 0.0)
            if score >= 0.3:
                pairs.append((score, t, d))
    used_t: dict[int, int] = {}
    used_d: set[int] = set()
    for _, t, d in sorted(pairs, reverse=True):
        if t not in used_t and d not in used_d:
            used_t[t] = d
            used_d.add(d)
    return used_t, len(boxes) - len(used_d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "faces")
    ap.add_argument("--truth", type=Path, default=HERE / "data" / "faces_truth.json")
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds per image and setting")
    ap.add_argument("--limit", type=int, default=None, help="only the first N test images (smallest first): a smoke test")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "faces.json")
    args = ap.parse_args()

    import dlib

    from pixlearn.io import read_image
    from pixlearn.ops.faces import detect_faces, face_model
    from pixlearn.tasks.faces import Gallery, calibrate, embed
    from pixlearn.tasks.faces.gallery import MemoryGalleryStore

    truth_doc = json.loads(args.truth.read_text())
    truth: dict[str, list[dict[str, Any]]] = truth_doc["images"]
    names = sorted(truth, key=lambda k: (args.data / k).stat().st_size)  # smallest first, so --limit stays quick
    if args.limit:
        names = names[: args.limit]
    images = {k: read_image(args.data / k) for k in names}
    load0 = os.getloadavg()
    t_start = time.perf_counter()

    # ---------------------------------------------------------------- detection recall
    detection_rows = []
    found_boxes: dict[tuple[str, int], dict[str, list[list[int]]]] = {}
    for det, up in SETTINGS:
        found = fp = total = 0
        per_image = {}
        for k in names:
            boxes = [list(f.box) for f in detect_faces(images[k], detector=det, upsample=up)]
            matched, extra = match(truth[k], boxes)
            found += len(matched)
            fp += extra
            total += len(truth[k])
            per_image[k] = boxes
        found_boxes[(det, up)] = per_image
        detection_rows.append({"detector": det, "upsample": up, "faces": total, "found": found,
                               "recall": round(found / total, 3), "false_positives": fp})
    print("\nDetection recall on test/")
    print_table(detection_rows)

    # ---------------------------------------------------------------- identification
    store = MemoryGalleryStore()
    gallery = Gallery(store, detector="hog", upsample=1)
    train_people = sorted(p for p in (args.data / "train").iterdir() if p.is_dir())
    enrolled = {}
    train_vectors: list[tuple[str, np.ndarray]] = []
    for person in train_people:
        files = sorted(person.iterdir())
        result = gallery.enroll(person.name, [str(f) for f in files])
        enrolled[person.name] = {"added": result["added"], "refused": [r["reason"] for r in result["images"] if r["reason"]]}
    people_names, matrix = store.vectors()
    train_vectors = list(zip(people_names, matrix))
    right = known_right = known_total = 0
    unknown_rejected = None
    id_rows = []
    test_vectors: list[tuple[str, np.ndarray]] = []
    for k in names:
        faces = embed(images[k], detector="hog", upsample=1)
        matched, _ = match(truth[k], [list(f.box) for f in faces])
        answers = gallery.match(np.stack([f.vector for f in faces]), threshold=0.6) if faces else []
        for t, face in enumerate(truth[k]):
            d = matched.get(t)
            said = answers[d]["name"] if d is not None else "(not detected)"
            dist = answers[d]["distance"] if d is not None else None
            ok = said == face["name"]
            right += ok
            if face["name"] == "unknown":
                unknown_rejected = ok
            else:
                known_total += 1
                known_right += ok
                if d is not None:
                    test_vectors.append((face["name"], faces[d].vector))
            id_rows.append({"image": k, "truth": face["name"], "answer": said, "distance": dist, "right": ok})
    n_truth = sum(len(truth[k]) for k in names)
    identification = {"threshold": 0.6, "detector": "hog", "upsample": 1, "faces": n_truth, "right": right,
                      "accuracy": round(right / n_truth, 3) if n_truth else None,
                      "known_faces": known_total, "known_right": known_right,
                      "known_accuracy": round(known_right / known_total, 3) if known_total else None,
                      "unknown_rejected": unknown_rejected, "enrolled": enrolled}
    print("\nIdentification (enrol train/, identify test/, threshold 0.6)")
    print_table(id_rows)

    # ---------------------------------------------------------------- verification
    everything = train_vectors + test_vectors
    pairs = [(a[1], b[1], a[0] == b[0]) for i, a in enumerate(everything) for b in everything[i + 1:]]
    cal = calibrate(pairs, source="all pairs of train faces and detected test faces (bench_faces.py)")
    d = np.array([float(np.linalg.norm(a - b)) for a, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    far06 = float((d[~same] <= 0.6).mean()) if (~same).any() else None
    frr06 = float((d[same] > 0.6).mean()) if same.any() else None
    verification = {"faces": len(everything), "pairs": cal.n_pairs, "same_pairs": cal.n_same,
                    "different_pairs": cal.n_different, "roc_auc": round(cal.auc, 4), "eer": round(cal.eer, 4),
                    "far_at_0.6": far06, "frr_at_0.6": frr06, "calibrated_threshold": cal.threshold,
                    "far_at_calibrated": cal.far, "frr_at_calibrated": cal.frr,
                    "same_distance_max": round(float(d[same].max()), 4) if same.any() else None,
                    "different_distance_min": round(float(d[~same].min()), 4) if (~same).any() else None}
    print("\nVerification on all pairs")
    print_table([verification])

    # ---------------------------------------------------------------- time per image
    timing_rows = []
    hog = face_model("hog")
    for k in names:
        img = images[k]
        calls = {f"{det}@{up}": (lambda det=det, up=up: detect_faces(img, detector=det, upsample=up)) for det, up in SETTINGS}
        samples: dict[str, list[float]] = {name: [] for name in calls}
        order = list(calls)
        for name in order:  # warm-up: models loaded, caches hot
            calls[name]()
        for r in range(args.repeat):
            rot = order[r % len(order):] + order[: r % len(order)]
            for name in rot:
                t0 = time.perf_counter()
                calls[name]()
                samples[name].append(time.perf_counter() - t0)
        t_ours, t_dlib = interleaved_times(lambda: detect_faces(img, detector="hog", upsample=1),
                                           lambda: hog(img, 1), repeat=max(args.repeat, 3), warmup=1)
        row = {"image": k, "size": f"{img.shape[1]}x{img.shape[0]}"}
        row.update({f"{name}_s": round(statistics.median(v), 4) for name, v in samples.items()})
        row["cnn@0 / hog@1"] = round(statistics.median(samples["cnn@0"]) / statistics.median(samples["hog@1"]), 2)
        row["dlib_hog@1_s"] = round(statistics.median(t_dlib), 4)
        row["ratio dlib/pixlearn"] = round(statistics.median(t_dlib) / statistics.median(t_ours), 3)
        timing_rows.append(row)
    print("\nSeconds per image (medians)")
    print_table(timing_rows)

    load1 = os.getloadavg()
    results = {
        "benchmark": "faces", "data": str(args.data), "truth": str(args.truth), "images": names,
        "limit": args.limit, "repeat": args.repeat,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "dlib": dlib.__version__, "dlib_cuda": bool(dlib.DLIB_USE_CUDA)},
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "seconds": round(time.perf_counter() - t_start, 1),
        "detection": detection_rows, "identification": identification, "identification_rows": id_rows,
        "verification": verification, "timing": timing_rows,
    }
    return write_results(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
