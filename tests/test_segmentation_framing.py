"""contract.framing: lesions found in a mask, the verdict, the outline and the crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from contract.framing import (
    NO_LESION,
    ONE,
    SEVERAL,
    Box,
    FramingRule,
    crop,
    crop_box,
    find_lesions,
    frame,
    trace_boundary,
    verdict,
)

ANY_SIZE = FramingRule(min_area_fraction=0.0)


def test_components_match_scipy_with_8_connectivity():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for _ in range(10):
        mask = ndimage.gaussian_filter(rng.random((90, 110)), 2.5) > 0.52
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        ours = find_lesions(mask, ANY_SIZE)
        assert len(ours) == count
        assert sorted(lesion.area for lesion in ours) == sorted(np.bincount(labels.ravel())[1:])
        for lesion in ours:  # each box holds exactly its component's pixels
            box = lesion.box
            inside = labels[box.top : box.bottom, box.left : box.right]
            number = labels[lesion.seed]
            assert (inside == number).sum() == lesion.area == (labels == number).sum()


def test_diagonal_pixels_are_one_lesion_and_the_seed_is_top_left():
    mask = np.zeros((8, 8), bool)
    mask[[1, 2, 3, 4], [4, 3, 2, 1]] = True  # an anti-diagonal
    (lesion,) = find_lesions(mask, ANY_SIZE)
    assert lesion.area == 4 and lesion.seed == (1, 4)
    assert lesion.box == Box(1, 1, 5, 5)


def test_small_specks_do_not_count():
    mask = np.zeros((100, 100), bool)
    mask[10:40, 10:40] = True
    mask[80, 80] = True  # 1 pixel < 0.1 % of 10,000
    assert [lesion.area for lesion in find_lesions(mask)] == [900]


@pytest.mark.parametrize(
    ("areas", "expected"),
    [
        ((), NO_LESION),
        ((400,), ONE),
        ((400, 99), ONE),
        ((400, 100), SEVERAL),
        ((400, 400), SEVERAL),
    ],
)
def test_verdict(areas, expected):
    mask = np.zeros((200, 200), bool)
    for i, area in enumerate(areas):
        side = int(np.sqrt(area))
        mask[10 + 60 * i : 10 + 60 * i + side, 10 : 10 + area // side] = True
    assert verdict(find_lesions(mask)) == expected


def test_boundary_of_a_rectangle_goes_round_it_once():
    mask = np.zeros((10, 12), bool)
    mask[2:6, 3:9] = True
    boundary = trace_boundary(mask, (2, 3))
    assert len(boundary) == len(set(boundary)) == 2 * (6 + 4) - 4
    assert all(mask[r, c] for r, c in boundary)
    assert {(r, c) for r, c in boundary} == {
        (r, c) for r in range(2, 6) for c in range(3, 9) if r in (2, 5) or c in (3, 8)
    }


def test_boundary_of_one_pixel_and_of_a_ring():
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    assert trace_boundary(mask, (2, 2)) == [(2, 2)]
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False
    outer = trace_boundary(ring, (1, 1))
    assert len(outer) == 24 and all(r in (1, 7) or c in (1, 7) for r, c in outer)


def test_frame_maps_the_mask_grid_to_the_photo():
    probabilities = np.zeros((64, 64))
    probabilities[16:32, 8:24] = 0.9  # a quarter-height, quarter-width square
    result = frame(probabilities, width=640, height=320)
    assert result.verdict == ONE and result.lesions == 1
    assert result.box == Box(80, 80, 240, 160)
    assert result.area_fraction == pytest.approx(256 / 4096)
    xs, ys = np.array(result.outline).T
    assert xs.min() >= 80 and xs.max() <= 240 and ys.min() >= 80 and ys.max() <= 160
    assert 4 <= len(result.outline) <= FramingRule().max_points


def test_frame_without_a_lesion_and_with_several():
    assert frame(np.zeros((32, 32)), 100, 100).box is None
    two = np.zeros((32, 32))
    two[2:8, 2:8] = two[20:26, 20:26] = 1.0
    result = frame(two, 100, 100)
    assert result.verdict == SEVERAL and result.crop is None and result.box is not None


def test_crop_box_is_a_square_around_the_lesion_inside_the_photo():
    rule = FramingRule(margin=0.5, min_side_fraction=0.2)
    box = crop_box(Box(100, 100, 140, 120), 300, 300, rule)  # 40 x 20 lesion
    assert box.width == box.height == 80  # twice the longer side
    assert (box.left + box.right) / 2 == 120 and (box.top + box.bottom) / 2 == 110
    tiny = crop_box(Box(500, 400, 502, 402), 1000, 800, rule)
    assert tiny.width == 160  # at least a fifth of the shorter side
    corner = crop_box(Box(0, 0, 50, 50), 1000, 800, rule)
    assert (corner.left, corner.top, corner.width) == (0, 0, 160)  # moved inside, not shrunk
    huge = crop_box(Box(0, 0, 900, 700), 1000, 800, rule)
    assert huge == Box(0, 0, 1000, 800)  # clipped to the photo


def test_crop_cuts_the_photo_and_none_keeps_it():
    image = Image.new("RGB", (100, 50))
    assert crop(image, Box(10, 5, 40, 35)).size == (30, 30)
    assert crop(image, None) is image
