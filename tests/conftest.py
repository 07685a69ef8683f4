"""Shared fixtures: small images made in-process (tests never need the network or ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: Test folders that train tiny networks: torch runs on one intra-op thread there (tiny models gain nothing
#: from threads, and on a busy 2-core machine two threads stall each other several times over).
_ONE_TORCH_THREAD = frozenset({"classify", "detect", "engine", "models", "restore", "segment", "tasks"})
_TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _one_torch_thread(request: pytest.FixtureRequest):
    path = Path(request.path)
    parts = path.relative_to(_TESTS).parts if path.is_relative_to(_TESTS) else ()
    if len(parts) < 2 or parts[0] not in _ONE_TORCH_THREAD:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def photo() -> np.ndarray:
    """A real 128x128 RGB photo (scikit-image's astronaut, shipped inside the package)."""
    from skimage import data
    from skimage.transform import resize

    img = resize(data.astronaut(), (128, 128), anti_aliasing=True, preserve_range=True)
    return np.rint(img).astype(np.uint8)


@pytest.fixture
def gray_photo(photo: np.ndarray) -> np.ndarray:
    """The same photo as (H, W) uint8 luma."""
    return (photo @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
