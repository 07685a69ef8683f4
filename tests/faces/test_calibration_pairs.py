"""pairs_from_groups computes its distances in chunks: past one chunk of pairs they are still every pair's."""

from __future__ import annotations

import numpy as np


def test_pairs_from_groups_past_one_chunk() -> None:
    from scipy.spatial.distance import pdist

    from pixlearn.tasks.faces import calibration

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 128))  # 79,800 pairs: more than one chunk
    assert 400 * 399 // 2 > calibration._CHUNK
    labels = np.repeat(np.arange(8), 50)
    same, diff = calibration.pairs_from_groups({f"p{k}": x[labels == k] for k in range(8)})
    expected = pdist(x)  # the same upper-triangle order
    i, j = np.triu_indices(400, k=1)
    same_mask = labels[i] == labels[j]
    np.testing.assert_allclose(same, expected[same_mask])
    np.testing.assert_allclose(diff, expected[~same_mask])
    assert len(same) == 8 * 50 * 49 // 2
