"""Instance segmentation on person_drone with a time budget: box AP and mask AP on valid/, with and without tiling, CPU.

Usage: python benchmarks/bench_detect_person_drone.py [--minutes 5] [--data ../shared/datasets/person_drone]
                                                      [--weights ../shared/weights] [--tile 320] [--overlap 0.25]
                                                      [--variants auto] [--limit N]
                                                      [--out DIR] [--json benchmarks/results/detect_person_drone.json]

person_drone is a Roboflow COCO export of people seen from a drone (640x640 frames, polygon masks): ``train/``
85 images, ``valid/`` 24. Every training sees ``train/`` only (a copy of it when ``--limit`` is given) and is the
command a user types, run from a scratch folder with ``PIXLEARN_WEIGHTS`` set to the shared weights folder:

* ``default``: ``pixlearn train detect --data <train> --minutes 5`` -- polygons in the data, so the run picks
  Mask R-CNN by itself, and decides by itself whether to train on tiles (the script records both choices);
* ``no_tile``: the same with ``--set data.tile=0`` (whole images); ``tiled_train``: the same with
  ``--set data.tile=T --set data.tile_overlap=O`` (tiled training; ``--tile T --tile-overlap O`` when the command
  offers those flags).

``--variants auto`` (the default) runs ``default`` and then whichever of ``no_tile`` / ``tiled_train`` the default
did not do, so tiled and untiled training are both measured at the same budget.

Each trained run is then scored on all of ``valid/`` by the same code, twice: on whole images
(``load_run_detector(RUN).predict``) and tiled (``pixlearn.tasks.detect.tiles.TiledDetector(detector, tile=T,
overlap=O)``: SAHI-style slices, predictions merged), both with score threshold 0.001 and at most 100 detections per
image, into pixlearn's ``DetectionEvaluator(masks=True)`` (pycocotools' numbers): box AP, AP50, AP small / medium /
large, mask AP, mask AP50 and mask AP small. COCO sizes objects by the truth's mask area when it has masks: by mask
area 19 of valid/'s 31 people are small (< 32^2 px), by box area only 1 (most boxes are 32-96 px: "medium"), so
read a small-object AP with its count; the script records both counts.

The peer is what a user gets with no training at all: the COCO YOLOX-Nano (``--onnx``; its ``person`` class is
matched to the data's by name, the other 79 classes are not scored), whole and tiled, scored by the same code. The machine
may be shared: load averages before and after each training are recorded. Expect about 35 minutes on two busy cores:
two 5-minute trainings with their plans, and tiled Mask R-CNN scoring at about 20 s per image (ten windows, each with
up to 100 masks at score 0.001). ``--minutes 0.2 --limit 6`` is a smoke
test. Results go to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402
from bench_detect_raccoon import cli_eval, load_truth, machine_info, pixlearn_cmd, same_numbers, score, train_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mask_map", "mask_map50", "mask_map75", "mask_map_small",
        "mask_map_medium")


def limited_copy(folder: Path, dest: Path, n: int) -> Path:
    """A COCO folder with the first ``n`` images of ``folder`` (sorted by file name) and their annotations."""
    ann_file = folder / "_annotations.coco.json"
    doc = json.loads(ann_file.read_text())
    images = sorted(doc["images"], key=lambda im: im["file_name"])[:n]
    keep = {im["id"] for im in images}
    dest.mkdir(parents=True, exist_ok=True)
    for im in images:
        shutil.copyfile(folder / im["file_name"], dest / im["file_name"])
    doc["images"] = images
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
    (dest / ann_file.name).write_text(json.dumps(doc))
    return dest


def size_counts(truths: list[Any]) -> dict[str, int]:
    """How many ground-truth objects are COCO small (< 32^2 px), medium and large, by box area and by mask area."""
    out = {"small_by_box": 0, "medium_by_box": 0, "large_by_box": 0, "small_by_mask": 0, "medium_by_mask": 0, "large_by_mask": 0}
    for t in truths:
        b = t.boxes
        areas = {"box": (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])}
        if t.masks is not None:
            areas["mask"] = t.masks.reshape(len(t.masks), -1).sum(1).astype(np.float64)
        for kind, a in areas.items():
            out[f"small_by_{kind}"] += int((a < 32**2).sum())
            out[f"medium_by_{kind}"] += int(((a >= 32**2) & (a < 96**2)).sum())
            out[f"large_by_{kind}"] += int((a >= 96**2).sum())
    return out


def run_tile(run: Path) -> int | None:
    """The tile side a run trained on (its resolved ``config.yaml``'s ``data.tile``, else its manifest's), None when untiled."""
    import yaml

    tile = None
    try:
        tile = ((yaml.safe_load((run / "config.yaml").read_text()) or {}).get("data") or {}).get("tile")
    except (OSError, yaml.YAMLError):
        pass
    if tile is None:
        try:
            manifest = json.loads((run / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError):
            manifest = {}
        t = manifest.get("tiling") or manifest.get("tile")
        tile = t.get("tile") if isinstance(t, dict) else t
    return int(tile) if isinstance(tile, (int, float)) and tile > 0 else None


def train_help_has(option: str) -> bool:
    proc = subprocess.run([*pixlearn_cmd(), "train", "detect", "--help"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="200"))
    return option in proc.stdout


def _fmt(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "datasets" / "person_drone", help="train/ + valid/ (COCO, polygons)")
    ap.add_argument("--weights", type=Path, default=SHARED / "weights", help="folder for PIXLEARN_WEIGHTS")
    ap.add_argument("--minutes", type=float, default=5.0, help="--minutes of each training")
    ap.add_argument("--variants", default="auto", help="auto (default, then the other of no_tile / tiled_train), or comma-separated of "
                                                       "default, no_tile, tiled_train")
    ap.add_argument("--tile", type=int, default=320, help="tile side in pixels (tiled inference and tiled training)")
    ap.add_argument("--overlap", type=float, default=0.25, help="tile overlap, a fraction of the tile side")
    ap.add_argument("--extra", action="append", default=[], help="one more argument for every training command (repeatable)")
    ap.add_argument("--onnx", type=Path, default=SHARED / "weights" / "yolox_nano_coco80.onnx",
                    help="the COCO YOLOX-Nano scored beside the trained runs (its 'person' class), with no training")
    ap.add_argument("--limit", type=int, default=None, help="smoke test: the first N images of train/ and of valid/")
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "detect_person_drone.json")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in ("default", "no_tile", "tiled_train")] if variants != ["auto"] else []
    if bad:
        ap.error(f"unknown variant(s) {bad}; choose auto or from default, no_tile, tiled_train")
    train_src, valid_src = args.data / "train", args.data / "valid"
    if not (train_src / "_annotations.coco.json").is_file() or not (valid_src / "_annotations.coco.json").is_file():
        raise SystemExit(f"{args.data}: needs train/ and valid/ with _annotations.coco.json; give person_drone with --data")

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_detect_person_drone_"))
    train_dir, valid_dir = train_src.resolve(), valid_src.resolve()
    if args.limit:
        train_dir = limited_copy(train_src, out / "train", args.limit)
        valid_dir = limited_copy(valid_src, out / "valid", args.limit)
    env = dict(os.environ, PIXLEARN_WEIGHTS=str(args.weights.resolve()))
    names, images, truths = load_truth(valid_dir, masks=True)
    counts = size_counts(truths)
    print(f"valid/: {len(images)} images, {sum(len(t) for t in truths)} objects, sizes {counts}; load average {os.getloadavg()[0]:.2f}",
          file=sys.stderr)
    results: dict[str, Any] = {"machine": machine_info(), "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "train": str(train_dir), "scored_on": f"{valid_dir} ({len(images)} images)", "valid_object_sizes": counts,
                               "scoring": "Detector.predict(score=0.001, iou=0.5, max_detections=100) into DetectionEvaluator(masks=True)",
                               "runs": {}}

    from pixlearn.tasks.detect.model import load_run_detector
    from pixlearn.tasks.detect.tiles import TiledDetector

    has_tile, has_overlap = train_help_has("--tile "), train_help_has("--tile-overlap")
    rows = []
    queue = ["default"] if variants == ["auto"] else list(variants)
    while queue:
        variant = queue.pop(0)
        extra = list(args.extra)
        if variant in ("tiled_train", "no_tile"):  # --tile when the command has it, else the config field (--set data.tile=N)
            tile = str(args.tile) if variant == "tiled_train" else "0"
            extra += ["--tile", tile] if has_tile else ["--set", f"data.tile={tile}"]
            if variant == "tiled_train":
                extra += ["--tile-overlap", f"{args.overlap:g}"] if has_overlap else ["--set", f"data.tile_overlap={args.overlap:g}"]
        print(f"{variant}: training for {args.minutes:g} min ...", file=sys.stderr)
        run = train_cli(["--data", str(train_dir), "--minutes", f"{args.minutes:g}", *extra], out / variant, env)
        for ln in run["stderr_head"][:12]:
            print(f"    {ln}", file=sys.stderr)
        run["train_tile"] = run_tile(Path(run["run_dir"]))
        if variants == ["auto"] and variant == "default":
            queue.append("no_tile" if run["train_tile"] else "tiled_train")  # the other way of training, for the comparison
        detector = load_run_detector(Path(run["run_dir"]))
        with_masks = bool(getattr(detector, "masks", False))
        run["arch"] = (run.get("spec") or {}).get("arch")
        run["scores"] = {
            "whole": score(detector, images, truths, names, masks=with_masks),
            "tiled": score(TiledDetector(detector, tile=args.tile, overlap=args.overlap), images, truths, names, masks=with_masks),
        }
        run["cli_eval"] = cli_eval(Path(run["run_dir"]), valid_dir, env)  # a run trained on tiles is scored on tiles there
        run["cli_eval_agrees_with"] = next((how for how in ("whole", "tiled") if same_numbers(run["scores"][how], run["cli_eval"])), None)
        results["runs"][variant] = run
        prog = run["progress"]
        for how, s in run["scores"].items():
            rows.append({"training": f"{variant} (tile {run['train_tile'] or 'off'})", "arch": run["arch"], "inference": how if how == "whole" else f"tiled {args.tile}/{args.overlap:g}",
                         "box_AP": _fmt(s.get("map")), "AP50": _fmt(s.get("map50")), "AP_small": _fmt(s.get("map_small")),
                         "AP_medium": _fmt(s.get("map_medium")), "AP_large": _fmt(s.get("map_large")), "mask_AP": _fmt(s.get("mask_map")),
                         "mask_AP50": _fmt(s.get("mask_map50")), "mask_AP_small": _fmt(s.get("mask_map_small")), "s/img": s.get("predict_seconds_per_image"),
                         "steps": prog.get("steps", "-"), "epochs": prog.get("epochs", "-"), "load": f"{run['load_average_before'][0]}->{run['load_average_after'][0]}"})
            print(f"  {how}: box AP {_fmt(s.get('map'))}, AP small {_fmt(s.get('map_small'))}, mask AP {_fmt(s.get('mask_map'))}", file=sys.stderr)

    if args.onnx is not None and args.onnx.is_file():  # the peer with no training: COCO's "person" from the YOLOX-Nano
        from pixlearn.tasks.detect.yolox import load_yolox

        print("peer: the COCO YOLOX-Nano, no training ...", file=sys.stderr)
        yolox = load_yolox(args.onnx)
        peer = {"detector": f"{args.onnx.name} (COCO classes matched to the data's by name: person)",
                "scores": {"whole": score(yolox, images, truths, names),
                           "tiled": score(TiledDetector(yolox, tile=args.tile, overlap=args.overlap), images, truths, names)}}
        results["runs"]["coco_yolox_nano"] = peer
        for how, s in peer["scores"].items():
            rows.append({"training": "none: COCO YOLOX-Nano", "arch": "yolox_nano", "inference": how if how == "whole" else f"tiled {args.tile}/{args.overlap:g}",
                         "box_AP": _fmt(s.get("map")), "AP50": _fmt(s.get("map50")), "AP_small": _fmt(s.get("map_small")),
                         "AP_medium": _fmt(s.get("map_medium")), "AP_large": _fmt(s.get("map_large")), "mask_AP": "-", "mask_AP50": "-",
                         "mask_AP_small": "-", "s/img": s.get("predict_seconds_per_image"), "steps": "-", "epochs": "-", "load": "-"})

    summary: dict[str, Any] = {}
    for variant, run in results["runs"].items():
        if "scores" not in run or "tiled" not in run["scores"]:
            continue
        w, t = run["scores"]["whole"], run["scores"]["tiled"]
        summary[variant] = {f"{how}_{k}": s.get(k) for how, s in (("whole", w), ("tiled", t)) for k in KEYS if k in s}
        for k in ("map_small", "mask_map_small", "map", "mask_map"):
            a, b = w.get(k), t.get(k)
            summary[variant][f"tiled_minus_whole_{k}"] = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
    results["summary"] = summary
    if rows:
        print_table(rows)
    print(json.dumps(summary, indent=1, default=str), file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {args.json}; run folders: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
