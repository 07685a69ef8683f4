"""The general ImageNet labeller: found through the local weights folders, a clear message without them,
a strict check of the file, and real labels from the shared EfficientNet-Lite0 weights (skipped without them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
needs_shared = pytest.mark.skipif(not SHARED.is_file(), reason=f"{SHARED} is not on this machine")


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """An empty PIXLEARN_WEIGHTS folder, and a cache without weights (nothing from the user's own cache)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(folder))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    return folder


def test_without_weights_the_error_says_how_to_add_them(weights_dir) -> None:
    from pixlearn.models import WeightsNotFoundError
    from pixlearn.tasks.imagenet_labels import LabellerUnavailable, find_labeller_weights, label_image

    assert find_labeller_weights() is None
    with pytest.raises(LabellerUnavailable) as info:
        label_image(np.zeros((8, 8, 3), np.uint8))
    msg = str(info.value)
    assert isinstance(info.value, WeightsNotFoundError)
    assert "pixlearn weights add tf_efficientnet_lite0.in1k.safetensors --model tf_efficientnet_lite0" in msg
    assert str(weights_dir) in msg and "PIXLEARN_WEIGHTS" in msg


def test_a_file_of_another_model_is_refused_naming_it(weights_dir) -> None:
    from torch import nn

    from pixlearn.models import WeightsMismatchError, save_weights
    from pixlearn.tasks.imagenet_labels import get_labeller

    save_weights(nn.Linear(4, 10), weights_dir / "tf_efficientnet_lite0.in1k.safetensors")
    with pytest.raises(WeightsMismatchError, match="does not fit model 'tf_efficientnet_lite0.in1k'"):
        get_labeller()
    with pytest.raises(WeightsMismatchError):  # remembered: not rebuilt at every call
        get_labeller()


@pytest.mark.parametrize("bad, fragment", [(np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\)"),
                                           (np.full((4, 4, 3), np.nan), "NaN"),
                                           (np.zeros((4, 4, 3), np.int64), "unsupported pixel type")])
def test_bad_images_are_refused_with_the_reason(bad, fragment) -> None:
    from pixlearn._core.errors import PixlearnError
    from pixlearn.tasks.imagenet_labels import _as_rgb_uint8

    with pytest.raises(PixlearnError, match=fragment):
        _as_rgb_uint8(bad)


def test_grey_rgba_and_float_images_become_rgb_uint8() -> None:
    from pixlearn.tasks.imagenet_labels import _as_rgb_uint8

    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert _as_rgb_uint8(grey).shape == (3, 4, 3) and (_as_rgb_uint8(grey)[..., 2] == grey).all()
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 7
    assert _as_rgb_uint8(rgba).shape == (3, 4, 3) and (_as_rgb_uint8(rgba)[..., 0] == 7).all()
    assert _as_rgb_uint8(np.ones((2, 2, 3)))[0, 0].tolist() == [255, 255, 255]


@needs_shared
def test_real_weights_label_coffee_and_a_cat(weights_dir) -> None:
    from skimage import data

    from pixlearn.models import add_weights
    from pixlearn.tasks.imagenet_labels import get_labeller, label_image

    add_weights(SHARED, "tf_efficientnet_lite0")  # `pixlearn weights add`: checked, placed in PIXLEARN_WEIGHTS
    assert (weights_dir / "tf_efficientnet_lite0.in1k.safetensors").is_file()
    coffee = label_image(data.coffee(), top_k=3)
    assert len(coffee) == 3 and coffee[0]["label"] == "espresso" and coffee[0]["score"] > 0.5
    assert [e["score"] for e in coffee] == sorted((e["score"] for e in coffee), reverse=True)
    cat = label_image(data.chelsea(), top_k=1)
    assert "cat" in cat[0]["label"] or cat[0]["label"] == "tabby, tabby cat", cat
    assert get_labeller() is get_labeller()  # built once per file
    with pytest.raises(Exception, match="top_k=0"):
        label_image(data.coffee(), top_k=0)
