"""Detection networks: every architecture trains a step and predicts, anchors fitted to boxes, strict backbone weights,
boxes and masks mapped back to the caller's image, typed errors for bad specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError, UnknownNameError
from pixlearn.tasks.detect.detections import Detections, Detector
from pixlearn.tasks.detect.model import ARCHS, TorchDetector, build_detector, fit_anchors, load_backbone_weights


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _targets(masks: bool) -> list[dict[str, torch.Tensor]]:
    out = []
    for box in ([6.0, 8.0, 40.0, 36.0], [20.0, 4.0, 60.0, 50.0]):
        t = {"boxes": torch.tensor([box]), "labels": torch.tensor([2])}
        if masks:
            m = torch.zeros((1, 64, 64), dtype=torch.uint8)
            x0, y0, x1, y1 = (int(v) for v in box)
            m[0, y0:y1, x0:x1] = 1
            t["masks"] = m
        out.append(t)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_trains_a_step_and_predicts_on_the_callers_pixels(arch):
    torch.manual_seed(0)
    net = build_detector({"arch": arch, "backbone": "resnet18", "num_classes": 2, "img_size": 64, "fpn_channels": 64})
    net.train()
    losses = net([torch.rand(3, 64, 64) for _ in range(2)], _targets(arch == "mask_rcnn"))
    total = sum(losses.values())
    assert torch.isfinite(total.detach()) and float(total.detach()) > 0
    total.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.backbone.body.parameters())
    det = TorchDetector(net, ["cat", "dog"], name="t")
    assert isinstance(det, Detector)
    (out,) = det.predict([np.full((50, 90, 3), 127, np.uint8)], score=0.0, max_detections=7)
    assert isinstance(out, Detections) and len(out) <= 7 and out.class_names == ("cat", "dog")
    if len(out):
        assert out.boxes[:, 2].max() <= 90 and out.boxes[:, 3].max() <= 50 and out.labels.max() <= 1
    if arch == "mask_rcnn":
        assert out.masks is not None and out.masks.dtype == bool and out.masks.shape[1:] == (50, 90)
    else:
        assert out.masks is None


class _FixedOutput(nn.Module):
    """A stand-in network: the same raw torchvision output for every image (network pixels, 1-based labels)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.pixlearn_detect_spec = {"arch": "faster_rcnn", "img_size": 100, "num_classes": 2}
        self.roi_heads = nn.Module()

    def forward(self, images):
        assert all(tuple(x.shape) == (3, 100, 100) for x in images)  # letterboxed to img_size
        return [{"boxes": torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 5.0, 5.0], [90.0, 40.0, 100.0, 60.0]]),
                 "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([2, 0, 1])} for _ in images]


def test_boxes_come_back_on_the_callers_image_with_0_based_labels():
    det = TorchDetector(_FixedOutput(), ["cat", "dog"], name="fixed")
    (out,) = det.predict([np.zeros((100, 200, 3), np.uint8)], score=0.1)  # scale 0.5: network pixel x -> image pixel 2x
    assert out.labels.tolist() == [1, 0]  # torchvision label 2 -> "dog"; the background label 0 is dropped
    np.testing.assert_allclose(out.boxes[0], [20, 40, 100, 80])
    np.testing.assert_allclose(out.boxes[1], [180, 80, 200, 100])  # clipped to the image (y 120 -> 100)
    assert [r["class_name"] for r in out.to_rows()] == ["dog", "cat"]
    with pytest.raises(ShapeError, match="RGB uint8"):
        det.predict([np.zeros((5, 5), np.float32)])
    with pytest.raises(ConfigError, match="score"):
        det.predict([np.zeros((5, 5, 3), np.uint8)], score=2.0)


def test_anchors_fitted_to_box_sizes_spread_over_the_levels():
    rng = np.random.default_rng(0)
    side = np.concatenate([rng.uniform(8, 16, 50), rng.uniform(100, 140, 50)])
    wh = np.stack([side, side * 2.0], 1)  # all boxes twice as tall as wide
    sizes, ratios = fit_anchors(wh, arch="retinanet")
    flat = [s for level in sizes for s in level]
    assert len(sizes) == 5 and all(len(level) == 3 for level in sizes) and flat == sorted(flat)
    scale = np.sqrt(wh[:, 0] * wh[:, 1])
    assert flat[0] < 20 and flat[-1] > 150 and flat[0] >= scale.min() and flat[-1] <= scale.max()
    assert ratios == [2.0]  # h / w of every box
    sizes, _ = fit_anchors(wh, arch="faster_rcnn")
    assert len(sizes) == 4 and all(len(level) == 1 for level in sizes)
    net = build_detector({"arch": "retinanet", "backbone": "resnet18", "num_classes": 1, "img_size": 64, "fpn_channels": 64,
                          "anchor_sizes": [[8.0], [16.0], [24.0], [32.0], [48.0]], "aspect_ratios": [0.5, 2.0]})
    assert net.anchor_generator.num_anchors_per_location() == [2] * 5
    assert build_detector({"arch": "fcos", "backbone": "resnet18", "num_classes": 1, "img_size": 64})\
        .pixlearn_detect_spec["anchor_sizes"] is None  # anchor-free
    with pytest.raises(ConfigError, match="no boxes"):
        fit_anchors(np.zeros((0, 2)), arch="retinanet")


def test_backbone_weights_load_strictly_into_the_feature_extractor(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(1)
    classifier = torchvision.models.resnet18(weights=None)
    state = {k: v.contiguous() for k, v in classifier.state_dict().items()}
    save_file(state, str(tmp_path / "resnet18.safetensors"))
    net = build_detector({"arch": "faster_rcnn", "backbone": "resnet18", "num_classes": 1, "img_size": 64, "fpn_channels": 64,
                          "backbone_weights": str(tmp_path / "resnet18.safetensors")})
    body = net.backbone.body.state_dict()
    assert net.pixlearn_backbone_load["loaded"] == len(body)
    assert net.pixlearn_backbone_load["left_out"] == 2  # fc.weight, fc.bias: the classifier head
    assert all(torch.equal(body[k], state[k]) for k in body)

    missing = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    save_file(missing, str(tmp_path / "cut.safetensors"))
    with pytest.raises(ConfigError, match="not in the file"):
        load_backbone_weights(net, tmp_path / "cut.safetensors", backbone="resnet18")
    save_file({**state, "decoder.weight": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ConfigError, match="belong to no part of resnet18"):
        load_backbone_weights(net, tmp_path / "foreign.safetensors", backbone="resnet18")
    save_file({**state, "conv1.weight": torch.zeros(64, 3, 3, 3)}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ShapeError, match="conv1.weight"):
        load_backbone_weights(net, tmp_path / "shape.safetensors", backbone="resnet18")


def test_bad_specs_are_typed_errors_that_name_the_fix():
    with pytest.raises(UnknownNameError, match="unknown detector architecture 'yolo'.*fcos"):
        build_detector({"arch": "yolo", "num_classes": 1})
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        build_detector({"arch": "fcos", "backbone": "resnet1", "num_classes": 1})
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 1"):
        build_detector({"arch": "fcos", "backbone": "resnet18", "num_classes": 0})
    with pytest.raises(ConfigError, match="anchor_sizes for faster_rcnn must be 4 lists"):
        build_detector({"arch": "faster_rcnn", "backbone": "resnet18", "num_classes": 1, "anchor_sizes": [[32.0]]})
    with pytest.raises(ConfigError, match="unknown detector spec key 'img_szie'; did you mean 'img_size'"):
        build_detector({"arch": "fcos", "num_classes": 1, "img_szie": 64})
