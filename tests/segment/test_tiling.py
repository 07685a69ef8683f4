"""Sliding-window inference: tiled output equals whole-image output for fully convolutional functions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.engine.tiling import blend_window, pad_reflect, tile_starts, tiled_apply, with_tta


def _conv_net(seed: int = 0) -> nn.Module:
    """Three 3x3 convolutions: a 3-pixel halo where tile borders differ from the whole image."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)
    ).eval()


@pytest.mark.parametrize("shape", [(1, 3, 70, 90), (2, 3, 64, 64), (1, 3, 33, 129)])
def test_pointwise_function_is_reproduced_exactly(shape):
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Tanh(), nn.Conv2d(4, 5, 1)).eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        y = tiled_apply(net, x, tile=32, overlap=8, batch=3)
        assert y.shape == (shape[0], 5, *shape[2:])
        assert torch.allclose(y, net(x), atol=1e-5)


def test_conv_net_tiled_matches_whole_image_within_tolerance():
    net = _conv_net()
    x = torch.rand(1, 3, 100, 130)
    with torch.no_grad():
        whole = net(x)
        blended = tiled_apply(net, x, tile=48, overlap=16)
        plain = tiled_apply(net, x, tile=48, overlap=16, window="none")
    err = (blended - whole).abs()
    scale = whole.abs().max()
    assert float(err.max()) < 0.02 * float(scale)
    assert float(err.mean()) < 1e-3 * float(scale)
    # blending is what removes the seams: plain averaging of the overlaps leaves larger errors
    assert float((plain - whole).abs().max()) > float(err.max())


def test_small_image_is_padded_to_the_multiple_and_cropped_back():
    seen = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape[-2:]))
        return t[:, :1] * 2

    x = torch.rand(1, 3, 20, 45)
    y = tiled_apply(fn, x, tile=64, overlap=0.25, multiple=32)
    assert y.shape == (1, 1, 20, 45)
    assert torch.allclose(y, x[:, :1] * 2)
    assert set(seen) == {(32, 64)}


def test_channels_may_change_and_grad_mode_is_the_callers():
    net = nn.Conv2d(3, 7, 1)
    x = torch.rand(1, 3, 40, 40)
    y = tiled_apply(net, x, tile=16, overlap=4)
    assert y.shape == (1, 7, 40, 40) and y.requires_grad


def test_helpers_known_answers():
    assert tile_starts(100, 40, 10) == [0, 30, 60]
    assert tile_starts(10, 40, 10) == [0]
    w = blend_window((8, 8), (4, 4), edges=(True, True, False, False), kind="hann")
    assert torch.allclose(w[4, :4] + w[4, 4:], torch.ones(4))  # left ramp + mirrored right ramp: a partition of unity
    assert float(blend_window((8, 8), (4, 4)).min()) > 0
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert pad_reflect(x, 3, 0).shape == (1, 1, 5, 2)
    assert pad_reflect(torch.ones(1, 1, 1, 1), 2, 2).shape == (1, 1, 3, 3)


def test_errors_name_the_problem():
    f = nn.Identity()
    with pytest.raises(ShapeError, match="N, C, H, W"):
        tiled_apply(f, torch.rand(3, 8, 8), tile=4)
    with pytest.raises(ConfigError, match="multiple of 32"):
        tiled_apply(f, torch.rand(1, 3, 64, 64), tile=48, multiple=32)
    with pytest.raises(ConfigError, match="fraction"):
        tiled_apply(f, torch.rand(1, 3, 64, 64), tile=32, overlap=1.5)
    with pytest.raises(ShapeError, match="keep each tile"):
        tiled_apply(lambda t: t[:, :, :-1], torch.rand(1, 3, 64, 64), tile=32)


def test_tta_averages_the_mirrored_passes_mapped_back():
    net = _conv_net(1)
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert with_tta(net, "none") is net
        flip = with_tta(net, "flip")(x)
        by_hand = (net(x) + net(x.flip(3)).flip(3) + net(x.flip(2)).flip(2) + net(x.flip((2, 3))).flip((2, 3))) / 4
        assert torch.allclose(flip, by_hand, atol=1e-6)
        assert not torch.allclose(flip, net(x), atol=1e-3)  # the passes differ: a real average, not one pass
        # the averaged function commutes with the symmetries it averages over
        assert torch.allclose(with_tta(net, "flip")(x.flip(3)), flip.flip(3), atol=1e-5)
        d4 = with_tta(net, "d4")
        assert torch.allclose(d4(x.transpose(2, 3)), d4(x).transpose(2, 3), atol=1e-5)
        assert not torch.allclose(with_tta(net, "flip")(x.transpose(2, 3)), flip.transpose(2, 3), atol=1e-3)
        # and composes with tiling: mirrored tiles of a large image
        y = tiled_apply(with_tta(net, "flip"), torch.rand(1, 3, 70, 90), tile=32, overlap=8)
        assert y.shape == (1, 2, 70, 90)


def test_tta_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="tta must be one of none, transpose, flip, d4, got 'x8'"):
        with_tta(_conv_net(), "x8")
