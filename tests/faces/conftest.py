"""Face images made in the test: scikit-image's astronaut (a real face, bundled with the package) and variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def astro() -> np.ndarray:
    """The astronaut's head and shoulders (320x320 of the 512x512 photo): one face of about 90 px, which HOG finds at
    upsample 0 (the full photo also holds a weak HOG false positive lower down)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:320, 96:416])


@pytest.fixture(scope="session")
def variants(astro: np.ndarray) -> dict[str, np.ndarray]:
    """The astronaut flipped, scaled by 1.25 and by 0.5, shifted by (40, 30) on a grey canvas, two copies side by
    side, and a blank image."""
    import cv2

    shifted = np.full((380, 380, 3), 128, np.uint8)
    shifted[30:350, 40:360] = astro
    return {
        "flipped": np.ascontiguousarray(astro[:, ::-1]),
        "scaled": cv2.resize(astro, (400, 400), interpolation=cv2.INTER_AREA),
        "half": cv2.resize(astro, (160, 160), interpolation=cv2.INTER_AREA),
        "shifted": shifted,
        "two": np.ascontiguousarray(np.concatenate([astro, astro[:, ::-1]], axis=1)),
        "blank": np.full((96, 96, 3), 90, np.uint8),
    }


@pytest.fixture()
def image_files(tmp_path: Path, astro: np.ndarray, variants: dict[str, np.ndarray]) -> dict[str, Path]:
    """The images above as PNG files, plus a file that is not an image."""
    from pixlearn.io import write_image

    files = {"astro": write_image(tmp_path / "astro.png", astro)}
    for name, img in variants.items():
        files[name] = write_image(tmp_path / f"{name}.png", img)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    files["bad"] = bad
    return files
