"""Detection networks: torchvision's FCOS, RetinaNet, SSDlite, Faster R-CNN and Mask R-CNN on a timm or torchvision
backbone with an FPN, built from one JSON-able spec; a trained network as a :class:`~pixlearn.tasks.detect.detections.Detector`.

* :func:`build_detector` -- ``spec`` (``arch``, ``backbone``, ``num_classes``, ``img_size``, ``anchor_sizes``,
  ``aspect_ratios``, ``backbone_weights``...) -> a torchvision detection ``nn.Module`` (its ``pixlearn_detect_spec``
  attribute holds the resolved spec).
* :func:`fit_anchors` -- per-level anchor sizes and three aspect ratios from the training boxes' sizes.
* :class:`TorchDetector` -- the network behind the :class:`Detector` protocol (letterboxed to ``img_size``, boxes
  and masks mapped back to each caller's image, 0-based labels).
* :func:`load_run_detector` -- a run folder's ``weights/model.json`` + ``weights/best.safetensors`` as a TorchDetector.

Labels: the networks are built with ``num_classes + 1`` outputs and train on 1-based labels (0 is torchvision's
background); :class:`TorchDetector` shifts them back to 0-based indices into ``class_names``.

Inputs: every network sees ``img_size`` x ``img_size`` letterboxed images (longer side resized to ``img_size``,
zero padding bottom/right), in training and in prediction alike; the network's own transform then only normalises.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn._core.names import check_name
from pixlearn.tasks.detect.detections import Detections

__all__ = ["ARCHS", "TORCHVISION_BACKBONES", "DEFAULT_BACKBONE", "build_detector", "fit_anchors", "default_anchors",
           "anchor_levels", "load_backbone_weights", "letterbox", "TorchDetector", "load_run_detector", "normalise_spec"]

#: The architectures :func:`build_detector` builds.
ARCHS = ("fcos", "retinanet", "ssdlite", "faster_rcnn", "mask_rcnn")
#: Backbones taken from torchvision (any other name is a timm model).
TORCHVISION_BACKBONES = ("resnet18", "resnet34", "resnet50", "mobilenet_v3_large")
#: The backbone when the spec names none.
DEFAULT_BACKBONE = "tf_efficientnet_lite0"
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_FPN_CHANNELS = 128


def anchor_levels(arch: str) -> int:
    """Feature levels the heads see: 5 (P3-P7) for the one-pass detectors, 4 (P3-P5 + max-pool) for the R-CNNs."""
    return 4 if arch in ("faster_rcnn", "mask_rcnn") else 5


def _per_level(arch: str) -> int:
    return 3 if arch == "retinanet" else 1 if arch in ("faster_rcnn", "mask_rcnn") else 2


def default_anchors(arch: str, img_size: int) -> tuple[list[list[float]], list[float]]:
    """torchvision's anchors scaled to ``img_size`` (they assume ~800 px images): sizes per level, aspect ratios."""
    levels, k = anchor_levels(arch), _per_level(arch)
    base = [32.0 * 2**i * img_size / 800 * 2 for i in range(levels)]  # 1/12 of the image at P3 for 512-px inputs
    sizes = [[round(b * 2 ** (j / k), 2) for j in range(k)] for b in base]
    return sizes, [0.5, 1.0, 2.0]


