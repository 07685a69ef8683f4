"""write_image round trips and refusals; iter_images keeps going past bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pixlearn
from pixlearn import ImageDecodeError, ImageNotFoundError, ImageWriteError, ShapeError, read_image, write_image
from pixlearn.io import expand_sources, iter_images

from .samples import quadrants


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".bmp"])
def test_lossless_round_trip(tmp_path, ext):
    img = quadrants()
    path = write_image(tmp_path / f"out{ext}", img)
    assert np.array_equal(read_image(path), img)
    grey = img[..., 0]
    assert np.array_equal(read_image(write_image(tmp_path / f"g{ext}", grey), mode="unchanged"), grey)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp"])
def test_lossy_round_trip_and_quality(tmp_path, ext):
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    hi = write_image(tmp_path / f"hi{ext}", img, quality=95)
    lo = write_image(tmp_path / f"lo{ext}", img, quality=20)
    assert hi.stat().st_size > lo.stat().st_size
    assert read_image(hi).shape == (64, 64, 3)


def test_rgba_and_uint16_png(tmp_path):
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[0, 0, 3] = 7
    assert np.array_equal(read_image(write_image(tmp_path / "a.png", rgba), mode="RGBA"), rgba)
    deep = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    assert np.array_equal(read_image(write_image(tmp_path / "d.png", deep), mode="unchanged"), deep)


def test_write_creates_folders_and_leaves_no_temp_files(tmp_path):
    path = write_image(tmp_path / "a" / "b" / "c.png", quadrants())
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["c.png"]


def test_write_refusals(tmp_path):
    with pytest.raises(ShapeError, match="float64"):
        write_image(tmp_path / "f.png", np.zeros((2, 2, 3)))
    with pytest.raises(ShapeError, match="JPEG has no alpha"):
        write_image(tmp_path / "a.jpg", np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ShapeError, match=r"\(H, W\)"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ImageWriteError, match=r"'\.gif'"):
        write_image(tmp_path / "a.gif", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(pixlearn.ConfigError, match="quality"):
        write_image(tmp_path / "a.jpg", np.zeros((2, 2, 3), np.uint8), quality=0)
    assert not list(tmp_path.iterdir())


def test_iter_images_survives_bad_files(tmp_path):
    write_image(tmp_path / "a.png", quadrants())
    write_image(tmp_path / "sub" / "b.jpg", quadrants())
    (tmp_path / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not picked up from a folder")
    results = {p.name: r for p, r in iter_images([tmp_path])}
    assert set(results) == {"a.png", "b.jpg", "broken.jpg", "empty.png"}
    assert isinstance(results["a.png"], np.ndarray)
    assert isinstance(results["b.jpg"], np.ndarray)
    assert isinstance(results["broken.jpg"], ImageDecodeError)
    assert isinstance(results["empty.png"], ImageDecodeError)


def test_iter_images_globs_files_and_missing(tmp_path):
    write_image(tmp_path / "x1.png", quadrants())
    write_image(tmp_path / "x2.png", quadrants())
    write_image(tmp_path / "deep" / "x3.png", quadrants())
    got = [p.name for p, _ in iter_images([str(tmp_path / "x*.png")])]
    assert got == ["x1.png", "x2.png"]
    got = [p.name for p, _ in iter_images([str(tmp_path / "**" / "*.png")])]
    assert sorted(got) == ["x1.png", "x2.png", "x3.png"]
    (path, err), = list(iter_images([tmp_path / "missing.png"]))
    assert isinstance(err, ImageNotFoundError)


def test_expand_sources_keeps_roots_for_mirroring(tmp_path):
    write_image(tmp_path / "sub" / "a.png", quadrants())
    [(path, root)] = expand_sources([tmp_path])
    assert root == tmp_path and path.relative_to(root).as_posix() == "sub/a.png"
    # the same file named twice is listed once
    assert len(expand_sources([tmp_path, tmp_path / "sub" / "a.png"])) == 1


def test_image_info_reports_header(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(np.zeros((5, 7), np.uint16)).save(path)
    info = pixlearn.image_info(path)
    assert (info.format, info.width, info.height, info.bit_depth, info.frames) == ("PNG", 7, 5, 16, 1)
    assert info.to_dict()["source"] == str(path)
