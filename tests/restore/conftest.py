"""Tiny clean and paired image folders made in-process, and one torch thread (a busy 2-core machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _crops(image: np.ndarray, n: int, size: int) -> list[np.ndarray]:
    from skimage.transform import resize

    h, w = image.shape[:2]
    out = []
    for k in range(n):
        y, x = (k * 53) % (h - 128), (k * 97) % (w - 128)
        crop = resize(image[y:y + 128, x:x + 128], (size, size), anti_aliasing=True, preserve_range=True)
        out.append(np.rint(crop).astype(np.uint8))
    return out


@pytest.fixture(scope="session")
def grey_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 clean grey 48x48 photos (crops of scikit-image's camera) in one folder."""
    from skimage import data

    from pixlearn.io import write_image

    root = tmp_path_factory.mktemp("grey")
    for k, img in enumerate(_crops(data.camera(), 8, 48)):
        write_image(root / f"g{k}.png", img)
    return root


@pytest.fixture(scope="session")
def sr_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 colour pairs: lr/ 24x24 (bicubic x2 down) + hr/ 48x48, same names."""
    from PIL import Image
    from skimage import data

    from pixlearn.io import write_image

    root = tmp_path_factory.mktemp("pairs")
    for k, img in enumerate(_crops(data.astronaut(), 6, 48)):
        write_image(root / "hr" / f"p{k}.png", img)
        write_image(root / "lr" / f"p{k}.png", np.asarray(Image.fromarray(img).resize((24, 24), Image.Resampling.BICUBIC)))
    return root


TINY = dict(patch=16, patches_per_image=4, batch=8, epochs=1, val_crop=32, progress=False)


@pytest.fixture(scope="session")
def denoise_run(grey_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """One tiny DnCNN trained for an epoch at sigma 25 (shared by the tests that need a run folder)."""
    import torch

    from pixlearn.tasks.restore.train import train_restorer

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_restorer(grey_folder, task="denoise", model="dncnn", sigma=25, depth=4, width=8, val_fraction=0.25,
                              out=tmp_path_factory.mktemp("runs") / "dn", **TINY)
    finally:
        torch.set_num_threads(before)
