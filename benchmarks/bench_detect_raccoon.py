"""What `pixlearn train detect --data DIR --minutes 15` gives a user on the raccoon photos, against a plain torchvision loop.

Usage: python benchmarks/bench_detect_raccoon.py [--minutes 15] [--data ../shared/datasets/raccoon]
                                                 [--weights ../shared/weights] [--seed 0] [--limit N]
                                                 [--out DIR] [--json benchmarks/results/detect_raccoon.json]

The raccoon set (160 photos of varied size, one class, Pascal VOC boxes in ``images/`` + ``annotations/``) is
split once: a seeded permutation (``--seed``, default 0) of the 160 file names in sorted order, the first 32
held out, the other 128 for training. Each part is copied into a VOC folder of its own (``Annotations/`` +
``JPEGImages/``), so that nothing the held-out 32 holds is in the folder a training sees. Then, one after the
other on the same machine:

* **(a) pixlearn**, exactly the command a user types, in a subprocess (run from a scratch folder, so the run
  lands in its ``runs/detect/``)::

      PIXLEARN_WEIGHTS=<weights> pixlearn train detect --data <train128> --minutes 15

  The run chooses its architecture, backbone, image size, anchors and recipe by itself and keeps its own
  validation images out of the 128.
* **(b) the peer**: the torchvision object-detection tutorial's loop, written out below: the *same model*
  (``pixlearn.tasks.detect.model.build_detector`` with the spec the pixlearn run chose, read from its
  ``weights/model.json``, the backbone from the same ImageNet weights under the same ``PIXLEARN_WEIGHTS``; the
  script checks the backbone tensors against the file), the same 128 training images, batch 2, random
  horizontal flip, SGD lr 0.005 momentum 0.9 weight decay 5e-4, the tutorial's linear warm-up over the first
  epoch (factor 1/1000, at most 1000 steps) and StepLR (step 3 epochs, gamma 0.1), for the same wall budget
  (the loop stops before a step that would not fit). Two choices keep the peer from losing for reasons outside
  the loop: the backbone's BatchNorm stays as loaded (torchvision's FrozenBatchNorm2d convention for pretrained
  detection backbones; ``--peer-bn train`` lets batches of 2 update it), and each photo is resized once the way
  pixlearn's predictor resizes it (longer side to the spec's ``img_size``, antialiased), so the peer trains on the
  pixels it is scored on.

Both are scored by the same code on the same 32 held-out images: each model's ``Detector.predict`` (score
threshold 0.001, at most 100 detections per image, class-wise NMS 0.5) into pixlearn's
``DetectionEvaluator`` (pycocotools' numbers): mAP50 and mAP50:95. The pixlearn run is also scored the way a
user would score it, ``pixlearn eval RUN --data <heldout32> --format json``, as a cross-check. Recorded: the
steps and epochs each side got, its training seconds, the machine's load averages before and after each
training (the machine may be shared: compare sides measured in the same run). Target: pixlearn >= peer and
pixlearn mAP50 >= 0.70. ``--minutes 0.2 --limit 6`` is a smoke test (a few training and held-out images).
Results go to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EVAL_SCORE, EVAL_IOU, EVAL_MAX = 0.001, 0.5, 100  # what both sides predict with for COCO-style scoring


# ----------------------------------------------------------------------------------------------- data
def raccoon_split(data: Path, *, seed: int, n_heldout: int = 32) -> tuple[list[str], list[str]]:
    """(train stems, held-out stems): a seeded permutation of the sorted annotation stems, the first ``n_heldout`` held out."""
    stems = sorted(p.stem for p in (data / "annotations").glob("*.xml"))
    if len(stems) <= n_heldout:
        raise SystemExit(f"{data}/annotations: {len(stems)} annotation files, need more than {n_heldout}")
    perm = np.random.default_rng(seed).permutation(len(stems))
    held = sorted(stems[i] for i in perm[:n_heldout])
    train = sorted(stems[i] for i in perm[n_heldout:])
    return train, held


def write_voc(data: Path, stems: Sequence[str], dest: Path) -> Path:
    """``dest/Annotations/*.xml`` + ``dest/JPEGImages/*.jpg``: copies (pixlearn's readers refuse links leading out)."""
    (dest / "Annotations").mkdir(parents=True, exist_ok=True)
    (dest / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for s in stems:
        shutil.copyfile(data / "annotations" / f"{s}.xml", dest / "Annotations" / f"{s}.xml")
        images = [p for p in (data / "images").glob(f"{s}.*")]
        if not images:
            raise SystemExit(f"{data}/images: no image for annotation {s}.xml")
        shutil.copyfile(images[0], dest / "JPEGImages" / images[0].name)
    return dest


def load_truth(folder: Path, *, masks: bool = False) -> tuple[list[str], list[np.ndarray], list[Any]]:
    """Class names, decoded RGB images and one ``GroundTruth`` per image of a detection dataset folder."""
    from pixlearn import read_image
    from pixlearn.data.readers import read_dataset
    from pixlearn.tasks.detect.detections import GroundTruth

    index = read_dataset(folder)
    names = list(index.classes)
    images, truths = [], []
    for rec in index.records:
        img = read_image(rec.path)
        h, w = img.shape[:2]
        boxes = np.zeros((0, 4), np.float32) if rec.boxes is None else np.asarray(rec.boxes, np.float32)
        labels = np.zeros(0, np.int64) if rec.box_labels is None else np.asarray(rec.box_labels, np.int64)
        inst = None
        if masks:
            from pixlearn.data.masks import decode_segmentation

            segs = rec.segmentations or [None] * len(boxes)
            inst = np.stack([decode_segmentation(s, (h, w)) if s is not None else _box_mask(b, (h, w)) for s, b in zip(segs, boxes)]) \
                if len(boxes) else np.zeros((0, h, w), bool)
        crowd = rec.meta.get("iscrowd")
        images.append(img)
        truths.append(GroundTruth(boxes, labels, tuple(names), (h, w), masks=inst,
                                  iscrowd=None if crowd is None else np.asarray(crowd, bool)))
    return names, images, truths


def _box_mask(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    m = np.zeros(size, bool)
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    m[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return m


# ----------------------------------------------------------------------------------------------- scoring
def score(detector: Any, images: Sequence[np.ndarray], truths: Sequence[Any], names: Sequence[str], *, masks: bool = False,
          batch: int = 2) -> dict[str, Any]:
    """``detector`` on ``images`` (score 0.001, 100 per image) into pixlearn's DetectionEvaluator; its numbers plus timing."""
    from pixlearn.tasks.detect.metrics import DetectionEvaluator

    ev = DetectionEvaluator(list(names), masks=masks)
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        preds = detector.predict(list(images[i:i + batch]), score=EVAL_SCORE, iou=EVAL_IOU, max_detections=EVAL_MAX)
        ev.update(list(preds), list(truths[i:i + batch]))
    out = {k: v for k, v in ev.compute().items() if not k.endswith("pr_curves")}  # curves: in the run's own report
    out["predict_seconds_per_image"] = round((time.perf_counter() - t0) / max(len(images), 1), 3)
    return out


def cli_eval(run: Path, data: Path, env: dict[str, str]) -> dict[str, Any]:
    """``pixlearn eval RUN --data DATA --format json`` as a user runs it (its numbers, or the error it gave)."""
    cmd = [*pixlearn_cmd(), "eval", str(run), "--data", str(data), "--format", "json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"command": " ".join(["pixlearn", *cmd[len(pixlearn_cmd()):]]), "error": proc.stderr.strip()[-2000:]}
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"command": " ".join(["pixlearn", *cmd[len(pixlearn_cmd()):]]), "error": f"stdout is not JSON: {proc.stdout[:500]}"}
    if isinstance(out, dict):  # the curves and per-image records stay in the report
        out = {k: v for k, v in out.items() if not k.endswith("pr_curves") and k not in ("images", "worst", "misses", "false_positives")}
    return {"command": " ".join(["pixlearn", *cmd[len(pixlearn_cmd()):]]), "result": out,
            "stderr": proc.stderr.strip().splitlines()[-5:]}


def same_numbers(ours: dict[str, Any], cli: dict[str, Any], keys: Sequence[str] = ("map", "map50")) -> bool | None:
    """Whether ``pixlearn eval``'s numbers equal this script's (to 1e-9); None when the eval gave none."""
    res = cli.get("result")
    if not isinstance(res, dict):
        return None
    return all(isinstance(ours.get(k), (int, float)) and isinstance(res.get(k), (int, float)) and abs(ours[k] - res[k]) < 1e-9
               for k in keys)


# ----------------------------------------------------------------------------------------------- pixlearn's side
def pixlearn_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("pixlearn")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "pixlearn.cli"]


def train_cli(task_args: Sequence[str], workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """``pixlearn train detect ARGS`` run from ``workdir`` as a user types it; the run folder it wrote and what it said."""
    workdir.mkdir(parents=True, exist_ok=True)
    before = set(workdir.glob("runs/detect/*"))
    cmd = [*pixlearn_cmd(), "train", "detect", *task_args]
    shown = " ".join(["pixlearn", "train", "detect", *task_args])
    print(f"  $ {shown}", file=sys.stderr)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    if proc.returncode != 0:
        raise SystemExit(f"{shown} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    runs = sorted(set(workdir.glob("runs/detect/*")) - before, key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"{shown}: no new run folder under {workdir / 'runs' / 'detect'}; stderr:\n{proc.stderr[-2000:]}")
    run = runs[-1]
    manifest = _read_json(run / "manifest.json")
    metrics = _read_json(run / "metrics.json")
    model_json = _read_json(run / "weights" / "model.json")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return {"command": shown, "run_dir": str(run), "wall_seconds": round(wall, 1),
            "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
            "spec": model_json.get("spec"), "class_names": model_json.get("class_names"), "metrics": metrics,
            "progress": run_progress(run, metrics),
            "manifest": {k: manifest.get(k) for k in ("defaults", "plan", "fine_tune", "budget", "anchors", "recipe", "split") if k in manifest},
            "stderr_head": lines[:25], "stderr_tail": lines[-10:]}


def _read_json(p: Path) -> dict[str, Any]:
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def run_progress(run: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Optimiser steps, epochs and training seconds of a run, from metrics.json, else the last row of metrics.csv."""
    out: dict[str, Any] = {}
    train = metrics.get("train")
    flat = {**metrics, **(train if isinstance(train, dict) else {})}
    for key, names in {"steps": ("steps", "global_step", "steps_run", "optimizer_steps"),
                       "epochs": ("epochs_run", "epochs", "epoch"),
                       "fit_seconds": ("fit_seconds", "train_seconds", "seconds")}.items():
        for n in names:
            if isinstance(flat.get(n), (int, float)):
                out[key] = flat[n]
                break
    csv = run / "metrics.csv"
    if csv.is_file() and ("steps" not in out or "epochs" not in out):
        import csv as _csv

        rows = list(_csv.DictReader(csv.read_text().splitlines()))
        if rows:
            last = rows[-1]
            for key, names in {"steps": ("step", "global_step"), "epochs": ("epoch",)}.items():
                for n in names:
                    if key not in out and last.get(n) not in (None, ""):
                        try:
                            out[key] = float(last[n]) + (1 if n == "epoch" else 0)
                        except ValueError:
                            pass
    return out


# ----------------------------------------------------------------------------------------------- the peer: the torchvision tutorial's loop
def backbone_check(model: Any, weights_file: Path) -> dict[str, Any]:
    """How many tensors of the ImageNet weights file sit, equal, in ``model`` (matched by key suffix and shape)."""
    import torch
    from safetensors.torch import load_file

    if not weights_file.is_file():
        return {"file": str(weights_file), "error": "no such file"}
    ref = load_file(str(weights_file))
    state = model.state_dict()
    by_suffix: dict[str, list[str]] = {}
    for k in state:
        parts = k.split(".")
        for i in range(len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(k)
    found = equal = 0
    for k, v in ref.items():
        cands = [c for c in by_suffix.get(k, []) if state[c].shape == v.shape]
        if not cands:
            continue
        found += 1
        equal += any(torch.equal(state[c].float(), v.float()) for c in cands)
    return {"file": weights_file.name, "tensors_in_file": len(ref), "found_in_model": found, "equal_to_file": equal}


class _TrainSet:
    """The tutorial's dataset: (image float [0, 1] CHW, target dict with 1-based labels), random horizontal flip.

    With ``img_size``, each image is resized once the way pixlearn's predictor resizes it (``letterbox``: longer side
    to ``img_size``, antialiased; without its padding), so the peer trains on the pixels it is scored on (the network's
    own transform would make the same resize, without antialiasing).
    """

    def __init__(self, images: Sequence[np.ndarray], truths: Sequence[Any], *, img_size: int | None = None, masks: bool = False) -> None:
        import torch
        import torch.nn.functional as F
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        self.items = []
        for img, t in zip(images, truths):
            h, w = img.shape[:2]
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
            boxes = torch.as_tensor(t.boxes)
            inst = None if not masks or t.masks is None else torch.as_tensor(t.masks, dtype=torch.uint8)
            if img_size:
                from pixlearn.tasks.detect.model import letterbox

                padded, scale = letterbox(img, img_size)
                h, w = max(1, round(h * scale)), max(1, round(w * scale))
                x = padded[:, :h, :w].contiguous()
                boxes = boxes * scale
                if inst is not None and len(inst):
                    inst = (F.interpolate(inst[None].float(), size=(h, w), mode="nearest")[0] > 0.5).to(torch.uint8)
                elif inst is not None:
                    inst = torch.zeros((0, h, w), dtype=torch.uint8)
            target = {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
                      "labels": torch.as_tensor(t.labels + 1, dtype=torch.int64)}
            if inst is not None:
                target["masks"] = tv_tensors.Mask(inst)
            self.items.append((tv_tensors.Image(x), target))
        self.transform = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.ToDtype(torch.float, scale=True), v2.ToPureTensor()])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        img, target = self.transform(*self.items[i])
        return img, target


def freeze_backbone_bn(model: Any) -> int:
    """torchvision's convention for a pretrained detection backbone (FrozenBatchNorm2d): BatchNorm statistics and affine
    parameters of the backbone body fixed. Returns how many layers it froze; call again after ``model.train()``."""
    from torch import nn

    body = getattr(getattr(model, "backbone", None), "body", None)
    if body is None:
        return 0
    n = 0
    for m in body.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            n += 1
    return n


def train_reference(model: Any, images: Sequence[np.ndarray], truths: Sequence[Any], *, seconds: float, seed: int = 0,
                    masks: bool = False, img_size: int | None = None, bn: str = "frozen") -> dict[str, Any]:
    """The torchvision detection tutorial's loop (batch 2, SGD 0.005/0.9/5e-4, warm-up, StepLR 3/0.1) for ``seconds`` of wall time.

    ``bn="frozen"`` keeps the backbone's BatchNorm as loaded (torchvision's FrozenBatchNorm2d convention for pretrained
    detection backbones); ``"train"`` lets batches of 2 update it.
    """
    import torch

    torch.manual_seed(seed)
    data = _TrainSet(images, truths, img_size=img_size, masks=masks)
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, collate_fn=lambda b: tuple(zip(*b)),
                                         generator=torch.Generator().manual_seed(seed))
    frozen_bn = freeze_backbone_bn(model) if bn == "frozen" else 0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=0.0005)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    model.train()
    if bn == "frozen":
        freeze_backbone_bn(model)
    steps, epoch, last_step, stop, losses = 0, 0, 0.0, False, []
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    while not stop:
        warmup = None
        if epoch == 0:  # the tutorial's train_one_epoch: linear warm-up through the first epoch
            warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / 1000, total_iters=min(1000, len(loader) - 1))
        done_in_epoch = 0
        for imgs, targets in loader:
            if time.perf_counter() - t0 + last_step > seconds:
                stop = True
                break
            s0 = time.perf_counter()
            loss_dict = model(list(imgs), list(targets))
            loss = sum(loss_dict.values())
            value = float(loss.detach())
            if not math.isfinite(value):
                print(f"  peer: loss is {value} at step {steps}; stopping (as the tutorial does)", file=sys.stderr)
                stop = True
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if warmup is not None:
                warmup.step()
            last_step = time.perf_counter() - s0
            steps += 1
            done_in_epoch += 1
            losses.append(value)
        if done_in_epoch == len(loader):
            epoch += 1
            lr_scheduler.step()
        elif not stop:  # an empty epoch cannot happen, but never spin
            break
    fit = time.perf_counter() - t0
    load1 = os.getloadavg()
    model.eval()
    return {"steps": steps, "epochs": round(steps / max(len(loader), 1), 2), "full_epochs": epoch, "fit_seconds": round(fit, 1),
            "steps_per_epoch": len(loader), "backbone_bn": f"{bn} ({frozen_bn} layers frozen)" if bn == "frozen" else bn,
            "trainable_parameters": sum(p.numel() for p in params), "final_lr": optimizer.param_groups[0]["lr"],
            "loss_first": round(losses[0], 4) if losses else None, "loss_last10": round(float(np.mean(losses[-10:])), 4) if losses else None,
            "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1]}


def build_peer(spec: dict[str, Any], class_names: Sequence[str], weights: Path) -> tuple[Any, dict[str, Any]]:
    """pixlearn's own ``build_detector(spec)`` (the run's spec), fresh, its backbone checked against the ImageNet file."""
    from pixlearn.tasks.detect.model import build_detector

    model = build_detector(dict(spec))
    check = backbone_check(model, weights / "tf_efficientnet_lite0.in1k.safetensors")
    return model, check


def peer_detector(model: Any, class_names: Sequence[str]) -> Any:
    from pixlearn.tasks.detect.model import TorchDetector

    return TorchDetector(model, list(class_names), name="torchvision tutorial loop")


def _fmt(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.4f}"


def machine_info() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "datasets" / "raccoon", help="images/ + annotations/ (VOC xml)")
    ap.add_argument("--weights", type=Path, default=SHARED / "weights", help="folder for PIXLEARN_WEIGHTS")
    ap.add_argument("--minutes", type=float, default=15.0, help="the budget of each side (pixlearn's --minutes, the peer's wall clock)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the 128/32 split and of the peer's shuffling")
    ap.add_argument("--limit", type=int, default=None, help="smoke test: only the first N training and N held-out images")
    ap.add_argument("--skip-peer", action="store_true", help="train and score pixlearn only")
    ap.add_argument("--peer-bn", choices=("frozen", "train"), default="frozen",
                    help="the peer's backbone BatchNorm: frozen as loaded (torchvision's convention for pretrained detection backbones) or trained")
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "detect_raccoon.json")
    args = ap.parse_args(argv)
    if not (args.data / "annotations").is_dir():
        raise SystemExit(f"{args.data}: no annotations/ folder; give the raccoon set with --data")

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_detect_raccoon_"))
    train_stems, held_stems = raccoon_split(args.data, seed=args.seed)
    if args.limit:
        train_stems, held_stems = train_stems[: args.limit], held_stems[: args.limit]
    train_dir = write_voc(args.data, train_stems, out / f"raccoon_train{len(train_stems)}")
    held_dir = write_voc(args.data, held_stems, out / f"raccoon_heldout{len(held_stems)}")
    split = (f"raccoon: {len(held_stems)} held-out images (seeded permutation of the sorted names, seed {args.seed}), "
             f"trained on {len(train_stems)} others")
    print(f"{split}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    env = dict(os.environ, PIXLEARN_WEIGHTS=str(args.weights.resolve()))
    os.environ["PIXLEARN_WEIGHTS"] = env["PIXLEARN_WEIGHTS"]  # the peer's build_detector finds the same backbone weights
    results: dict[str, Any] = {"machine": machine_info(), "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                               "split": split, "heldout": held_stems, "train_folder": str(train_dir), "heldout_folder": str(held_dir),
                               "scoring": f"Detector.predict(score={EVAL_SCORE}, iou={EVAL_IOU}, max_detections={EVAL_MAX}) into "
                                          "pixlearn.tasks.detect.metrics.DetectionEvaluator (pycocotools' AP)"}

    print(f"(a) pixlearn: training for {args.minutes:g} min ...", file=sys.stderr)
    ours = train_cli(["--data", str(train_dir.resolve()), "--minutes", f"{args.minutes:g}"], out / "pixlearn", env)
    for ln in ours["stderr_head"][:12]:
        print(f"    {ln}", file=sys.stderr)
    names, images, truths = load_truth(held_dir)
    from pixlearn.tasks.detect.model import load_run_detector

    ours["heldout"] = score(load_run_detector(Path(ours["run_dir"])), images, truths, names)
    ours["cli_eval"] = cli_eval(Path(ours["run_dir"]), held_dir, env)
    ours["cli_eval_agrees"] = same_numbers(ours["heldout"], ours["cli_eval"])
    print(f"  held-out mAP50 {_fmt(ours['heldout'].get('map50'))}, mAP50:95 {_fmt(ours['heldout'].get('map'))}", file=sys.stderr)
    results["pixlearn"] = ours

    if not args.skip_peer:
        spec = ours["spec"]
        if not spec:
            raise SystemExit(f"{ours['run_dir']}/weights/model.json holds no 'spec'; cannot build the same model for the peer")
        print(f"(b) peer: the torchvision tutorial's loop on build_detector({json.dumps(spec)[:200]}) for {args.minutes:g} min ...", file=sys.stderr)
        tnames, timages, ttruths = load_truth(train_dir)
        model, check = build_peer(spec, tnames, args.weights)
        print(f"  backbone tensors equal to the ImageNet file: {check}", file=sys.stderr)
        peer = {"model_spec": spec, "backbone_check": check,
                "train": train_reference(model, timages, ttruths, seconds=args.minutes * 60, seed=args.seed,
                                         img_size=int(model.pixlearn_detect_spec["img_size"]), bn=args.peer_bn)}
        peer["heldout"] = score(peer_detector(model, tnames), images, truths, names)
        print(f"  {peer['train']['steps']} steps ({peer['train']['epochs']} epochs); held-out mAP50 {_fmt(peer['heldout'].get('map50'))}, "
              f"mAP50:95 {_fmt(peer['heldout'].get('map'))}", file=sys.stderr)
        results["peer"] = peer

    rows = []
    prog = ours["progress"]
    rows.append({"method": "pixlearn train detect --minutes " + f"{args.minutes:g}", "mAP50": _fmt(ours["heldout"].get("map50")),
                 "mAP50:95": _fmt(ours["heldout"].get("map")), "steps": prog.get("steps", "-"), "epochs": prog.get("epochs", "-"),
                 "train_s": prog.get("fit_seconds", ours["wall_seconds"]), "load_before": ours["load_average_before"][0],
                 "load_after": ours["load_average_after"][0]})
    if "peer" in results:
        tr = results["peer"]["train"]
        rows.append({"method": "torchvision tutorial loop, same model", "mAP50": _fmt(results["peer"]["heldout"].get("map50")),
                     "mAP50:95": _fmt(results["peer"]["heldout"].get("map")), "steps": tr["steps"], "epochs": tr["epochs"],
                     "train_s": tr["fit_seconds"], "load_before": tr["load_average_before"][0], "load_after": tr["load_average_after"][0]})
    summary: dict[str, Any] = {"pixlearn_map50": ours["heldout"].get("map50"), "pixlearn_map": ours["heldout"].get("map"),
                               "target_map50": 0.70, "meets_map50_target": (ours["heldout"].get("map50") or 0.0) >= 0.70,
                               "model": ours.get("spec")}
    if "peer" in results:
        p = results["peer"]["heldout"]
        summary.update(peer_map50=p.get("map50"), peer_map=p.get("map"),
                       pixlearn_minus_peer_map50=(ours["heldout"].get("map50") or 0.0) - (p.get("map50") or 0.0),
                       pixlearn_minus_peer_map=(ours["heldout"].get("map") or 0.0) - (p.get("map") or 0.0))
        summary["pixlearn_at_least_peer"] = summary["pixlearn_minus_peer_map50"] >= 0 and summary["pixlearn_minus_peer_map"] >= 0
    results["summary"] = summary
    print_table(rows)
    print(json.dumps(summary, indent=1, default=str), file=sys.stderr)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {args.json}; run folders: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
