"""Degradations: seeded and reproducible, the right statistics, composable, parsed from strings and lists."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn import ConfigError, ShapeError, UnknownNameError
from pixlearn.tasks.restore.degrade import (
    STEPS, Blur, Downscale, GaussianNoise, Jpeg, LowLight, Pipeline, SaltPepper, degrade, preset, to_float,
)

SPECS = [
    "gaussian:sigma=25", "gaussian:sigma=0..55", "poisson:peak=10", "salt_pepper:amount=0.1", "blur:sigma=0.5..2",
    "jpeg:quality=10..40", "downscale:scale=2", "downscale:scale=4", "low_light", "blur:sigma=1+downscale:scale=2+jpeg:quality=30+gaussian:sigma=5",
]


@pytest.fixture
def clean(gray_photo: np.ndarray) -> np.ndarray:
    return to_float(gray_photo[:64, :64])


@pytest.mark.parametrize("spec", SPECS)
def test_same_seed_same_image_other_seed_other_image(clean: np.ndarray, spec: str) -> None:
    p = Pipeline.parse(spec)
    a, b, c = p(clean, seed=3), p(clean, seed=3), p(clean, seed=4)
    assert a.dtype == np.float32 and a.shape == (64 // p.scale, 64 // p.scale, 1)
    assert np.array_equal(a, b)
    if spec.startswith("downscale"):  # deterministic: no randomness at all
        assert np.array_equal(a, c)
    else:
        assert not np.array_equal(a, c)


def test_gaussian_noise_has_the_asked_sigma_and_can_stay_unclipped() -> None:
    flat = np.full((200, 200, 1), 0.5, np.float32)
    noise = Pipeline([GaussianNoise(25)], clip=False)(flat, seed=0) - 0.5
    assert abs(noise.std() * 255 - 25) < 0.5 and abs(noise.mean()) < 0.01
    dark = np.zeros((50, 50, 1), np.float32)
    assert Pipeline([GaussianNoise(25)], clip=False)(dark, seed=0).min() < 0
    assert Pipeline([GaussianNoise(25)])(dark, seed=0).min() == 0.0  # clipped by default


def test_a_range_is_drawn_per_image_within_its_bounds() -> None:
    flat = np.full((100, 100, 1), 0.5, np.float32)
    sigmas = [float((Pipeline([GaussianNoise((5, 50))], clip=False)(flat, seed=s) - 0.5).std() * 255) for s in range(8)]
    assert 4 < min(sigmas) and max(sigmas) < 51 and max(sigmas) - min(sigmas) > 5


def test_salt_and_pepper_hits_the_asked_share() -> None:
    flat = np.full((100, 100, 3), 0.5, np.float32)
    out = SaltPepper(0.2, salt=0.5)(flat, np.random.default_rng(0))
    hit = (out != 0.5).all(axis=2)
    assert abs(hit.mean() - 0.2) < 0.02
    assert abs((out[hit][:, 0] == 1.0).mean() - 0.5) < 0.05


def test_blur_jpeg_low_light_do_what_they_say(clean: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    blurred = Blur(2.0)(clean, rng)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(clean, axis=1)).mean() / 2
    j = Jpeg(10)(clean, rng)
    assert j.shape == clean.shape and 0 < np.abs(j - clean).mean() < 0.1
    assert np.allclose(j * 255, np.rint(j * 255), atol=1e-3)  # decoded back from uint8
    dark = LowLight(gamma=2.5, gain=0.5, sigma=0.0)(clean, rng)
    assert np.allclose(dark, 0.5 * clean**2.5, atol=1e-6)


def test_downscale_is_antialiased_bicubic_and_needs_divisible_sizes() -> None:
    from PIL import Image

    img = np.random.default_rng(0).random((16, 16, 1), dtype=np.float32)
    small = Downscale(2)(img, np.random.default_rng(0))
    ref = np.asarray(Image.fromarray(img[..., 0]).resize((8, 8), Image.Resampling.BICUBIC))
    assert np.allclose(small[..., 0], ref)
    assert Downscale(2, restore_size=True)(img, np.random.default_rng(0)).shape == img.shape
    with pytest.raises(ShapeError, match="divisible by 2"):
        Downscale(2)(img[:15], np.random.default_rng(0))


def test_uint8_degrade_keeps_the_layout_and_crops_to_the_scale(gray_photo: np.ndarray, photo: np.ndarray) -> None:
    g = degrade(gray_photo[:33, :31], "gaussian:sigma=10", seed=1)
    assert g.dtype == np.uint8 and g.shape == (33, 31)
    assert np.array_equal(g, degrade(gray_photo[:33, :31], "gaussian:sigma=10", seed=1))
    assert degrade(photo[:33, :31], "downscale:scale=2", seed=0).shape == (16, 15, 3)


def test_parse_round_trips_and_names_the_fix() -> None:
    p = Pipeline.parse([{"blur": {"sigma": [1, 2]}}, {"jpeg": {"quality": 30}}, "gaussian:sigma=5"], clip=False)
    assert Pipeline.parse(p.to_string()).steps == p.steps
    assert Pipeline.parse(p.to_dict()) == p
    assert Pipeline.parse(p.to_list(), clip=False) == p
    assert set(STEPS) == {"gaussian", "poisson", "salt_pepper", "blur", "jpeg", "downscale", "low_light"}
    with pytest.raises(UnknownNameError, match="did you mean 'gaussian'"):
        Pipeline.parse("gausian:sigma=3")
    with pytest.raises(UnknownNameError, match="did you mean 'quality'"):
        Pipeline.parse("jpeg:qualty=3")
    with pytest.raises(ConfigError, match="low <= high"):
        Pipeline.parse("gaussian:sigma=9..3")
    with pytest.raises(ConfigError, match="jpeg quality must lie in"):
        Jpeg(0)
    with pytest.raises(ConfigError, match="empty"):
        Pipeline.parse("")


def test_task_presets() -> None:
    assert preset("denoise").to_string() == "gaussian:sigma=25.0"
    assert preset("super-resolution", scale=4).scale == 4
    assert preset("super-resolution", scale=4, restore_size=True).scale == 1
    assert preset("enhance").steps[0].name == "low_light"
    with pytest.raises(UnknownNameError, match="did you mean 'denoise'"):
        preset("denoize")