def fit_anchors(wh: np.ndarray, *, arch: str) -> tuple[list[list[float]], list[float]]:
    """Anchor sizes per FPN level and 3 aspect ratios fitted to boxes of widths/heights ``wh`` (N, 2), in network pixels.

    Sizes are quantiles of ``sqrt(w * h)`` spread evenly over the levels (the smallest boxes on the finest level),
    ``levels x per-level`` of them; the aspect ratios (torchvision's ``h / w``) are the 1/6, 1/2 and 5/6 quantiles
    of ``h / w``. FCOS is anchor-free: its per-level "anchor" is the level's stride, so it has no fitted anchors.

    >>> sizes, ratios = fit_anchors(np.array([[10, 20], [20, 20], [40, 20], [80, 80]], float), arch="faster_rcnn")
    >>> len(sizes), ratios[1]
    (4, 1.0)
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(1)]
    if not len(wh):
        raise ConfigError("cannot fit anchors: the training split has no boxes of positive size; check the annotations")
    levels, k = anchor_levels(arch), _per_level(arch)
    n = levels * k
    scale = np.sqrt(wh[:, 0] * wh[:, 1])
    qs = (np.arange(n) + 0.5) / n
    sizes = np.maximum(np.quantile(scale, qs), 4.0)
    sizes = np.maximum.accumulate(sizes)
    grouped = [[round(float(s), 2) for s in sizes[i * k:(i + 1) * k]] for i in range(levels)]
    ar = np.quantile(wh[:, 1] / wh[:, 0], [1 / 6, 0.5, 5 / 6])
    ratios = sorted({round(float(np.clip(r, 0.1, 10.0)), 3) for r in ar})
    return grouped, ratios


# ---------------------------------------------------------------- spec
_SPEC_KEYS = {"arch", "backbone", "num_classes", "img_size", "anchor_sizes", "aspect_ratios", "backbone_weights", "fpn_channels",
              "mean", "std", "score_thresh", "nms_thresh", "detections_per_img", "trainable_layers"}


def normalise_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` checked, with defaults filled in (arch, backbone, img_size 512, anchors, mean/std of the backbone)."""
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        from pixlearn._core.names import closest

        hint = closest(unknown[0], _SPEC_KEYS, n=1)
        raise ConfigError(f"unknown detector spec key {unknown[0]!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                          + f" Keys: {', '.join(sorted(_SPEC_KEYS))}")
    s = dict(spec)
    s["arch"] = check_name(str(s.get("arch") or "faster_rcnn").lower().replace("-", "_"), ARCHS, what="detector architecture")
    s["backbone"] = str(s.get("backbone") or DEFAULT_BACKBONE)
    n = s.get("num_classes")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"num_classes must be an integer >= 1 (the object classes, no background), got {n!r}")
    size = s.get("img_size") or 512
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 4096:
        raise ConfigError(f"img_size must be an integer in 32..4096 (the network's input side in pixels), got {size!r}")
    s["img_size"] = size
    if s["arch"] == "fcos":
        s["anchor_sizes"], s["aspect_ratios"] = None, None  # anchor-free
    else:
        sizes, ratios = default_anchors(s["arch"], size)
        if s.get("anchor_sizes") is None:
            s["anchor_sizes"] = sizes
        if s.get("aspect_ratios") is None:
            s["aspect_ratios"] = ratios
        lv = anchor_levels(s["arch"])
        a = s["anchor_sizes"]
        if not isinstance(a, (list, tuple)) or len(a) != lv or not all(isinstance(x, (list, tuple)) and x and all(float(v) > 0 for v in x) for x in a):
            raise ConfigError(f"anchor_sizes for {s['arch']} must be {lv} lists (one per feature level) of positive sizes in pixels, got {a!r}")
        if not all(float(r) > 0 for r in s["aspect_ratios"]):
            raise ConfigError(f"aspect_ratios must be positive (h / w), got {s['aspect_ratios']!r}")
        s["anchor_sizes"] = [[float(v) for v in x] for x in a]
        s["aspect_ratios"] = [float(r) for r in s["aspect_ratios"]]
    ch = s.setdefault("fpn_channels", _FPN_CHANNELS)
    if isinstance(ch, bool) or not isinstance(ch, int) or ch < 64 or ch % 32:
        raise ConfigError(f"fpn_channels must be a multiple of 32 from 64 up (the heads' GroupNorm uses 32 groups), got {ch!r}")
    if s.get("mean") is None or s.get("std") is None:
        s["mean"], s["std"] = _backbone_stats(s["backbone"])
    s.setdefault("backbone_weights", None)
    s.setdefault("score_thresh", 0.05)
    s.setdefault("nms_thresh", 0.5)
    s.setdefault("detections_per_img", 100)
    return s


def _backbone_stats(name: str) -> tuple[list[float], list[float]]:
    if name in TORCHVISION_BACKBONES:
        return list(_IMAGENET[0]), list(_IMAGENET[1])
    try:
        import timm

        cfg = timm.get_pretrained_cfg(name.split(".")[0])
        if cfg is not None:
            return [float(v) for v in cfg.mean], [float(v) for v in cfg.std]
    except Exception:  # an unknown name fails later with the list of names
        pass
    return list(_IMAGENET[0]), list(_IMAGENET[1])


