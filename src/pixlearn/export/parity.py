"""Parity: does an exported model give what the torch predictor of its run gives, on the same pixels?

Both sides see the same images, already at the exported input size (stretched for a classifier, cut to one tile
for a segmenter or restorer), so the check measures the exported graph (preprocessing, network, postprocessing)
and nothing else. The images are the run's held-out ones when its data folder is still there (the split its
manifest names), else a folder the caller names, else synthetic images -- and the card says which.

The exported file runs in batches of 1 and then up to 8 images, so a broken dynamic batch fails the check too.
What decides is the largest absolute difference of the compared output (probabilities; restored grey levels)
against a tolerance; the agreement (top-1, pixel, PSNR in dB) is reported beside it.

Detectors (one image per call) are compared detection by detection (:func:`compare_detections`): the torch
predictor and the file run at the thresholds the graph bakes in, each torch detection is matched to an exported one
of the same label with box IoU >= :data:`DETECT_MATCH_IOU`; the check passes when every detection on both sides is
matched (those within :data:`DETECT_SCORE_TOLERANCE` of the score floor excused), the largest box coordinate
difference is within the tolerance (pixels) and the largest score difference within :data:`DETECT_SCORE_TOLERANCE`.
The agreement is the share of detections matched.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ParityError, PixlearnError

__all__ = [
    "TOLERANCES",
    "AGREEMENT",
    "ParityImages",
    "parity_images",
    "fit_image",
    "heldout_paths",
    "reference_outputs",
    "run_batched",
    "compare_outputs",
    "check_parity",
    "describe",
    "COMPARED",
    "PSNR_IDENTICAL_DB",
    "MAX_IMAGES",
    "DETECT_MATCH_IOU",
    "DETECT_SCORE_TOLERANCE",
    "compare_detections",
    "letterbox_uint8",
]

#: The largest absolute difference allowed per task: probabilities (classify, segment), grey levels (restore:
#: rounding the same float a hair apart may move a pixel by one level).
TOLERANCES = {"classify": 1e-4, "segment": 1e-4, "restore": 1.0, "detect": 0.05}
#: What "agreement" measures per task.
AGREEMENT = {"classify": "top1", "segment": "pixel", "restore": "psnr_db", "detect": "matched"}
#: The output compared per task.
COMPARED = {"classify": "probabilities", "segment": "probabilities", "restore": "restored", "detect": "boxes"}
#: Detectors: the box IoU that pairs an exported detection with a torch one, and the largest score difference allowed.
DETECT_MATCH_IOU = 0.99
DETECT_SCORE_TOLERANCE = 1e-4
#: PSNR reported when the two restorations are identical (an infinite PSNR is not JSON).
PSNR_IDENTICAL_DB = 100.0
#: Most images a parity check uses, and the most per batch.
MAX_IMAGES = 256
_BATCH = 8


@dataclass
class ParityImages:
    """uint8 (N, H, W, 3) images at the exported input size, and a line saying where they came from."""

    images: np.ndarray
    source: str
    kind: str  # "held-out", "images" or "synthetic"


def letterbox_uint8(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """A uint8 (H, W, 3) image letterboxed to (size, size, 3): its longer side resized to ``size`` (antialiased when
    shrinking), zeros below and to the right, as the detectors' predictor lays out its input; and the scale.

    >>> a, s = letterbox_uint8(np.full((10, 20, 3), 9, np.uint8), 8)
    >>> a.shape, s, int(a[3, 0, 0]), int(a[4, 0, 0])
    ((8, 8, 3), 0.4, 9, 0)
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = image if (nh, nw) == (h, w) else fit_image(image, nh, nw, resize="bilinear")
    return out, scale


