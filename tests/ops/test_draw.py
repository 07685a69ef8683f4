"""Draw helpers: new RGB uint8 images, inputs untouched, pixels changed where drawn."""

from __future__ import annotations

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError
from pixlearn.ops import draw as D
from pixlearn.ops.features import Keypoints, match_descriptors, orb


def _kp(points: list[tuple[float, float]], size: float = 8.0) -> Keypoints:
    n = len(points)
    return Keypoints(
        points=np.array(points, np.float32).reshape(n, 2),
        size=np.full(n, size, np.float32),
        angle=np.zeros(n, np.float32),
        response=np.ones(n, np.float32),
        descriptors=np.zeros((n, 32), np.uint8),
    )


@pytest.mark.parametrize("gray", [False, True])
def test_draw_keypoints_draws_around_each_point_and_copies(photo, gray_photo, gray):
    image = gray_photo if gray else photo
    before = image.copy()
    kp = _kp([(20.0, 100.0)], size=16)  # x=20 (column), y=100 (row)
    out = D.draw_keypoints(image, kp, color=(255, 0, 255))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)
    changed = np.argwhere((out != (image[..., None] if gray else image)).any(axis=2))
    assert len(changed) > 0
    rows, cols = changed[:, 0], changed[:, 1]
    assert abs(rows.mean() - 100) < 6 and abs(cols.mean() - 20) < 6  # drawn at (row=y, col=x)


def test_draw_matches_is_side_by_side(photo):
    kp = orb(photo, max_features=100)
    m, _ = match_descriptors(kp, kp)
    small = photo[:96, :64]
    out = D.draw_matches(photo, kp, small, _kp([(5.0, 5.0)]), np.array([[0, 0]]))
    assert out.shape == (128, 128 + 64, 3) and out.dtype == np.uint8
    plain = np.zeros_like(out)
    plain[:128, :128] = photo
    plain[:96, 128:] = small
    assert (out != plain).any()
    out2 = D.draw_matches(photo, kp, photo, kp, m, color=(255, 0, 0))
    assert out2.shape == (128, 256, 3)
    with pytest.raises(ShapeError, match="index past the keypoints"):
        D.draw_matches(photo, kp, photo, kp, np.array([[0, len(kp)]]))
    with pytest.raises(ShapeError, match=r"\(M, 2\)"):
        D.draw_matches(photo, kp, photo, kp, np.array([0, 1]))


def test_overlay_edges_paints_exactly_the_edges(photo):
    before = photo.copy()
    edges = np.zeros(photo.shape[:2], np.uint8)
    edges[10:12, :] = 255
    out = D.overlay_edges(photo, edges, color=(0, 0, 255))
    np.testing.assert_array_equal(photo, before)
    assert (out[10:12] == (0, 0, 255)).all()
    np.testing.assert_array_equal(out[12:], photo[12:])
    with pytest.raises(ShapeError, match=r"edges must have the image's shape \(128, 128\)"):
        D.overlay_edges(photo, edges[:10])
    with pytest.raises(ConfigError, match="color"):
        D.overlay_edges(photo, edges, color=(300, 0, 0))


def test_overlay_segments_tints_and_outlines(photo):
    before = photo.copy()
    labels = np.zeros(photo.shape[:2], np.int32)
    labels[:, 64:] = 1
    labels[64:, :32] = 2
    out = D.overlay_segments(photo, labels)
    np.testing.assert_array_equal(photo, before)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert (out != photo).any()
    # the boundary between label 0 and 1 is drawn in yellow
    assert (out[5:60, 63:65] == (255, 255, 0)).all(axis=2).any()
    # alpha 0 without boundaries leaves the image as it was
    np.testing.assert_array_equal(D.overlay_segments(photo, labels, alpha=0.0, boundaries=False), photo)
    with pytest.raises(ShapeError, match="labels must have the image's shape"):
        D.overlay_segments(photo, labels[:5])
    with pytest.raises(ShapeError, match="integer"):
        D.overlay_segments(photo, labels.astype(float))
    with pytest.raises(ConfigError, match="alpha"):
        D.overlay_segments(photo, labels, alpha=2.0)


def test_draw_rejects_non_keypoints(photo):
    with pytest.raises(ShapeError, match="keypoints must be Keypoints"):
        D.draw_keypoints(photo, np.zeros((3, 2)))  # type: ignore[arg-type]
