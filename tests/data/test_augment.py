"""Augmentation: boxes and masks stay on the image, photometric steps spare the labels, names are checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixlearn._core.errors import ConfigError, ShapeError, UnknownNameError
from pixlearn._core.types import Boxes, BoxFormat, Sample
from pixlearn.data.augment import PRESETS, build_augment, parse_augment, sample_seed, to_tensor_sample

H, W = 48, 64
Y1, Y2, X1, X2 = 14, 34, 18, 42  # the white rectangle: rows Y1..Y2-1, cols X1..X2-1


def rect_sample(*, boxes_extra: list | None = None) -> Sample:
    image = np.zeros((H, W, 3), np.uint8)
    image[Y1:Y2, X1:X2] = 255
    mask = np.zeros((H, W), np.uint8)
    mask[Y1:Y2, X1:X2] = 3
    return Sample(
        image=image,
        boxes=Boxes(np.array([[X1, Y1, X2, Y2]], np.float32), BoxFormat.XYXY, canvas_size=(H, W)),
        box_labels=np.array([2]),
        masks=(mask > 0)[None],
        mask=mask,
    )


def bbox(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


GEOMETRIC = {
    "hflip": [{"hflip": {"p": 1.0}}],
    "vflip": [{"vflip": {"p": 1.0}}],
    "rotate+25": [{"rotate": {"degrees": [25, 25]}}],
    "rotate-15": [{"rotate": {"degrees": [-15, -15]}}],
    "zoom": [{"zoom_crop": {"scale": [0.3, 0.6]}}],
    "rot90": [{"rot90": {}}],
    "all": [{"hflip": {"p": 0.5}}, {"zoom_crop": {"scale": [0.5, 1.0]}}, {"rotate": {"degrees": 10}}],
}


@pytest.mark.parametrize("task", ["instance", "segment"])
@pytest.mark.parametrize("name", list(GEOMETRIC))
@pytest.mark.parametrize("img_size", [None, (40, 56)])
def test_geometric_steps_keep_boxes_masks_and_pixels_aligned(name, task, img_size):
    aug = build_augment(GEOMETRIC[name], task=task, img_size=img_size)
    for seed in range(4):
        out = aug(rect_sample(), seed=seed)
        h, w = img_size or (H, W)
        assert out.image.shape == (h, w, 3) and out.image.dtype == np.uint8
        assert out.mask.shape == (h, w) and out.mask.dtype == np.uint8
        assert set(np.unique(out.mask)) <= {0, 3}  # nearest interpolation: no new class ids
        assert out.boxes.canvas_size == (h, w)
        if len(out.boxes) == 0:  # the crop lost the object: its mask went with it
            assert out.masks.shape == (0, h, w) and len(out.box_labels) == 0
            continue
        assert out.box_labels.tolist() == [2] and out.masks.shape == (1, h, w)
        np.testing.assert_array_equal(out.masks[0], out.mask == 3)
        np.testing.assert_allclose(bbox(out.masks[0]), out.boxes.data[0], atol=2.0)
        bright = out.image.mean(axis=2) > 127
        inter, union = (bright & out.masks[0]).sum(), (bright | out.masks[0]).sum()
        assert inter / union > 0.85, (name, seed, inter / union)


def test_flips_are_exact():
    s = rect_sample()
    out = build_augment([{"hflip": {"p": 1}}, {"vflip": {"p": 1}}], task="instance")(s)
    np.testing.assert_array_equal(out.image, s.image[::-1, ::-1])
    np.testing.assert_array_equal(out.mask, s.mask[::-1, ::-1])
    np.testing.assert_allclose(out.boxes.data, [[W - X2, H - Y2, W - X1, H - Y1]])


def test_rot90_turns_exactly_and_draws_every_quarter_turn():
    size = 40
    image = np.zeros((size, size, 3), np.uint8)
    image[5:12, 20:33] = 255
    mask = (image[..., 0] > 0).astype(np.uint8) * 3
    s = Sample(image=image, mask=mask, boxes=Boxes(np.array([[20, 5, 33, 12]], np.float32), BoxFormat.XYXY, canvas_size=(size, size)),
               box_labels=np.array([1]), masks=(mask > 0)[None])
    aug = build_augment([{"rot90": {}}], task="instance")
    seen = set()
    for seed in range(16):
        out = aug(s, seed=seed)
        k = next(k for k in range(4) if np.array_equal(out.image, np.rot90(image, k)))  # exact: one of the 4 turns
        np.testing.assert_array_equal(out.mask, np.rot90(mask, k))
        np.testing.assert_allclose(out.boxes.data[0], bbox(out.masks[0]))
        seen.add(k)
    assert seen == {0, 1, 2, 3}
    wide = rect_sample()  # H x W, not square: turned by 0 or 180 only, so the size stays
    for seed in range(8):
        out = build_augment([{"rot90": {}}], task="segment")(wide, seed=seed)
        assert out.image.shape == wide.image.shape
        assert any(np.array_equal(out.mask, np.rot90(wide.mask, k)) for k in (0, 2))


@pytest.mark.parametrize(
    "spec",
    [
        [{"color": {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.1}}],
        [{"noise": {"sigma": 0.1}}],
        [{"blur": {"sigma": [1.0, 2.0]}}],
    ],
)
def test_photometric_steps_change_the_image_only(spec):
    s = rect_sample()
    s.target = s.image.copy()
    s.image = s.image.copy()
    s.image[..., 0] = 100  # colour for hue/saturation to work on
    out = build_augment(spec, task="instance")(s, seed=1)
    assert not np.array_equal(out.image, s.image)
    np.testing.assert_array_equal(out.mask, s.mask)
    np.testing.assert_array_equal(out.masks, s.masks)
    np.testing.assert_array_equal(out.boxes.data, s.boxes.data)
    np.testing.assert_array_equal(out.target, s.target)  # a restoration target is a label too


def test_restoration_target_moves_with_geometry():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    s = Sample(image=clean.copy(), target=clean)
    out = build_augment([{"rotate": {"degrees": 20}}, {"zoom_crop": {"scale": [0.5, 0.8]}}], task="restore")(
        s, seed=3
    )
    np.testing.assert_array_equal(out.image, out.target)
    assert not np.array_equal(out.image, clean)


def test_degenerate_boxes_dropped_with_their_labels_and_masks():
    s = rect_sample()
    s.boxes = Boxes(np.array([[X1, Y1, X2, Y2], [50, 10, 50, 30]], np.float32), BoxFormat.XYXY, (H, W))
    s.box_labels = np.array([2, 7])
    s.masks = np.concatenate([s.masks, np.zeros((1, H, W), bool)])
    out = build_augment("none", task="detect")(s)
    assert out.box_labels.tolist() == [2] and out.masks.shape == (1, H, W) and len(out.boxes) == 1
    np.testing.assert_array_equal(out.mask, s.mask)  # the semantic mask is not a per-box target


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("task", ["classify", "detect", "segment", "instance"])
def test_presets_build_and_run_for_every_task(preset, task):
    out = build_augment(preset, task=task, img_size=32)(rect_sample(), seed=0)
    assert out.image.shape == (32, 32, 3) and out.mask.shape == (32, 32)
    assert out.masks.shape[1:] == (32, 32) and len(out.masks) == len(out.boxes) == len(out.box_labels)


def test_names_and_options_are_validated_with_suggestions():
    with pytest.raises(UnknownNameError, match="did you mean 'standard'"):
        build_augment("standart", task="classify")
    with pytest.raises(UnknownNameError, match="did you mean 'rotate'"):
        build_augment([{"rotat": {"degrees": 5}}], task="classify")
    with pytest.raises(UnknownNameError, match="did you mean 'brightness'"):
        build_augment([{"color": {"brigthness": 0.2}}], task="classify")
    with pytest.raises(UnknownNameError, match="did you mean 'detect'"):
        build_augment("none", task="detekt")
    bad = [
        [{"hflip": {"p": 1.5}}],
        [{"zoom_crop": {"scale": [0.9, 0.5]}}],
        [{"zoom_crop": {"scale": [0.5, 2.0]}}],
        [{"noise": {"sigma": "a lot"}}],
        [{"blur": {"kernel_size": 4}}],
        [{"rotate": 10}],
        ["hflip", 3],
        42,
    ]
    for spec in bad:
        with pytest.raises(ConfigError):
            build_augment(spec, task="classify")


def test_yaml_pipelines(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text(
        "- hflip: {p: 0.5}\n- rotate: {degrees: 10}\n- zoom_crop: {scale: [0.8, 1.0]}\n"
        "- color: {brightness: 0.2, contrast: 0.2, saturation: 0.2}\n- noise: {sigma: 0.03}\n"
        "- blur: {sigma: [0.1, 1.5]}\n"
    )
    steps = parse_augment(path)
    assert [n for n, _ in steps] == ["hflip", "rotate", "zoom_crop", "color", "noise", "blur"]
    assert steps[1][1]["degrees"] == (-10.0, 10.0)
    assert parse_augment(steps) == steps  # already-parsed steps pass through unchanged
    (tmp_path / "typo.yml").write_text("steps:\n  - hflp: {p: 0.5}\n")
    with pytest.raises(UnknownNameError, match="did you mean 'hflip'"):
        parse_augment(str(tmp_path / "typo.yml"))


def test_same_seed_same_augmentation_and_global_rng_untouched():
    aug = build_augment("strong", task="instance")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = aug(rect_sample(), seed=7), aug(rect_sample(), seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes.data, b.boxes.data)
    others = [aug(rect_sample(), seed=s).image for s in range(8, 12)]
    assert any(not np.array_equal(a.image, o) for o in others)
    assert sample_seed(0, 1, 2) != sample_seed(0, 2, 1)


def test_to_tensor_sample_follows_torchvision_convention():
    s = rect_sample()
    s.label = 4
    x, y = to_tensor_sample(s, img_size=(24, 32))
    assert (
        x.shape == (3, 24, 32)
        and x.dtype == torch.float32
        and float(x.min()) == 0.0
        and float(x.max()) == 1.0
    )
    assert (
        y["boxes"].dtype == torch.float32
        and y["labels"].dtype == torch.int64
        and y["masks"].dtype == torch.uint8
    )
    torch.testing.assert_close(y["boxes"], torch.tensor([[X1 / 2, Y1 / 2, X2 / 2, Y2 / 2]]))
    assert y["masks"].shape == (1, 24, 32) and y["mask"].shape == (24, 32) and y["mask"].dtype == torch.int64
    assert int(y["label"]) == 4 and y["label"].dtype == torch.int64
    xn, _ = to_tensor_sample(s, img_size=None, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert xn.shape == (3, H, W)
    torch.testing.assert_close(xn[:, 0, 0], torch.full((3,), -2.0))
    torch.testing.assert_close(xn[:, Y1, X1], torch.full((3,), 2.0))
    with pytest.raises(ConfigError):
        to_tensor_sample(s, img_size=None, mean=[0.5] * 3)
    with pytest.raises(ShapeError):
        to_tensor_sample(s, img_size=None, mean=[0.5] * 2, std=[0.2] * 2)
