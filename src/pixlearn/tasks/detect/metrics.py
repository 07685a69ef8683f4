"""COCO detection metrics computed by pycocotools itself, plus a detection confusion matrix and per-image records.

:class:`DetectionEvaluator` collects :class:`~pixlearn.tasks.detect.detections.Detections` and
:class:`~pixlearn.tasks.detect.detections.GroundTruth` image by image, then builds an in-memory COCO ground truth
and result set and runs pycocotools' ``COCOeval`` (``bbox``, and ``segm`` with RLE-encoded instance masks): the
numbers are pycocotools' own, nothing of its matching is written again here.

COCO conventions kept as they are
---------------------------------
* AP is averaged over IoU 0.50:0.05:0.95 and 101 recall points; ``map50`` / ``map75`` at one IoU; at most 100
  detections per image and class (COCO's ``maxDets``), so run detectors with a low score threshold (0.001)
  for a full precision-recall curve.
* Object areas are COCO's: the ``area`` the annotation file states when there is one (pycocotools reads that field;
  :class:`GroundTruthWithAreas` carries it), else the instance mask's pixel count when the truth has masks, else the
  box area; small is below 32², large above 96² (a detection's area is its box area for ``bbox`` and its mask area
  for ``segm``).
* Crowd regions (``iscrowd``) are never counted as misses, and a detection inside one is ignored.
* Classes are COCO categories ``1..K`` in the order of ``class_names``; images and annotations are numbered from 1.
  (pycocotools counts a detection matched to an annotation whose ``id`` is 0 as a false positive -- its match
  array holds the id --, and Roboflow's exports number annotations from 0: run on such a file, pycocotools itself
  scores lower than here, and agrees with pixlearn once the ids are renumbered.)

Undefined values
----------------
pycocotools writes -1 where a mean has nothing to average (no truth of any class, no small objects...). Here such a
value is ``None`` -- never 0 and never -1 -- so that ``metrics.json`` stays valid JSON; a class without any truth
object has a per-class AP of ``None`` and is left out of ``map``, as in COCO.

Confusion matrix
----------------
Rows are true classes, columns predicted classes (as in the other pixlearn tasks), each with a last ``background``
entry. Detections scoring at least ``score_threshold`` are matched one to one with truths at IoU >= ``iou_threshold``:
first same-class pairs, then pairs of different classes, each by decreasing IoU. A matched pair counts at
``[true class, predicted class]``; a detection that matches nothing counts in the background row (it claims an object
where the truth has none); a truth that nothing found counts in the background column (it was predicted as
background). Detections inside a crowd region of their class are ignored.

Examples
--------
>>> import numpy as np
>>> from pixlearn.tasks.detect.detections import Detections, GroundTruth
>>> truth = GroundTruth(np.array([[10, 10, 50, 50]]), np.array([0]), ("cat",), (64, 64))
>>> pred = Detections(np.array([[10, 10, 50, 50]]), np.array([0.9]), np.array([0]), ("cat",))
>>> ev = DetectionEvaluator(["cat"])
>>> ev.update([pred], [truth])
>>> m = ev.compute()
>>> round(m["map"], 6), round(m["map50"], 6), m["map_small"], m["confusion_matrix"]["matrix"]
(1.0, 1.0, None, [[1, 0], [0, 0]])
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.tasks.detect.detections import Detections, GroundTruth

__all__ = ["DetectionEvaluator", "GroundTruthWithAreas", "HEADLINE_DETECTION", "MASK_HEADLINE_DETECTION", "COCO_STATS", "BACKGROUND"]

#: The name of the confusion matrix's last row and column.
BACKGROUND = "background"
#: pycocotools' ``COCOeval.stats`` entries in order, by pixlearn's names.
COCO_STATS = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")
#: Box scores shown first in tables and reports, in order.
HEADLINE_DETECTION = ("map", "map50", "map75", "map_small", "map_medium", "map_large")
#: Mask scores (instance segmentation), in order.
MASK_HEADLINE_DETECTION = tuple(f"mask_{k}" for k in HEADLINE_DETECTION)


@dataclass(frozen=True)
class GroundTruthWithAreas(GroundTruth):
    """A :class:`GroundTruth` that also carries the object areas its annotation file states (COCO's ``area``).

    pycocotools sorts truths into small, medium and large by that field, which exporters do not all compute the same
    way (the polygon's area, or the box's); with it the evaluator agrees with pycocotools run on the file itself.
    ``areas`` is (N,) float, NaN where the file states none (then the mask or box area is used).

    >>> t = GroundTruthWithAreas(np.array([[0, 0, 10, 10]]), np.array([0]), ("cat",), (16, 16), areas=np.array([42.0]))
    >>> t.areas.tolist(), len(t)
    ([42.0], 1)
    """

    areas: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.areas is not None:
            areas = np.array([np.nan if a is None else a for a in np.asarray(self.areas, object).reshape(-1)], np.float64)
            if len(areas) != len(self.labels):
                raise ShapeError(f"ground truth needs one area per box: {len(self.labels)} boxes, {len(areas)} areas")
            object.__setattr__(self, "areas", areas)


def _none(value: float) -> float | None:
    """COCO's -1 (nothing to average) and NaN become None."""
    value = float(value)
    return None if value < 0 or math.isnan(value) else value


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)


