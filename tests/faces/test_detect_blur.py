"""Face detection (HOG, CNN) and the blur_faces op: on the astronaut and its variants, in a recipe and on the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pixlearn
from pixlearn._core.errors import WeightsNotFoundError
from pixlearn.ops.faces import FaceBox, detect_faces


def _center(face: FaceBox) -> tuple[float, float]:
    x0, y0, x1, y1 = face.box
    return (x0 + x1) / 2, (y0 + y1) / 2


def test_hog_finds_the_one_face_and_follows_flips_and_shifts(astro, variants) -> None:
    faces = detect_faces(astro, upsample=0)
    assert len(faces) == 1 and faces[0].detector == "hog" and faces[0].score > 0.5
    cx, cy = _center(faces[0])
    assert 110 < cx < 150 and 110 < cy < 150  # the face is around (127, 127) of the crop
    assert 70 <= faces[0].width <= 110
    (flipped,) = detect_faces(variants["flipped"], upsample=0)
    assert abs(_center(flipped)[0] - (320 - cx)) < 6
    (shifted,) = detect_faces(variants["shifted"], upsample=0)
    assert abs(_center(shifted)[0] - (cx + 40)) < 6 and abs(_center(shifted)[1] - (cy + 30)) < 6
    (scaled,) = detect_faces(variants["scaled"], upsample=0)
    assert abs(_center(scaled)[0] - cx * 1.25) < 10
    two = detect_faces(variants["two"], upsample=0)
    assert len(two) == 2 and sorted(int(_center(f)[0] // 320) for f in two) == [0, 1]  # one face in each half
    assert detect_faces(np.asarray(variants["blank"])) == []


def test_upsampling_finds_a_small_face_and_grey_images_work(variants) -> None:
    half = variants["half"]  # a 45 px face: below HOG's 80 px window, found once the image is doubled
    assert detect_faces(half, upsample=0) == []
    (face,) = detect_faces(half, upsample=1)
    assert all(0 <= v <= 160 for v in face.box)
    grey = half.mean(axis=2).astype(np.uint8)
    assert len(detect_faces(grey, upsample=1)) == 1


def test_the_cnn_detector_finds_the_face_where_hog_does(astro) -> None:
    (cnn,) = detect_faces(astro, detector="cnn", upsample=0)
    (hog,) = detect_faces(astro, upsample=0)
    assert cnn.detector == "cnn" and cnn.score > 0.5
    assert np.hypot(*np.subtract(_center(cnn), _center(hog))) < 20


def test_bad_detection_options_are_typed_errors_before_any_work(astro) -> None:
    with pytest.raises(pixlearn.UnknownNameError, match="unknown face detector 'haar'"):
        detect_faces(astro, detector="haar")
    with pytest.raises(pixlearn.ConfigError, match=r"upsample must be an integer in \[0, 3\]"):
        detect_faces(astro, upsample=4)
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (4000, 4000, 3))  # no memory: refused on its shape
    with pytest.raises(pixlearn.ConfigError, match=r"over the limit of 40,000,000; use upsample=0 or a smaller image"):
        detect_faces(huge, upsample=1)
    with pytest.raises(pixlearn.ShapeError, match="numpy array"):
        detect_faces("astro.png")  # type: ignore[arg-type]
    with pytest.raises(pixlearn.ShapeError, match="dtype uint8"):
        detect_faces(astro.astype(np.float32))


def test_missing_model_package_names_the_pip_install(monkeypatch) -> None:
    import pixlearn.ops.faces as faces

    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsNotFoundError, match="pip install face_recognition_models"):
        faces.models_dir()


@pytest.mark.parametrize("method", ["gaussian", "pixelate"])
def test_blur_faces_changes_the_face_and_not_far_pixels(astro, method) -> None:
    from pixlearn.ops import get_op

    (face,) = detect_faces(astro, upsample=0)
    out = get_op("blur_faces")(astro, method=method, upsample=0)
    x0, y0, x1, y1 = face.box
    region = (slice(y0, y1), slice(x0, x1))
    diff = np.abs(out[region].astype(int) - astro[region].astype(int)).mean()
    assert diff > 8, diff  # the face is no longer the face
    m = round(0.2 * (x1 - x0)) + 1  # the default margin, and a pixel more
    far = np.ones(astro.shape[:2], bool)
    far[max(y0 - m, 0):y1 + m, max(x0 - m, 0):x1 + m] = False
    assert np.array_equal(out[far], astro[far])
    assert out.shape == astro.shape and out.dtype == np.uint8


def test_blur_faces_returns_an_image_without_faces_unchanged_and_checks_options(variants) -> None:
    from pixlearn.ops import get_op

    blank = variants["blank"]
    out = get_op("blur_faces")(blank)
    assert np.array_equal(out, blank) and out is not blank
    spec = get_op("blur_faces")
    assert spec.category == "faces" and spec.returns == "image"
    with pytest.raises(pixlearn.ConfigError, match=r"'upsample': 9 is out of range; expected int in \[0, 3\]"):
        spec.validate({"upsample": "9"})
    with pytest.raises(pixlearn.ConfigError, match=r"'strength': 0.0 is out of range"):
        spec.validate({"strength": "0"})
    with pytest.raises(pixlearn.ConfigError, match="'method'"):
        spec.validate({"method": "smudge"})
    assert spec.validate({"detector": "cnn", "margin": "0.5"}) == {"detector": "cnn", "margin": 0.5}


def test_blur_faces_runs_in_a_recipe_and_from_the_cli(tmp_path: Path, image_files, astro) -> None:
    from pixlearn.cli import main
    from pixlearn.io import read_image
    from pixlearn.ops.recipe import load_recipe

    recipe_file = tmp_path / "anon.yaml"
    recipe_file.write_text("name: anonymise\nsteps:\n  - blur_faces: {method: pixelate, upsample: 0, strength: 1}\n")
    recipe = load_recipe(recipe_file)
    out = recipe(astro)
    assert out.shape == astro.shape and not np.array_equal(out, astro)
    target = tmp_path / "out.png"
    assert main(["op", "blur_faces", str(image_files["astro"]), "-o", str(target), "--upsample", "0"]) == 0
    written = read_image(target)
    assert written.shape == astro.shape and not np.array_equal(written, astro)
    assert np.array_equal(written[300:, :40], astro[300:, :40])
