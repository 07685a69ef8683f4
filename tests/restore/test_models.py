"""Restoration networks: shapes for grey and colour, scales, the spec that rebuilds them, errors."""

from __future__ import annotations

import pytest
import torch

from pixlearn import ConfigError, UnknownNameError
from pixlearn.models import build_restorer, create_restorer, list_restorers

SMALL = {"dncnn": {"depth": 3, "width": 4}, "unet": {"width": 4, "levels": 2}, "espcn": {"width": 4}, "edsr": {"width": 4, "blocks": 1}}


@pytest.mark.parametrize("name", ["dncnn", "unet"])
@pytest.mark.parametrize("chans", [1, 3])
def test_same_size_models_keep_any_size(name: str, chans: int) -> None:
    m = create_restorer(name, in_chans=chans, **SMALL[name]).eval()
    assert m(torch.rand(2, chans, 13, 22)).shape == (2, chans, 13, 22)


@pytest.mark.parametrize("name", ["espcn", "edsr"])
@pytest.mark.parametrize("scale", [2, 4])
def test_upsamplers_multiply_the_size(name: str, scale: int) -> None:
    m = create_restorer(name, in_chans=3, scale=scale, **SMALL[name]).eval()
    assert m(torch.rand(1, 3, 7, 9)).shape == (1, 3, 7 * scale, 9 * scale)


@pytest.mark.parametrize("name", ["espcn", "edsr"])
def test_fresh_upsampler_is_bicubic(name: str) -> None:
    m = create_restorer(name, in_chans=1, scale=2, **SMALL[name]).eval()
    x = torch.rand(1, 1, 8, 8)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(m(x), expected, atol=1e-6)


def test_dncnn_subtracts_the_noise_it_predicts() -> None:
    m = create_restorer("dncnn", in_chans=1, depth=3, width=4).eval()
    x = torch.rand(1, 1, 10, 10)
    assert torch.allclose(m(x), x - m.noise(x))
    assert sum(isinstance(l, torch.nn.BatchNorm2d) for l in m.modules()) == 1
    assert not any(isinstance(l, torch.nn.BatchNorm2d) for l in create_restorer("dncnn", depth=3, width=4, bn=False).modules())


def test_spec_rebuilds_the_same_architecture() -> None:
    m = create_restorer("edsr", in_chans=3, scale=4, width=8, blocks=2)
    spec = m.pixlearn_spec.to_dict()
    assert spec["name"] == "edsr" and spec["scale"] == 4 and spec["kwargs"]["blocks"] == 2
    rebuilt = build_restorer(spec)
    assert rebuilt.pixlearn_spec == m.pixlearn_spec
    rebuilt.load_state_dict(m.state_dict())  # same tensors, same shapes


def test_errors_name_the_fix() -> None:
    assert set(list_restorers()) == {"dncnn", "unet", "espcn", "edsr"}
    with pytest.raises(UnknownNameError, match="did you mean 'dncnn'"):
        create_restorer("dncnm")
    with pytest.raises(UnknownNameError, match="did you mean 'depth'"):
        create_restorer("dncnn", deph=3)
    with pytest.raises(ConfigError, match="espcn or edsr"):
        create_restorer("dncnn", scale=2)
    with pytest.raises(ConfigError, match="scale=2, 3 or 4"):
        create_restorer("espcn", scale=1)
    with pytest.raises(ConfigError, match="1 \\(grey\\) or 3"):
        create_restorer("unet", in_chans=2)
    with pytest.raises(Exception, match=r"\(N, 1, H, W\)"):
        create_restorer("dncnn", depth=3, width=4)(torch.rand(1, 3, 8, 8))
