"""train.model.predict.flipped_views: the test-time flips and rotations (--flips N)."""

from __future__ import annotations

import numpy as np
import pytest

from train.model.predict import FLIPS, flipped_views


def test_the_eight_views_are_the_eight_symmetries_of_the_square():
    image = np.arange(2 * 5 * 5 * 3).reshape(2, 5, 5, 3)
    views = flipped_views(image, 8)
    assert len({v.tobytes() for v in views}) == 8  # all different
    assert all(sorted(v.ravel()) == sorted(image.ravel()) for v in views)  # the same pixels
    assert np.array_equal(views[0], image)
    assert np.array_equal(views[1], image[:, :, ::-1])  # mirrored left to right
    assert np.array_equal(views[4], image.transpose(0, 2, 1, 3))
    # Each view is one of the 8 rotations of the image or of its mirror image.
    rotations = [np.rot90(m, k, axes=(1, 2)) for m in (image, image[:, :, ::-1]) for k in range(4)]
    assert {v.tobytes() for v in views} == {np.ascontiguousarray(r).tobytes() for r in rotations}


@pytest.mark.parametrize("flips", FLIPS)
def test_fewer_flips_are_the_first_of_the_eight(flips: int):
    image = np.random.default_rng(0).integers(0, 255, (1, 4, 4, 3), dtype=np.uint8)
    views = flipped_views(image, flips)
    assert len(views) == flips
    assert all(np.array_equal(a, b) for a, b in zip(views, flipped_views(image, 8), strict=False))


def test_other_counts_are_refused():
    with pytest.raises(ValueError, match="flips must be one of"):
        flipped_views(np.zeros((1, 4, 4, 3)), 3)
