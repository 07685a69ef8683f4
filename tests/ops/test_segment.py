"""Segmentation: k-means colour quantisation, SLIC superpixels, watershed with automatic markers."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops import get_op
from pixlearn.ops.segment import kmeans, kmeans_labels, slic, slic_labels, watershed, watershed_labels


def _two_colours() -> np.ndarray:
    img = np.empty((24, 32, 3), np.uint8)
    img[:] = (30, 60, 200)
    img[8:20, 4:14] = (240, 200, 10)
    return img


def _touching_discs(radius: int = 20, gap: int = 32) -> np.ndarray:
    """A 0/255 mask of two discs whose centres are ``gap`` px apart (< 2 * radius: they overlap)."""
    yy, xx = np.mgrid[:64, :110]
    a = (yy - 32) ** 2 + (xx - 35) ** 2 < radius**2
    b = (yy - 32) ** 2 + (xx - 35 - gap) ** 2 < radius**2
    return ((a | b) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- kmeans


def test_kmeans_k2_recovers_two_colours():
    img = _two_colours()
    out = kmeans(img, k=2)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)  # each pixel painted with its own (exact) centre


def test_kmeans_with_more_clusters_than_colours_keeps_the_image():
    img = _two_colours()
    np.testing.assert_array_equal(kmeans(img, k=6), img)


def test_kmeans_quantises_to_at_most_k_colours_reproducibly(photo):
    out = kmeans(photo, k=4, seed=7)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 4
    np.testing.assert_array_equal(kmeans(photo, k=4, seed=7), out)
    # the quantised image is close to the original on average
    assert np.abs(out.astype(int) - photo).mean() < 30


def test_kmeans_labels_match_the_painted_image(photo):
    labels, centres = kmeans_labels(photo, k=3, seed=1)
    assert labels.shape == photo.shape[:2] and labels.dtype == np.int32
    assert centres.shape == (3, 3) and centres.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}
    np.testing.assert_array_equal(centres[labels], kmeans(photo, k=3, seed=1))


def test_kmeans_on_grey(gray_photo):
    out = kmeans(gray_photo, k=3)
    assert out.shape == gray_photo.shape and len(np.unique(out)) == 3


def test_kmeans_errors():
    with pytest.raises(ConfigError, match=r"k must be in \[1, 256\]"):
        kmeans(_two_colours(), k=0)
    with pytest.raises(ShapeError, match="float64"):
        kmeans(np.zeros((4, 4, 3)), k=2)
    with pytest.raises(ConfigError):
        kmeans(_two_colours(), k=2, max_iter=0)


# --------------------------------------------------------------------------- slic


def test_slic_gives_roughly_the_requested_number_of_segments(photo):
    labels = slic_labels(photo, n_segments=60)
    assert labels.shape == photo.shape[:2] and labels.dtype == np.int32 and labels.min() == 1
    assert 30 <= len(np.unique(labels)) <= 90


def test_slic_fills_each_superpixel_with_its_mean_colour(photo):
    labels = slic_labels(photo, n_segments=40)
    out = slic(photo, n_segments=40)
    assert out.shape == photo.shape and out.dtype == np.uint8
    for lab in np.unique(labels)[:10]:
        region = labels == lab
        expected = np.rint(photo[region].mean(axis=0))
        assert (out[region] == expected).all()


def test_slic_on_grey_keeps_grey(gray_photo):
    out = slic(gray_photo, n_segments=30)
    assert out.shape == gray_photo.shape and out.dtype == np.uint8
    assert len(np.unique(out)) <= len(np.unique(slic_labels(gray_photo, n_segments=30)))


# --------------------------------------------------------------------------- watershed


def test_watershed_separates_two_touching_discs():
    mask = _touching_discs()
    labels = watershed_labels(mask)
    assert labels.dtype == np.int32 and labels.shape == mask.shape
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    left, right = labels[32, 35], labels[32, 67]
    assert left != right and 0 not in (left, right)
    assert (labels[mask == 0] == 0).all() and (labels[mask > 0] > 0).all()
    # the split is at the waist, halfway between the centres
    assert abs(int(np.argmax(labels[32] == right)) - 51) <= 1


def test_watershed_invert_segments_dark_objects():
    labels = watershed_labels(255 - _touching_discs(), invert=True)
    assert labels.max() == 2 and labels[0, 0] == 0


def test_watershed_op_draws_outlines_over_an_rgb_copy():
    mask = _touching_discs()
    out = watershed(mask, color=(0, 255, 0))
    assert out.shape == mask.shape + (3,) and out.dtype == np.uint8
    outline = (out == (0, 255, 0)).all(axis=2)
    assert outline[32, 16] and outline[32, 51]  # the left edge of the left disc, and the split line
    assert not outline[32, 35] and (out[32, 35] == 255).all() and (out[0, 0] == 0).all()


def test_watershed_of_a_flat_image_is_all_background():
    assert not watershed_labels(np.full((16, 16), 9, np.uint8)).any()


def test_watershed_errors():
    with pytest.raises(ConfigError):
        watershed(_touching_discs(), min_distance=0)
    with pytest.raises(ConfigError):
        watershed(_touching_discs(), color=(0, 300, 0))
    with pytest.raises(ShapeError):
        watershed_labels(np.zeros((8, 8, 4), np.uint8))


def test_segment_ops_are_registered():
    for name in ("kmeans", "slic", "watershed"):
        spec = get_op(name)
        assert (spec.category, spec.returns) == ("segment", "image")
    assert get_op("kmeans").validate({"k": "3", "seed": "5"}) == {"k": 3, "seed": 5}