# ---------------------------------------------------------------- backbones
class _TimmFPN(nn.Module):
    """A timm ``features_only`` network (its last 3 stages) under a torchvision FeaturePyramidNetwork."""

    def __init__(self, name: str, *, out_channels: int, extra: str) -> None:
        super().__init__()
        import timm
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

        if not timm.is_model(name.split(".")[0]):
            import difflib

            hint = difflib.get_close_matches(name, timm.list_models() + list(TORCHVISION_BACKBONES), n=1)
            raise ConfigError(f"unknown backbone {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                              + f" Use a timm model name or one of {', '.join(TORCHVISION_BACKBONES)}")
        self.body = timm.create_model(name.split(".")[0], pretrained=False, features_only=True, out_indices=(-3, -2, -1))
        channels = list(self.body.feature_info.channels())
        blocks = LastLevelP6P7(out_channels, out_channels) if extra == "p6p7" else LastLevelMaxPool()
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=blocks)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def _torchvision_fpn(name: str, *, out_channels: int, extra: str) -> nn.Module:
    import torchvision.models as tvm
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FeaturePyramidNetwork
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

    blocks = LastLevelP6P7(out_channels, out_channels) if extra == "p6p7" else LastLevelMaxPool()
    net = getattr(tvm, name)(weights=None)
    if name.startswith("resnet"):
        fpn = _resnet_fpn_extractor(net, 5, returned_layers=[2, 3, 4], extra_blocks=blocks)
        fpn.fpn = FeaturePyramidNetwork([_resnet_stage_channels(net, i) for i in (2, 3, 4)], out_channels, extra_blocks=blocks)
        fpn.out_channels = out_channels
        return fpn
    return _mobilenet_fpn(net, out_channels, blocks)


def _resnet_stage_channels(net: nn.Module, i: int) -> int:
    layer = getattr(net, f"layer{i}")
    last = layer[-1]
    return int((last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels)


def _mobilenet_fpn(net: nn.Module, out_channels: int, blocks: nn.Module) -> nn.Module:
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    features = net.features
    stage = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    returned = [len(stage) - 3, len(stage) - 2, len(stage) - 1]
    return_layers = {f"{stage[k]}": str(v) for v, k in enumerate(returned)}
    in_ch = [int(features[stage[k]].out_channels) for k in returned]
    return BackboneWithFPN(features, return_layers, in_ch, out_channels, extra_blocks=blocks)


def _make_backbone(name: str, *, out_channels: int, extra: str) -> nn.Module:
    if name in TORCHVISION_BACKBONES:
        return _torchvision_fpn(name, out_channels=out_channels, extra=extra)
    return _TimmFPN(name, out_channels=out_channels, extra=extra)


def _body(backbone: nn.Module) -> nn.Module:
    return backbone.body


def _classifier_keys(name: str) -> set[str]:
    """The tensors of the whole classifier ``name`` (timm or torchvision), to tell head keys from backbone keys."""
    if name in TORCHVISION_BACKBONES:
        import torchvision.models as tvm

        return set(getattr(tvm, name)(weights=None).state_dict())
    import timm

    return set(timm.create_model(name.split(".")[0], pretrained=False).state_dict())


def load_backbone_weights(model: nn.Module, path: str | os.PathLike[str], *, backbone: str) -> dict[str, Any]:
    """Load a classifier's weights file (``.safetensors``) strictly into ``model``'s feature extractor.

    Every tensor of the feature extractor must be in the file with its shape; the file's other tensors must belong to
    the classifier's head (the layers after the last stage the detector uses). Returns ``{"loaded": n, "left_out": m,
    "file": path}``.

    Raises
    ------
    WeightsNotFoundError
        No such file.
    ConfigError, ShapeError
        The file is not this backbone's (missing tensors, foreign tensors, other shapes).
    """
    from pixlearn.models.weights import WeightsNotFoundError, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"backbone weights {path}: no such file; give an existing .safetensors file (--weights FILE)")
    body = _body(model.backbone)
    own = body.state_dict()
    state = read_state_dict(path)
    # torchvision's IntermediateLayerGetter / timm's FeatureListNet keep the classifier's key names
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    if missing:
        raise ConfigError(f"backbone weights {path}: {len(missing)} tensors of the {backbone} feature extractor are not in the file "
                          f"(e.g. {', '.join(missing[:3])}); the file holds another network's weights: give {backbone}'s "
                          "classifier weights, or name the backbone they belong to with --backbone")
    bad = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if bad:
        raise ShapeError(f"backbone weights {path}: {len(bad)} tensors have another shape than {backbone}'s: {'; '.join(bad[:3])}")
    extra = sorted(set(state) - set(own))
    if extra:
        whole = _classifier_keys(backbone)
        foreign = [k for k in extra if k not in whole]
        if foreign:
            raise ConfigError(f"backbone weights {path}: {len(foreign)} tensors belong to no part of {backbone} (e.g. "
                              f"{', '.join(foreign[:3])}); the file is another network's")
    body.load_state_dict({k: state[k].to(v.dtype) for k, v in own.items() if k in state}, strict=False)
    return {"loaded": len([k for k in own if k in state]), "left_out": len(extra), "file": str(path)}