def fit_image(image: np.ndarray, height: int, width: int, *, resize: str) -> np.ndarray:
    """One decoded image -> uint8 (height, width, 3): stretched (``resize="bilinear"``, antialiased, as the
    classifier's predictor does), for ``"tile"`` inputs its centre tile (stretched up only when smaller), for
    ``"letterbox"`` (detectors) letterboxed (:func:`letterbox_uint8`).

    >>> fit_image(np.zeros((10, 20), np.uint8), 4, 4, resize="tile").shape
    (4, 4, 3)
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise ConfigError(f"parity images must be uint8 (H, W) or (H, W, 3) arrays, got {a.dtype} {a.shape}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = a[..., :3] if a.shape[2] >= 3 else np.repeat(a[..., :1], 3, axis=2)
    h, w = a.shape[:2]
    if resize == "letterbox":
        return letterbox_uint8(a, int(height))[0]
    if resize == "tile" and h >= height and w >= width:
        y, x = (h - height) // 2, (w - width) // 2
        return np.ascontiguousarray(a[y:y + height, x:x + width])
    if (h, w) == (height, width):
        return np.ascontiguousarray(a)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]  # a copy: decoded arrays may be read-only
    t = F.interpolate(t, size=[int(height), int(width)], mode="bilinear", align_corners=False, antialias=True)
    return t.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _classify_heldout(run_dir: Path, data: Mapping[str, Any]) -> tuple[list[Path], str] | None:
    """The classifier's test (else val) split, recomputed from its config's fractions and seed like ``pixlearn eval``."""
    from pixlearn._core.safe_yaml import load_yaml_file
    from pixlearn.data.readers import read_dataset
    from pixlearn.tasks.classify.data import plan_splits, read_classify_dataset

    root = Path(str(data.get("root", "")))
    if not root.is_dir():
        return None
    index = read_classify_dataset(read_dataset(root))
    if data.get("fingerprint") != index.fingerprint():
        return None  # the folder changed since training: its splits cannot be recomputed
    cfg: dict[str, Any] = {}
    if (run_dir / "config.yaml").is_file():
        cfg = load_yaml_file(run_dir / "config.yaml") or {}
    d, t = cfg.get("data") or {}, cfg.get("train") or {}
    plan = plan_splits(index, val_fraction=float(d.get("val_fraction", 0.1)), test_fraction=float(d.get("test_fraction", 0.1)),
                       seed=int(t.get("seed", 0)))
    name, idx = (plan.test_name, plan.test) if plan.test else ("val", plan.val)
    if not idx:
        return None
    return [Path(index.records[i].path) for i in idx], f"{root}: the run's {name} split (never trained on)"


def heldout_paths(run: str | os.PathLike[str], task: str) -> tuple[list[Path], str] | None:
    """The image files of a run's held-out split (test, else val) as its ``manifest.json`` records them, or None
    when the run names none or its data folder is gone."""
    run_dir = Path(run)
    manifest = _read_json(run_dir / "manifest.json")
    data = manifest.get("data") or {}
    if not isinstance(data, dict):
        return None
    if task == "classify":
        try:
            return _classify_heldout(run_dir, data)
        except (PixlearnError, OSError):
            return None
    splits = data.get("splits") or {}
    files = splits.get("files", splits) if isinstance(splits, dict) else {}
    if not isinstance(files, dict):
        return None
    names = [k for k in files if k not in ("train", "val")] + ["val"]
    root = Path(str(data.get("root", "")))
    for name in names:
        listed = files.get(name)
        if isinstance(listed, list) and listed:
            paths = [Path(str(p)) for p in listed]
            if root.is_dir():  # a detection manifest lists paths relative to the data folder
                paths = [p if p.is_absolute() or p.is_file() else root / p for p in paths]
            present = [p for p in paths if p.is_file()]
            if present:
                return present, f"{data.get('root', run_dir)}: the run's {name} images from its manifest (never trained on)"
    return None


def _synthetic(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour ramps with blobs and noise: images with structure, so outputs are not all alike."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        img = np.zeros((height, width, 3), np.float32)
        for c in range(3):
            a, b, phase = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
            img[..., c] = 128 + 90 * np.sin((a * xx / max(width, 1) + b * yy / max(height, 1)) * 2 * np.pi + phase)
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.4) * min(height, width)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 12, img.shape)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def parity_images(
    run: str | os.PathLike[str],
    task: str,
    *,
    height: int,
    width: int,
    resize: str,
    images: str | os.PathLike[str] | None = None,
    limit: int = 16,
    seed: int = 0,
) -> ParityImages:
    """Up to ``limit`` images for the check: those under ``images`` when given, else the run's held-out split,
    else synthetic ones (said so in ``source``). Unreadable files are skipped; none readable is an error."""
    from pixlearn.io import expand_sources, read_image

    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_IMAGES:
        raise ConfigError(f"parity images: limit must be an integer in 1..{MAX_IMAGES}, got {limit!r}")
    if images is not None:
        folder = Path(images)
        if not folder.exists():
            raise ConfigError(f"--images {folder}: no such file or folder; give a folder of images to check parity on")
        paths, source, kind = [p for p, _ in expand_sources(folder)], f"{folder}: images given with --images", "images"
        if not paths:
            raise ConfigError(f"--images {folder}: holds no image files (png, jpg, ...); give a folder of images")
    else:
        found = heldout_paths(run, task)
        if found is None:
            n = min(limit, 8)
            return ParityImages(_synthetic(n, height, width, seed), f"synthetic: {n} generated images (the run's held-out images "
                                f"are not on this machine; pass --images DIR to check on real ones)", "synthetic")
        paths, source = found
        kind = "held-out"
    if len(paths) > limit:  # spread over the split rather than its first files
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    fitted, skipped = [], 0
    for p in paths:
        try:
            fitted.append(fit_image(read_image(p), height, width, resize=resize))
        except (PixlearnError, OSError):
            skipped += 1
    if not fitted:
        raise ConfigError(f"{source}: none of its {len(paths)} image(s) could be read; pass --images DIR with readable images")
    note = f"; {skipped} unreadable file(s) left out" if skipped else ""
    return ParityImages(np.stack(fitted), f"{source}: {len(fitted)} image(s){note}", kind)


def reference_outputs(task: str, predictor: Any, images: np.ndarray) -> dict[str, np.ndarray]:
    """What the torch predictor of the run gives for uint8 (N, H, W, 3) ``images``, by output name."""
    if task == "classify":
        probs = predictor.predict_proba(predictor.to_tensor(list(images))).numpy()
        return {"probabilities": probs.astype(np.float32)}
    if task == "segment":
        probs = np.stack([predictor.predict_proba(img) for img in images]).astype(np.float32)
        masks = np.stack([predictor.predict(img) for img in images]).astype(np.int64)
        return {"probabilities": probs, "mask": masks}
    if task == "restore":
        return {"restored": np.stack([predictor.restore(img) for img in images])}
    raise ConfigError(f"no parity check for task {task!r}")


def run_batched(fn: Callable[[np.ndarray], Mapping[str, np.ndarray]], images: np.ndarray) -> tuple[dict[str, np.ndarray], list[int]]:
    """Run ``fn`` on the first image alone, then on the rest in batches of up to 8; concatenated outputs and the
    batch sizes used."""
    sizes = [1] + [min(_BATCH, len(images) - s) for s in range(1, len(images), _BATCH)]
    parts: dict[str, list[np.ndarray]] = {}
    start = 0
    for size in sizes:
        try:
            out = fn(np.ascontiguousarray(images[start:start + size]))
        except Exception as exc:  # the runtime's own errors (a shape it cannot take...), as one typed error
            raise ParityError(f"the exported model failed on a batch of {size} image(s): {type(exc).__name__}: {exc}") from exc
        for name, value in out.items():
            arr = np.asarray(value)
            if arr.shape[:1] != (size,):
                raise ParityError(f"output {name!r} has shape {arr.shape} for a batch of {size}: the batch axis is not dynamic")
            parts.setdefault(name, []).append(arr)
        start += size
    return {k: np.concatenate(v) for k, v in parts.items()}, sizes


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return PSNR_IDENTICAL_DB if mse == 0 else min(PSNR_IDENTICAL_DB, 10 * math.log10(255.0 ** 2 / mse))


def compare_outputs(task: str, ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], *, tolerance: float) -> dict[str, Any]:
    """``{"compared", "max_abs_diff", "tolerance", "agreement_metric", "agreement", "passed"}`` of two output sets."""
    name = COMPARED[task]
    if name not in got:
        raise ParityError(f"the exported model gives no {name!r} output (it gives {', '.join(got) or 'nothing'})")
    r, g = np.asarray(ref[name]), np.asarray(got[name])
    if r.shape != g.shape:
        raise ParityError(f"output {name!r}: shape {g.shape} from the exported model, {r.shape} from the torch predictor")
    diff = np.abs(r.astype(np.float64) - g.astype(np.float64))
    max_diff = float(diff.max()) if diff.size else 0.0
    if not math.isfinite(max_diff):
        max_diff = float("inf")
    if task == "classify":
        agreement = float(np.mean(r.argmax(axis=1) == g.argmax(axis=1)))
    elif task == "segment":
        if "mask" not in got:
            raise ParityError(f"the exported model gives no 'mask' output (it gives {', '.join(got)})")
        agreement = float(np.mean(np.asarray(ref["mask"]) == np.asarray(got["mask"])))
    else:
        agreement = round(_psnr(r, g), 3)
    return {
        "compared": name, "max_abs_diff": max_diff if math.isfinite(max_diff) else None, "tolerance": float(tolerance),
        "agreement_metric": AGREEMENT[task], "agreement": agreement, "passed": bool(math.isfinite(max_diff) and max_diff <= tolerance),
    }


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), (np.abs(a[:, None] - b[None]).max(axis=2) == 0).astype(float))


def compare_detections(
    ref: list[Mapping[str, np.ndarray]], got: list[Mapping[str, np.ndarray]], *, tolerance: float, score_floor: float,
) -> dict[str, Any]:
    """Match two detectors' outputs image by image (``boxes``, ``scores``, ``labels`` per image).

    Each torch detection, by descending score, takes the unmatched exported detection of its label with the highest
    box IoU, when that IoU is >= :data:`DETECT_MATCH_IOU`. Unmatched detections within
    :data:`DETECT_SCORE_TOLERANCE` of ``score_floor`` are excused (a hair's difference decides whether they pass
    the floor). The agreement is the matched detections over, summed per image, the larger of the two counts less
    the excused. Returns the card's comparison fields plus ``detections`` (torch's count), ``unmatched`` and
    ``max_score_diff``.

    >>> one = {"boxes": np.array([[0, 0, 10, 10]], np.float32), "scores": np.array([0.9], np.float32), "labels": np.array([1])}
    >>> r = compare_detections([one], [one], tolerance=0.05, score_floor=0.05)
    >>> r["agreement"], r["passed"], r["max_abs_diff"]
    (1.0, True, 0.0)
    """
    matched = unmatched = total = n_ref = 0
    box_diff = score_diff = 0.0
    for r, g in zip(ref, got, strict=True):
        rb, rs, rl = (np.asarray(r[k]) for k in ("boxes", "scores", "labels"))
        gb, gs, gl = (np.asarray(g[k]) for k in ("boxes", "scores", "labels"))
        n_ref += len(rs)
        total += max(len(rs), len(gs))
        free = np.ones(len(gs), bool)
        iou = _box_iou(rb.astype(np.float64).reshape(-1, 4), gb.astype(np.float64).reshape(-1, 4))
        lost = []
        for i in np.argsort(-rs, kind="stable"):
            cand = np.flatnonzero(free & (gl == rl[i]))
            j = cand[np.argmax(iou[i, cand])] if len(cand) else -1
            if j < 0 or iou[i, j] < DETECT_MATCH_IOU:
                lost.append(float(rs[i]))
                continue
            free[j] = False
            matched += 1
            box_diff = max(box_diff, float(np.abs(rb[i].astype(np.float64) - gb[j]).max()))
            score_diff = max(score_diff, abs(float(rs[i]) - float(gs[j])))
        lost += [float(v) for v in gs[free]]
        excused = [v for v in lost if v <= score_floor + DETECT_SCORE_TOLERANCE]
        total -= len(excused)
        unmatched += len(lost) - len(excused)
    agreement = 1.0 if total <= 0 else matched / total
    finite = math.isfinite(box_diff) and math.isfinite(score_diff)
    return {
        "compared": "boxes", "max_abs_diff": box_diff if finite else None, "tolerance": float(tolerance),
        "agreement_metric": AGREEMENT["detect"], "agreement": round(float(agreement), 6),
        "passed": bool(finite and unmatched == 0 and box_diff <= tolerance and score_diff <= DETECT_SCORE_TOLERANCE),
        "detections": int(n_ref), "unmatched": int(unmatched), "max_score_diff": score_diff if finite else None,
        "score_tolerance": DETECT_SCORE_TOLERANCE, "match_iou": DETECT_MATCH_IOU,
    }


def _check_detect_parity(predictor: Any, fn: Callable[[np.ndarray], Mapping[str, np.ndarray]], images: ParityImages, *,
                         tolerance: float, details: Mapping[str, Any]) -> dict[str, Any]:
    """A detector, one image per call, at the thresholds its graph bakes in (``details``)."""
    score, iou, most = float(details["score_thresh"]), float(details["nms_iou"]), int(details["max_detections"])
    ref, got = [], []
    for img in images.images:
        d = predictor.predict([img], score=score, iou=iou, max_detections=most)[0]
        ref.append({"boxes": d.boxes, "scores": d.scores, "labels": d.labels})
        try:
            out = fn(np.ascontiguousarray(img[None]))
        except Exception as exc:  # the runtime's own errors, as one typed error
            raise ParityError(f"the exported detector failed on an image: {type(exc).__name__}: {exc}") from exc
        missing = [k for k in ("boxes", "scores", "labels") if k not in out]
        if missing:
            raise ParityError(f"the exported detector gives no {', '.join(missing)} output (it gives {', '.join(out)})")
        got.append({k: np.asarray(out[k]) for k in ("boxes", "scores", "labels")})
    result = compare_detections(ref, got, tolerance=tolerance, score_floor=score)
    return {"images": int(len(images.images)), "source": images.source, "kind": images.kind,
            "batches": [1] * len(images.images), **result}


def check_parity(
    task: str,
    predictor: Any,
    fn: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    images: ParityImages,
    *,
    tolerance: float | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare ``fn`` (the exported model: uint8 NHWC batch -> outputs by name) with the torch predictor.

    Returns the card's ``parity`` entry: ``{"images", "source", "kind", "batches", "compared", "max_abs_diff",
    "tolerance", "agreement_metric", "agreement", "passed"}``. It does not raise when parity fails (the caller
    decides what to do with the file); it raises :class:`~pixlearn.export.ParityError` when the outputs cannot be
    compared at all (a missing output, a wrong shape, a batch axis that is not dynamic).

    A detector (``task="detect"``) runs one image per call and is compared by :func:`compare_detections` at the
    thresholds of ``details`` (``score_thresh``, ``nms_iou``, ``max_detections``: what its graph bakes in); the
    tolerance is then the largest box coordinate difference in input pixels.
    """
    tol = TOLERANCES[task] if tolerance is None else float(tolerance)
    if task == "detect":
        return _check_detect_parity(predictor, fn, images, tolerance=tol, details=details or {})
    batch = images.images if len(images.images) > 1 else np.concatenate([images.images] * 2)  # always a batch above 1 too
    ref = reference_outputs(task, predictor, batch)
    got, sizes = run_batched(fn, batch)
    result = compare_outputs(task, ref, got, tolerance=tol)
    return {"images": int(len(images.images)), "source": images.source, "kind": images.kind, "batches": sizes, **result}


