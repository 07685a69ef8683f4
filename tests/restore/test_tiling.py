"""Tiled inference: equal to whole-image inference within tolerance, any size, super-resolution scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixlearn import ShapeError
from pixlearn.models import create_restorer
from pixlearn.tasks.restore.predict import Restorer
from pixlearn.engine.tiling import tiled_apply


def test_tiled_equals_whole_for_the_trained_denoiser(denoise_run) -> None:
    from pixlearn.tasks.restore.predict import load_restorer

    r = load_restorer(denoise_run.run_dir, tile=32)
    x = torch.rand(1, 1, 75, 101)
    with torch.no_grad():
        whole = r.model(x)
    tiled = r.restore_tensor(x)
    assert tiled.shape == whole.shape
    diff = (tiled - whole).abs()
    assert float(diff.max()) < 2 / 255 and float(diff.mean()) < 0.2 / 255


@pytest.mark.parametrize("name", ["espcn", "edsr"])
def test_tiled_super_resolution_matches_whole(name: str) -> None:
    torch.manual_seed(0)
    m = create_restorer(name, in_chans=3, scale=2, width=8, **({"blocks": 1} if name == "edsr" else {})).eval()
    with torch.no_grad():  # a non-trivial network (a fresh one is plain bicubic)
        m.tail.weight.normal_(0, 0.05)
    x = torch.rand(1, 3, 45, 70)
    with torch.no_grad():
        whole = m(x)
    tiled = Restorer(m, mode="RGB", tile=24, overlap=12).restore_tensor(x)
    assert tiled.shape == (1, 3, 90, 140)
    assert float((tiled - whole).abs().mean()) < 0.5 / 255


def test_tiled_apply_scale_places_every_tile() -> None:
    up = torch.nn.Upsample(scale_factor=3, mode="nearest")  # no border effects: tiled must equal whole exactly
    x = torch.rand(2, 1, 29, 41)
    y = tiled_apply(up, x, tile=16, overlap=4, scale=3)
    assert torch.allclose(y, up(x), atol=1e-6)
    with pytest.raises(ShapeError, match="times scale"):
        tiled_apply(up, x, tile=16, overlap=4, scale=2)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (5, 300)])
def test_restore_any_size_and_layout(shape: tuple[int, ...]) -> None:
    r = Restorer(create_restorer("unet", in_chans=1, width=4, levels=2), mode="L", tile=32)
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = r.restore(img)
    assert out.dtype == np.uint8 and out.shape == shape
    colour = Restorer(create_restorer("dncnn", in_chans=3, depth=3, width=4), mode="RGB", tile=32)
    assert colour.restore(img).shape == shape
