"""SegmentTask: losses (CE, Dice, focal, Lovasz, sums) in binary and multi-class form, the ignore label, validation on large images."""

from __future__ import annotations

import pytest
import torch

from pixlearn._core.errors import ConfigError, ShapeError, UnknownNameError
from pixlearn.models import create_segmentation_model
from pixlearn.tasks.segment.module import SegmentLoss, SegmentTask, logits_to_mask, parse_loss


def _confident(mask: torch.Tensor, k: int, scale: float = 20.0) -> torch.Tensor:
    """Logits that put (almost) all probability on the true class."""
    return torch.nn.functional.one_hot(mask.clamp(0, k - 1), k).permute(0, 3, 1, 2).float() * scale - scale / 2


def test_parse_loss():
    assert parse_loss("ce") == [(1.0, "ce")]
    assert parse_loss("BCE + 0.5*Focal") == [(1.0, "ce"), (0.5, "focal")]
    with pytest.raises(UnknownNameError, match="did you mean 'dice'"):
        parse_loss("dise")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_loss("ce+*dice")


@pytest.mark.parametrize("spec", ["ce", "dice", "focal", "lovasz", "ce+dice", "0.5*focal+dice", "ce+lovasz"])
def test_multiclass_losses_are_small_for_a_right_answer_and_large_for_a_wrong_one(spec, rng):
    mask = torch.as_tensor(rng.integers(0, 3, (2, 8, 8)))
    loss = SegmentLoss(spec, binary=False)
    right = float(loss(_confident(mask, 3), mask))
    wrong = float(loss(_confident((mask + 1) % 3, 3), mask))
    assert right < 0.02 < wrong


@pytest.mark.parametrize("spec", ["ce", "dice", "focal", "lovasz", "ce+dice", "ce+lovasz"])
def test_binary_losses_use_one_logit(spec, rng):
    mask = torch.as_tensor(rng.integers(0, 2, (2, 8, 8)))
    loss = SegmentLoss(spec, binary=True)
    logit = (mask.float() * 2 - 1).unsqueeze(1) * 10
    assert float(loss(logit, mask)) < 0.02 < float(loss(-logit, mask))


def test_binary_dice_scores_both_classes_as_the_two_class_model_does(rng):
    # a binary model's logit z is a 2-class model's logits (0, z): the Dice loss must be the same, both classes in it
    mask = torch.as_tensor(rng.integers(0, 2, (2, 8, 8)))
    z = torch.randn(2, 1, 8, 8)
    binary = float(SegmentLoss("dice", binary=True)(z, mask))
    two_class = float(SegmentLoss("dice", binary=False)(torch.cat([torch.zeros_like(z), z], dim=1), mask))
    assert binary == pytest.approx(two_class, abs=1e-5)
    # a thin background (membranes) predicted as foreground everywhere: the foreground's Dice alone would barely notice
    thin = torch.ones(1, 8, 8, dtype=torch.long)
    thin[:, :, 3] = 0
    assert float(SegmentLoss("dice", binary=True)(torch.full((1, 1, 8, 8), 10.0), thin)) > 0.5


@pytest.mark.parametrize("term", ["dice", "lovasz"])
def test_binary_region_terms_score_the_thin_background_too(term):
    # membranes (class 0, one column of eight) predicted as cell everywhere: the foreground's IoU alone is 7/8, so a
    # foreground-only Lovasz or Dice would barely notice; scored over both classes the loss is about half
    thin = torch.ones(1, 8, 8, dtype=torch.long)
    thin[:, :, 3] = 0
    everywhere = torch.full((1, 1, 8, 8), 10.0)
    assert float(SegmentLoss(term, binary=True)(everywhere, thin)) > 0.5
    assert float(SegmentLoss(term, binary=True)(torch.where(thin.bool(), 10.0, -10.0).unsqueeze(1), thin)) < 0.02


@pytest.mark.parametrize("binary", [False, True])
def test_ignored_pixels_do_not_count(binary, rng):
    k = 1 if binary else 3
    mask = torch.as_tensor(rng.integers(0, 2, (1, 8, 8)))
    logits = torch.randn(1, k, 8, 8)
    loss = SegmentLoss("ce+dice+focal+lovasz", binary=binary)
    half = mask.clone()
    half[:, :4] = 255
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(1, k, 4, 8) * 50  # anything at ignored pixels
    assert float(loss(logits, half)) == pytest.approx(float(loss(changed, half)), rel=1e-5)


def test_logits_to_mask():
    z = torch.tensor([[[[-1.0, 2.0]]]])
    assert logits_to_mask(z, binary=True).tolist() == [[[0, 1]]]
    assert logits_to_mask(torch.tensor([[[[0.0]], [[3.0]], [[1.0]]]]), binary=False).tolist() == [[[1]]]


def test_task_checks_the_network_against_the_classes():
    net = create_segmentation_model("unet", encoder="tu-test_efficientnet", num_classes=3, img_size=32)
    with pytest.raises(ConfigError, match="3 output channel"):
        SegmentTask(net, num_classes=4)
    task = SegmentTask(net, num_classes=3, tile=32)
    with pytest.raises(ShapeError, match="one \\(H, W\\) integer mask per image"):
        task.training_loss(torch.rand(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))


def test_validation_runs_large_images_tile_by_tile_and_logs_scores():
    net = create_segmentation_model("unet", encoder="tu-test_efficientnet", num_classes=1, img_size=32)
    task = SegmentTask(net, num_classes=2, tile=32).eval()
    x = torch.rand(1, 3, 50, 90)
    logits = task.validation_update(x, torch.randint(0, 2, (1, 50, 90)))
    assert logits.shape == (1, 1, 50, 90)
    scores = {k: float(v.compute()) for k, v in task.validation_metrics().items()}
    assert set(scores) == {"val_loss", "val_miou", "val_dice", "val_pixel_accuracy"}
    assert all(0.0 <= scores[k] <= 1.0 for k in ("val_miou", "val_dice", "val_pixel_accuracy"))