# ---------------------------------------------------------------- the networks
def build_detector(spec: Mapping[str, Any]) -> nn.Module:
    """A torchvision detection network from ``spec``.

    Parameters
    ----------
    spec : mapping
        ``arch`` (fcos, retinanet, ssdlite, faster_rcnn, mask_rcnn; default faster_rcnn), ``backbone`` (a timm name,
        default ``tf_efficientnet_lite0``, its last 3 stages; or torchvision's resnet18/34/50, mobilenet_v3_large),
        ``num_classes`` (object classes, no background), ``img_size`` (input side, default 512), ``anchor_sizes``
        (one list per level) and ``aspect_ratios`` (h / w; default torchvision's, scaled to img_size),
        ``backbone_weights`` (a classifier's .safetensors loaded strictly into the feature extractor),
        ``fpn_channels`` (128), ``mean``/``std`` (the backbone's), ``score_thresh``, ``nms_thresh``,
        ``detections_per_img``.

    Returns
    -------
    nn.Module
        torchvision's model; ``model.pixlearn_detect_spec`` is the resolved spec (JSON-able) and
        ``model.pixlearn_backbone_load`` what the weights file gave (None without one).

    Raises
    ------
    UnknownNameError, ConfigError
        Unknown arch, backbone or spec key; bad num_classes, img_size or anchors.

    Examples
    --------
    >>> net = build_detector({"arch": "fcos", "backbone": "resnet18", "num_classes": 2, "img_size": 64})
    >>> net.pixlearn_detect_spec["anchor_sizes"] is None  # FCOS is anchor-free
    True
    """
    s = normalise_spec(spec)
    arch, size, ch = s["arch"], s["img_size"], int(s["fpn_channels"])
    k = s["num_classes"] + 1  # + torchvision's background
    extra = "pool" if arch in ("faster_rcnn", "mask_rcnn") else "p6p7"
    backbone = _make_backbone(s["backbone"], out_channels=ch, extra=extra)
    common = {"image_mean": s["mean"], "image_std": s["std"]}
    if arch in ("fcos", "retinanet", "faster_rcnn", "mask_rcnn"):
        common.update(min_size=size, max_size=size)
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    if arch == "fcos":
        from torchvision.models.detection import FCOS

        gen = AnchorGenerator(tuple((8 * 2**i,) for i in range(5)), ((1.0,),) * 5)  # one point per location, at the level's stride
        model = FCOS(backbone, k, anchor_generator=gen, score_thresh=s["score_thresh"], nms_thresh=s["nms_thresh"],
                     detections_per_img=s["detections_per_img"], **common)
    elif arch == "retinanet":
        from functools import partial

        from torchvision.models.detection import RetinaNet
        from torchvision.models.detection.retinanet import RetinaNetHead

        gen = AnchorGenerator(tuple(tuple(x) for x in s["anchor_sizes"]), (tuple(s["aspect_ratios"]),) * 5)
        head = RetinaNetHead(ch, gen.num_anchors_per_location()[0], k, norm_layer=partial(nn.GroupNorm, 16))
        model = RetinaNet(backbone, k, anchor_generator=gen, head=head, score_thresh=s["score_thresh"], nms_thresh=s["nms_thresh"],
                          detections_per_img=s["detections_per_img"], **common)
    elif arch == "ssdlite":
        from functools import partial

        from torchvision.models.detection.ssd import SSD
        from torchvision.models.detection.ssdlite import SSDLiteHead

        gen = _SizedBoxGenerator(s["anchor_sizes"], s["aspect_ratios"], size)
        head = SSDLiteHead([ch] * 5, gen.num_anchors_per_location(), k, partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))
        model = SSD(backbone, gen, (size, size), k, head=head, score_thresh=s["score_thresh"], nms_thresh=s["nms_thresh"],
                    detections_per_img=s["detections_per_img"], topk_candidates=300, **common)
    else:
        from torchvision.ops import MultiScaleRoIAlign

        gen = AnchorGenerator(tuple(tuple(x) for x in s["anchor_sizes"]), (tuple(s["aspect_ratios"]),) * 4)
        roi = MultiScaleRoIAlign(["0", "1", "2"], 7, 2)
        kw = {"rpn_anchor_generator": gen, "box_roi_pool": roi, "box_score_thresh": s["score_thresh"], "box_nms_thresh": s["nms_thresh"],
              "box_detections_per_img": s["detections_per_img"], **common,
              # CPU-sized sampling: fewer proposals and RoIs per image than torchvision's COCO defaults (2000 / 512)
              "rpn_pre_nms_top_n_train": 1000, "rpn_post_nms_top_n_train": 500, "rpn_pre_nms_top_n_test": 500,
              "rpn_post_nms_top_n_test": 300, "box_batch_size_per_image": 128}
        if arch == "faster_rcnn":
            from torchvision.models.detection import FasterRCNN

            model = FasterRCNN(backbone, k, **kw)
        else:
            from torchvision.models.detection import MaskRCNN

            model = MaskRCNN(backbone, k, mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 14, 2), **kw)
    model.pixlearn_backbone_load = None
    if s.get("backbone_weights"):
        model.pixlearn_backbone_load = load_backbone_weights(model, s["backbone_weights"], backbone=s["backbone"])
    model.pixlearn_detect_spec = s
    return model