def _encode(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) bool -> N compressed RLEs (pycocotools)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    return list(mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8))))


def _box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xyxy boxes as COCO computes it (for a crowd truth: the share of the detection inside it)."""
    from pycocotools import mask as mask_utils

    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    return np.asarray(mask_utils.iou(_xywh(dt), _xywh(gt), [int(c) for c in crowd]), np.float64).reshape(len(dt), len(gt))


def _box_row(box: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in box]


@dataclass
class _Image:
    """What one image contributes: truth and detections in COCO form (masks as RLE: bounded memory)."""

    name: str
    size: tuple[int, int]
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_crowd: np.ndarray
    gt_area: np.ndarray
    gt_rles: list[dict[str, Any]] | None
    dt_boxes: np.ndarray
    dt_scores: np.ndarray
    dt_labels: np.ndarray
    dt_rles: list[dict[str, Any]] | None = None
    record: dict[str, Any] = field(default_factory=dict)


class DetectionEvaluator:
    """COCO mAP (pycocotools), a confusion matrix with background and per-image records over many images.

    Parameters
    ----------
    class_names : sequence of str
        The classes scored, in label order (the truth's). Detections whose ``class_names`` differ are matched by
        name; detections of classes not in this list are dropped and counted (``dropped`` in :meth:`compute`).
    masks : bool, default False
        Also score instance masks (``segm``): then every detection and every truth object needs a mask.
    score_threshold : float, default 0.25
        Detections scoring below it are left out of the confusion matrix and the per-image records (never out of
        the AP, which sweeps every score).
    iou_threshold : float, default 0.5
        The IoU at which a detection finds a truth, for the confusion matrix and the records.

    Attributes
    ----------
    records : list of dict
        One per image, in :meth:`update` order: ``index``, ``name``, ``image_size`` (H, W), ``truths`` (non-crowd
        objects), ``detections`` (at or above the score threshold), ``true_positives``, ``misses`` (truths not
        found with their class: ``box``, ``truth_index`` (into the image's truth), ``label``, ``class_name``,
        ``area``, ``kind`` -- "missed", or "class" when a detection of another class took it --, ``predicted_as``,
        ``best_iou`` with a same-class detection at or above the threshold, ``best_score`` of any same-class
        detection at IoU >= the threshold, even below the score threshold, or None), ``false_positives`` (``box``,
        ``score``, ``label``, ``class_name``, ``kind`` -- "background" or "class" --, ``true_class`` for the
        latter, ``iou``) and ``ignored`` (inside crowd regions).
    """

    def __init__(self, class_names: Sequence[str], *, masks: bool = False, score_threshold: float = 0.25,
                 iou_threshold: float = 0.5) -> None:
        names = tuple(str(c) for c in class_names)
        if not names:
            raise ConfigError("DetectionEvaluator needs at least one class name, got none")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError(f"class names must be unique, got {dup} more than once in {list(names)}")
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ConfigError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
        if not 0.0 < float(iou_threshold) <= 1.0:
            raise ConfigError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        self.class_names = names
        self.masks = bool(masks)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self._lut: dict[tuple[str, ...], np.ndarray] = {}
        self.reset()

    # ------------------------------------------------------------------ collecting
    def reset(self) -> None:
        """Forget every image."""
        self._images: list[_Image] = []
        self.records: list[dict[str, Any]] = []
        n = len(self.class_names) + 1
        self.confusion = np.zeros((n, n), np.int64)
        self.dropped = 0

    @property
    def images(self) -> int:
        """Images collected so far."""
        return len(self._images)

    def _map(self, names: tuple[str, ...], what: str) -> np.ndarray:
        """Label index in ``names`` -> label index in the evaluator's classes (-1: unknown here)."""
        if names == self.class_names:
            return np.arange(len(names), dtype=np.int64)
        lut = self._lut.get(names)
        if lut is None:
            lut = np.array([self.class_names.index(n) if n in self.class_names else -1 for n in names], np.int64)
            if what == "ground truth" and (lut < 0).any():
                unknown = [n for n, k in zip(names, lut, strict=True) if k < 0]
                raise ConfigError(f"the ground truth has classes {unknown} that the evaluator does not score "
                                  f"(it scores {list(self.class_names)}); build the evaluator with the dataset's class names")
            if (lut < 0).all():
                raise ConfigError(f"none of the detector's classes {list(names)[:8]}{'...' if len(names) > 8 else ''} is "
                                  f"among the scored classes {list(self.class_names)}; score the detector on data of its classes")
            self._lut[names] = lut
        return lut

    def update(self, preds: Sequence[Detections], truths: Sequence[GroundTruth], *,
               names: Sequence[str] | None = None) -> None:
        """Add images: the detections of each (any score; COCO keeps the 100 best per class) and its truth.

        Parameters
        ----------
        preds : sequence of Detections
        truths : sequence of GroundTruth
            One per image, in the same order as ``preds``.
        names : sequence of str, optional
            Image names for the per-image records (default ``image <index>``).

        Raises
        ------
        ShapeError
            Different numbers of predictions and truths or names, or masks that do not fit the image.
        ConfigError
            ``masks=True`` but a detection or truth object has no mask; classes that cannot be matched by name.
        """
        preds, truths = list(preds), list(truths)
        if len(preds) != len(truths):
            raise ShapeError(f"update needs one Detections per GroundTruth, got {len(preds)} predictions and {len(truths)} truths")
        if names is not None and len(names) != len(truths):
            raise ShapeError(f"update got {len(names)} names for {len(truths)} images")
        for j, (pred, truth) in enumerate(zip(preds, truths, strict=True)):
            name = str(names[j]) if names is not None else f"image {len(self._images)}"
            self._add(pred, truth, name)

    def _add(self, pred: Detections, truth: GroundTruth, name: str) -> None:
        h, w = (int(v) for v in truth.image_size)
        gt_labels = self._map(truth.class_names, "ground truth")[truth.labels] if len(truth) else np.zeros(0, np.int64)
        lut = self._map(pred.class_names, "detector") if len(pred) else None
        keep = np.ones(len(pred), bool) if lut is None else lut[pred.labels] >= 0
        self.dropped += int((~keep).sum())
        dt_labels = lut[pred.labels][keep] if lut is not None else np.zeros(0, np.int64)
        dt_boxes, dt_scores = pred.boxes[keep], pred.scores[keep]
        gt_masks, gt_rles = truth.masks, None
        if gt_masks is not None and gt_masks.shape != (len(truth), h, w):
            raise ShapeError(f"{name}: the truth's masks are {gt_masks.shape}, expected ({len(truth)}, {h}, {w}) "
                             "(one mask per object, the image's size)")
        gt_area = (gt_masks.reshape(len(truth), h * w).sum(axis=1).astype(np.float64) if gt_masks is not None
                   else np.prod(np.clip(_xywh(truth.boxes)[:, 2:], 0, None), axis=1))
        stated = getattr(truth, "areas", None)
        if stated is not None:  # the annotation file's own area, as pycocotools reads it
            gt_area = np.where(np.isfinite(stated), stated, gt_area)
        dt_rles = None
        if self.masks:
            if gt_masks is None and len(truth):
                raise ConfigError(f"{name}: masks=True scores instance masks, but this image's truth has none; "
                                  "score boxes only (masks=False) or read a dataset with masks or polygons")
            gt_rles = _encode(gt_masks) if gt_masks is not None else []
            if pred.masks is None and len(pred):
                raise ConfigError(f"{name}: masks=True scores instance masks, but the detector returned boxes without "
                                  "masks; score boxes only (masks=False) or use an instance-segmentation model")
            dt_masks = pred.masks[keep] if pred.masks is not None else np.zeros((0, h, w), bool)
            if dt_masks.shape[1:] != (h, w):
                raise ShapeError(f"{name}: predicted masks are {dt_masks.shape[1]}x{dt_masks.shape[2]} (HxW) but the "
                                 f"image is {h}x{w}; masks must be on the caller's image")
            dt_rles = _encode(dt_masks)
        image = _Image(name, (h, w), truth.boxes.astype(np.float64), gt_labels, truth.iscrowd.astype(bool), gt_area,
                       gt_rles, dt_boxes.astype(np.float64), dt_scores.astype(np.float64), dt_labels, dt_rles)
        image.record = self._match(image, len(self._images))
        self._images.append(image)
        self.records.append(image.record)

    def _match(self, im: _Image, index: int) -> dict[str, Any]:
        """Confusion-matrix counts and the per-image record (see the module's notes)."""
        bg = len(self.class_names)
        thr = self.iou_threshold
        crowd = im.gt_crowd
        real = np.flatnonzero(~crowd)
        above = np.flatnonzero(im.dt_scores >= self.score_threshold)
        iou_all = _box_iou(im.dt_boxes, im.gt_boxes, crowd)
        iou = iou_all[np.ix_(above, real)]
        d_lab, g_lab = im.dt_labels[above], im.gt_labels[real]
        same = d_lab[:, None] == g_lab[None, :]
        pair_of_d: dict[int, int] = {}
        pair_of_g: dict[int, int] = {}
        for want_same in (True, False):
            ok = (iou >= thr) & (same if want_same else ~same)
            di, gi = np.nonzero(ok)
            for k in np.argsort(-iou[di, gi], kind="stable"):
                d, g = int(di[k]), int(gi[k])
                if d not in pair_of_d and g not in pair_of_g:
                    pair_of_d[d], pair_of_g[g] = g, d
        # detections above the threshold inside a crowd region of their class are ignored (COCO)
        crowd_idx = np.flatnonzero(crowd)
        ignored = set()
        for d in range(len(above)):
            if d in pair_of_d or not len(crowd_idx):
                continue
            hits = iou_all[above[d], crowd_idx] >= thr
            if (hits & (im.gt_labels[crowd_idx] == d_lab[d])).any():
                ignored.add(d)
        misses, false_pos, tp = [], [], 0
        for g in range(len(real)):
            t = int(g_lab[g])
            d = pair_of_g.get(g)
            p = bg if d is None else int(d_lab[d])
            self.confusion[t, p] += 1
            if p == t:
                tp += 1
                continue
            same_class = im.dt_labels == t
            found = same_class & (iou_all[:, real[g]] >= thr) if len(im.dt_labels) else np.zeros(0, bool)
            above_same = same_class[above]
            misses.append({
                "box": _box_row(im.gt_boxes[real[g]]), "truth_index": int(real[g]), "label": t, "class_name": self.class_names[t],
                "area": round(float(im.gt_area[real[g]]), 1), "kind": "missed" if d is None else "class",
                "predicted_as": None if d is None else self.class_names[p],
                "best_iou": round(float(iou[above_same, g].max()), 4) if above_same.any() else 0.0,
                "best_score": round(float(im.dt_scores[found].max()), 4) if found.any() else None,
            })
        for d in range(len(above)):
            if d in ignored:
                continue
            p = int(d_lab[d])
            g = pair_of_d.get(d)
            if g is None:
                self.confusion[bg, p] += 1
            elif int(g_lab[g]) == p:
                continue
            row = iou[d]
            false_pos.append({
                "box": _box_row(im.dt_boxes[above[d]]), "score": round(float(im.dt_scores[above[d]]), 4), "label": p,
                "class_name": self.class_names[p], "kind": "background" if g is None else "class",
                "true_class": None if g is None else self.class_names[int(g_lab[g])],
                "iou": round(float(row.max()), 4) if row.size else 0.0,
            })
        return {"index": index, "name": im.name, "image_size": list(im.size), "truths": len(real), "crowd": int(crowd.sum()),
                "detections": len(above), "true_positives": tp, "misses": misses, "false_positives": false_pos,
                "ignored": len(ignored)}

    # ------------------------------------------------------------------ scoring
    def _coco(self) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        """The in-memory COCO ground truth, and the bbox and segm result lists."""
        from pycocotools.coco import COCO

        images, anns, boxes, segms = [], [], [], []
        for i, im in enumerate(self._images, start=1):
            images.append({"id": i, "height": im.size[0], "width": im.size[1], "file_name": im.name})
            gxywh = _xywh(im.gt_boxes)
            for j in range(len(im.gt_labels)):
                ann = {"id": len(anns) + 1, "image_id": i, "category_id": int(im.gt_labels[j]) + 1,
                       "bbox": [float(v) for v in gxywh[j]], "area": float(im.gt_area[j]), "iscrowd": int(im.gt_crowd[j])}
                if im.gt_rles is not None:
                    ann["segmentation"] = im.gt_rles[j]
                anns.append(ann)
            dxywh = _xywh(im.dt_boxes)
            for j in range(len(im.dt_labels)):
                cat, score = int(im.dt_labels[j]) + 1, float(im.dt_scores[j])
                boxes.append({"image_id": i, "category_id": cat, "bbox": [float(v) for v in dxywh[j]], "score": score})
                if im.dt_rles is not None:
                    segms.append({"image_id": i, "category_id": cat, "segmentation": im.dt_rles[j], "score": score})
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": k + 1, "name": n} for k, n in enumerate(self.class_names)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt, boxes, segms

    def _run(self, gt: Any, results: list[dict[str, Any]], iou_type: str) -> Any:
        """pycocotools' evaluate / accumulate / summarize (its printing swallowed)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            if results:
                dt = gt.loadRes(results)
            else:  # loadRes cannot take an empty list: an empty result set, as it would build one
                dt = COCO()
                dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]), "annotations": []}
                dt.createIndex()
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev

    def _scores(self, ev: Any, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {prefix + k: _none(v) for k, v in zip(COCO_STATS, ev.stats, strict=True)}
        precision = ev.eval["precision"]  # [T IoUs, R recall points, K classes, A areas, M maxDets]
        all_area, max100 = 0, len(ev.params.maxDets) - 1
        per, per50, curves, curves_mean = {}, {}, {}, {}
        for k, name in enumerate(self.class_names):
            p = precision[:, :, k, all_area, max100]
            valid = p[p > -1]
            per[name] = float(np.mean(valid)) if valid.size else None
            p50 = p[0][p[0] > -1]
            per50[name] = float(np.mean(p50)) if p50.size else None
            curves[name] = [round(float(v), 4) for v in p[0]] if p50.size else None
            curves_mean[name] = [round(float(v), 4) for v in p.mean(axis=0)] if valid.size else None
        out[prefix + "per_class"] = per
        out[prefix + "per_class50"] = per50
        out[prefix + "pr_curves"] = {
            "recall": [round(float(r), 4) for r in ev.params.recThrs],
            "iou50": curves, "iou50_95": curves_mean,
            "note": "precision at each recall point (COCO's interpolated, 101 points), all areas, 100 detections; None: no truth of the class",
        }
        return out

    def compute(self) -> dict[str, Any]:
        """Score every image collected so far.

        Returns
        -------
        dict
            pycocotools' ``stats`` as ``map``, ``map50``, ``map75``, ``map_small``, ``map_medium``, ``map_large``,
            ``mar_1``, ``mar_10``, ``mar_100``, ``mar_small``, ``mar_medium``, ``mar_large`` (floats in [0, 1], or
            None where COCO writes -1); ``per_class`` {name: AP@[.5:.95]} and ``per_class50`` {name: AP50} (None for a
            class without truth); ``pr_curves`` (per class at IoU 0.5 and averaged over 0.5:0.95, on COCO's 101
            recall points); with ``masks`` the same under ``mask_`` (``mask_map``, ``mask_per_class``...);
            ``confusion_matrix`` {``labels``, ``matrix`` (rows true, columns predicted, background last),
            ``score_threshold``, ``iou_threshold``}; counts ``n`` (images), ``objects`` (non-crowd truths),
            ``crowd``, ``detections`` (all scores), ``dropped`` (detections of classes not scored) and
            ``per_class_objects`` {name: non-crowd truths}.
        """
        counts: dict[str, Any] = {
            "n": len(self._images),
            "objects": int(sum(int((~im.gt_crowd).sum()) for im in self._images)),
            "crowd": int(sum(int(im.gt_crowd.sum()) for im in self._images)),
            "detections": int(sum(len(im.dt_labels) for im in self._images)),
            "dropped": self.dropped,
            "per_class_objects": {n: int(sum(int(((im.gt_labels == k) & ~im.gt_crowd).sum()) for im in self._images))
                                  for k, n in enumerate(self.class_names)},
        }
        out: dict[str, Any] = {}
        kinds = [("bbox", "")] + ([("segm", "mask_")] if self.masks else [])
        if not self._images:
            for _, prefix in kinds:
                out.update({prefix + k: None for k in COCO_STATS})
                out.update({prefix + "per_class": dict.fromkeys(self.class_names), prefix + "per_class50": dict.fromkeys(self.class_names)})
        else:
            gt, boxes, segms = self._coco()
            for iou_type, prefix in kinds:
                out.update(self._scores(self._run(gt, boxes if iou_type == "bbox" else segms, iou_type), prefix))
        out["confusion_matrix"] = {
            "labels": [*self.class_names, BACKGROUND], "matrix": self.confusion.tolist(), "rows": "true class",
            "columns": "predicted class", "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
        }
        out.update(counts)
        return out
