"""Shared fixtures: small images made in-process (tests never need the network or ../shared)."""

from __future__ import annotations

import numpy as np
import pytest


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