class _SizedBoxGenerator(nn.Module):
    """SSD default boxes with absolute per-level sizes (pixels) and aspect ratios (h / w), one set per feature map cell.

    torchvision's DefaultBoxGenerator takes scales relative to the image; this one takes the fitted sizes directly.
    """

    def __init__(self, sizes: Sequence[Sequence[float]], ratios: Sequence[float], img_size: int) -> None:
        super().__init__()
        self.sizes = [[float(v) for v in x] for x in sizes]
        self.ratios = [float(r) for r in ratios]
        self.img_size = int(img_size)

    def num_anchors_per_location(self) -> list[int]:
        return [len(x) * len(self.ratios) for x in self.sizes]

    def forward(self, image_list: Any, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        h, w = image_list.tensors.shape[-2:]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        per_level = []
        for fmap, sizes in zip(feature_maps, self.sizes, strict=True):
            fh, fw = fmap.shape[-2:]
            ys = (torch.arange(fh, dtype=torch.float32, device=device) + 0.5) * (h / fh)
            xs = (torch.arange(fw, dtype=torch.float32, device=device) + 0.5) * (w / fw)
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
            shapes = torch.tensor([[sz / math.sqrt(r), sz * math.sqrt(r)] for sz in sizes for r in self.ratios], device=device)  # (A, 2) w, h
            c = torch.stack([cx, cy], -1).reshape(-1, 1, 2)
            half = shapes.reshape(1, -1, 2) / 2
            per_level.append(torch.cat([c - half, c + half], -1).reshape(-1, 4))
        anchors = torch.cat(per_level).to(dtype)
        return [anchors for _ in range(image_list.tensors.shape[0])]


# ---------------------------------------------------------------- letterbox
def letterbox(image: np.ndarray, size: int) -> tuple[torch.Tensor, float]:
    """An RGB uint8 (H, W, 3) image as a float (3, size, size) tensor in [0, 1]: longer side resized to ``size``, zeros
    padded bottom/right; returns the tensor and the scale (network pixels per image pixel)."""
    import torch.nn.functional as F

    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"detectors take RGB uint8 (H, W, 3) images, got {getattr(image, 'dtype', type(image).__name__)} "
                         f"{getattr(image, 'shape', '')}; decode files with pixlearn.io.read_image")
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div_(255).unsqueeze(0)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
    out = torch.zeros((3, size, size))
    out[:, :nh, :nw] = x[0]
    return out, scale