def describe(parity: Mapping[str, Any]) -> str:
    """One line for people: the images, the largest difference against its tolerance, the agreement.

    >>> describe({"images": 4, "compared": "probabilities", "max_abs_diff": 1e-7, "tolerance": 1e-4,
    ...           "agreement_metric": "top1", "agreement": 1.0, "passed": True, "source": "x"})
    'parity on 4 image(s): max |diff| of probabilities 1e-07 <= tolerance 0.0001; top-1 agreement 100.00% -- passed'
    """
    diff = parity.get("max_abs_diff")
    diff_text = "not finite" if diff is None else f"{diff:.3g}"
    op = "<=" if parity.get("passed") else ">"
    metric, value = parity.get("agreement_metric"), parity.get("agreement")
    if metric == "psnr_db":
        agree = f"PSNR vs torch {value:.2f} dB" + (" (identical)" if value == PSNR_IDENTICAL_DB else "")
    elif metric == "matched":
        sd = parity.get("max_score_diff")
        agree = (f"{100 * float(value):.2f}% of {parity.get('detections')} torch detection(s) matched (IoU >= "
                 f"{parity.get('match_iou')}, {parity.get('unmatched')} unmatched), max score diff "
                 f"{'not finite' if sd is None else f'{sd:.3g}'} (tolerance {parity.get('score_tolerance')})")
    else:
        agree = f"{'top-1' if metric == 'top1' else 'pixel'} agreement {100 * float(value):.2f}%"
    return (f"parity on {parity.get('images')} image(s): max |diff| of {parity.get('compared')} {diff_text} {op} tolerance "
            f"{parity.get('tolerance'):.3g}; {agree} -- {'passed' if parity.get('passed') else 'FAILED'}")