# ---------------------------------------------------------------- prediction
class TorchDetector:
    """A trained torchvision detection network as a :class:`~pixlearn.tasks.detect.detections.Detector`.

    Parameters
    ----------
    model : nn.Module
        From :func:`build_detector` (its ``pixlearn_detect_spec`` gives the input size).
    class_names : sequence of str
        The object classes (network label ``i + 1`` is ``class_names[i]``).
    name : str
        What the detector calls itself (a run folder's name).
    device : str
        ``"cpu"``, ``"cuda"``, or ``"auto"``.
    batch : int
        Images per forward pass.
    """

    def __init__(self, model: nn.Module, class_names: Sequence[str], *, name: str = "detector", device: str = "cpu", batch: int = 4) -> None:
        from pixlearn.engine.trainer import resolve_device

        self.class_names = tuple(str(c) for c in class_names)
        self.name = str(name)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        spec = getattr(model, "pixlearn_detect_spec", {}) or {}
        self.img_size = int(spec.get("img_size") or 512)
        self.masks = spec.get("arch") == "mask_rcnn"
        self.batch = max(1, int(batch))
        n_out = int(spec.get("num_classes") or len(self.class_names))
        if n_out != len(self.class_names):
            raise ConfigError(f"the network detects {n_out} classes but {len(self.class_names)} class names were given")

    def _set_thresholds(self, score: float, iou: float, max_detections: int) -> None:
        m = self.model
        if hasattr(m, "roi_heads"):
            m.roi_heads.score_thresh, m.roi_heads.nms_thresh, m.roi_heads.detections_per_img = score, iou, max_detections
        else:
            m.score_thresh, m.nms_thresh, m.detections_per_img = score, iou, max_detections

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], *, score: float = 0.25, iou: float = 0.5, max_detections: int = 100) -> list[Detections]:
        """Detect objects in RGB uint8 (H, W, 3) images; one :class:`Detections` per image, on its own pixels."""
        if not (0.0 <= float(score) <= 1.0) or not (0.0 < float(iou) <= 1.0):
            raise ConfigError(f"score must be in [0, 1] and iou in (0, 1], got score={score}, iou={iou}")
        if int(max_detections) < 1:
            raise ConfigError(f"max_detections must be >= 1, got {max_detections}")
        self._set_thresholds(float(score), float(iou), int(max_detections))
        out: list[Detections] = []
        for start in range(0, len(images), self.batch):
            chunk = list(images[start:start + self.batch])
            boxed = [letterbox(im, self.img_size) for im in chunk]
            raw = self.model([x.to(self.device) for x, _ in boxed])
            for im, (_, scale), r in zip(chunk, boxed, raw, strict=True):
                out.append(self._to_detections(r, im.shape[:2], scale).filter(min_score=float(score), max_detections=int(max_detections)))
        return out

    def _to_detections(self, r: Mapping[str, torch.Tensor], hw: tuple[int, int], scale: float) -> Detections:
        import torch.nn.functional as F

        h, w = hw
        boxes = r["boxes"].float().cpu() / scale
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        labels = r["labels"].cpu().long() - 1
        keep = (labels >= 0) & (labels < len(self.class_names))
        masks = None
        if self.masks and "masks" in r:
            m = r["masks"][keep.to(r["masks"].device)].float()
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            m = m[:, :, :nh, :nw]
            if len(m):
                m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
            masks = (m[:, 0] > 0.5).cpu().numpy() if len(m) else np.zeros((0, h, w), bool)
        return Detections(boxes[keep].numpy(), r["scores"].float().cpu()[keep].numpy(), labels[keep].numpy(), self.class_names, masks)


def load_run_detector(run_dir: str | os.PathLike[str], *, device: str = "cpu") -> TorchDetector:
    """The detector of a run folder (``weights/model.json`` + ``weights/best.safetensors``).

    Raises
    ------
    ConfigError
        Not a detection run folder, or a model card that names no detector.
    """
    from pixlearn.models.weights import read_state_dict

    run = Path(run_dir)
    card_path = run / "weights" / "model.json"
    weights = run / "weights" / "best.safetensors"
    if not card_path.is_file() or not weights.is_file():
        raise ConfigError(f"{run}: not a detection run folder (needs weights/model.json and weights/best.safetensors); "
                          "train one with `pixlearn train detect --data DIR`")
    card = json.loads(card_path.read_text())
    if card.get("task") != "detect" or not isinstance(card.get("spec"), Mapping):
        raise ConfigError(f"{card_path}: is not a detection model card (task {card.get('task')!r}); give a `pixlearn train detect` run")
    spec = dict(card["spec"])
    spec["backbone_weights"] = None  # the run's weights hold the whole network
    model = build_detector(spec)
    state = read_state_dict(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{weights}: does not fit the network of {card_path} ({str(exc)[:300]})") from None
    return TorchDetector(model, card["class_names"], name=card.get("name") or run.name, device=device)
