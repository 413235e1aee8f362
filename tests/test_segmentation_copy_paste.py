"""Copy-paste augmentation of the segmenter: which cut-outs may be pasted, the lesion patches, and
what pasting does to a photo and its mask."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from train import segment
from train.segmentation import copy_paste
from train.segmentation.training import SegmentationError, SegmenterConfig, pasted_lesions


def skin(side=160, colour=(200, 150, 130)) -> np.ndarray:
    return np.full((side, side, 3), colour, np.uint8)


def disc(side, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def write_cutouts(root, images: dict[str, np.ndarray]) -> None:
    """A PAD-UFES-20 style folder: metadata.csv (patient = the stem's first two parts)."""
    (root / "images").mkdir(parents=True)
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "diagnostic", "img_id"])
        for stem, pixels in images.items():
            Image.fromarray(pixels).save(root / "images" / f"{stem}.png")
            writer.writerow(["_".join(stem.split("_")[:2]), "NEV", f"{stem}.png"])


def lesion_cutout(side=200, colour=(90, 50, 40)) -> np.ndarray:
    cut = np.zeros((side, side, 3), np.uint8)
    cut[disc(side, (90, 110), 40)] = colour
    return cut


def test_usable_cutouts_leave_out_photos_and_held_out_patients(tmp_path):
    stems = ("PAT_1_1_1", "PAT_2_2_2", "PAT_3_3_3", "PAT_4_4_4")
    write_cutouts(tmp_path, {s: lesion_cutout() for s in stems})
    usable = copy_paste.usable_cutouts(
        tmp_path, photo_stems={"PAT_1_1_1"}, held_out_groups={"PAD-UFES-20/PAT_3"}
    )
    assert sorted(p.stem for p in usable) == ["PAT_2_2_2", "PAT_4_4_4"]


def test_decode_lesion_crops_a_square_around_the_lesion_and_hides_the_black():
    pixels, mask = copy_paste.decode_lesion_arrays(lesion_cutout(), size=64)
    assert pixels.shape == (64, 64, 3) and mask.shape == (64, 64)
    assert 0.7 < mask.mean() < 0.85  # a disc filling its square: pi / 4
    # Outside the lesion the patch holds the lesion's colour, not the cut-out's black.
    assert np.abs(pixels[~mask].astype(int) - (90, 50, 40)).max() <= 2


def test_decode_lesion_refuses_what_is_not_a_cutout():
    assert copy_paste.decode_lesion_arrays(np.zeros((100, 100, 3), np.uint8)) is None
    assert copy_paste.decode_lesion_arrays(skin(100)) is None  # nothing blacked out


def test_paste_covers_the_old_lesion_and_keeps_the_rest_of_the_photo():
    side = 160
    photo, mask = skin(side), disc(side, (80, 70), 20)
    photo[mask] = (120, 80, 60)
    patch, patch_mask = copy_paste.decode_lesion_arrays(lesion_cutout(), size=64)
    pasted, new_mask = copy_paste.paste_lesion(
        photo, mask, patch, patch_mask, np.random.default_rng(0)
    )
    assert pasted.shape == photo.shape and pasted.dtype == np.uint8
    assert (new_mask | mask).sum() == new_mask.sum()  # the old lesion stays marked
    grown = new_mask & ~mask
    assert grown.sum() > 0.3 * mask.sum()  # the pasted lesion is at least comparable in size
    # Far from both lesions the photo is untouched.
    ys, xs = np.nonzero(new_mask)
    far = np.ones_like(mask)
    far[max(ys.min() - 12, 0) : ys.max() + 12, max(xs.min() - 12, 0) : xs.max() + 12] = False
    assert (pasted[far] == photo[far]).all()
    # Inside the pasted lesion the colour is the pasted one, scaled towards the photo's skin:
    # darker than the skin, and not the cut-out's black.
    inner = new_mask & ~mask
    assert (pasted[inner].mean(axis=0) < photo[0, 0]).all()
    assert pasted[inner].min() > 20


def test_paste_is_reproducible_and_varies_with_the_generator():
    side = 160
    photo, mask = skin(side), disc(side, (80, 70), 20)
    patch, patch_mask = copy_paste.decode_lesion_arrays(lesion_cutout(), size=64)
    runs = [
        copy_paste.paste_lesion(photo, mask, patch, patch_mask, np.random.default_rng(seed))
        for seed in (1, 1, 2)
    ]
    assert (runs[0][1] == runs[1][1]).all() and (runs[0][0] == runs[1][0]).all()
    assert not (runs[0][1] == runs[2][1]).all()


def test_paste_into_a_photo_without_a_lesion_stays_inside_the_photo():
    side = 96
    patch, patch_mask = copy_paste.decode_lesion_arrays(lesion_cutout(), size=64)
    for seed in range(20):
        pasted, new_mask = copy_paste.paste_lesion(
            skin(side), np.zeros((side, side), bool), patch, patch_mask, np.random.default_rng(seed)
        )
        assert new_mask.shape == (side, side) and 0 < new_mask.mean() < 0.8


def test_skin_gain_takes_the_rim_to_the_skin_colour():
    side = 64
    lesion = disc(side, (32, 32), 20)
    patch = np.where(lesion[..., None], 100.0, 0.0) * np.ones(3)
    window = np.full((side, side, 3), (150.0, 120.0, 110.0))
    gain = copy_paste.skin_gain(window, np.zeros((side, side), bool), patch, lesion)
    assert gain == pytest.approx((1.5, 1.2, 1.1))
    # A gain beyond the limits is clipped: a lesion is not made white.
    window[:] = 255.0
    assert (
        copy_paste.skin_gain(window, np.zeros((side, side), bool), patch, lesion).max()
        == (copy_paste.GAIN_LIMITS[1])
    )


def test_pasting_needs_cutouts_and_lesions(tmp_path):
    split = {"train": [], "val": [], "test": []}
    config = SegmenterConfig(copy_paste=0.5)
    with pytest.raises(SegmentationError, match="cut-outs folder"):
        pasted_lesions(tmp_path, split, None, config)
    write_cutouts(tmp_path / "cutouts", {"PAT_9_9_9": np.zeros((50, 50, 3), np.uint8)})
    with pytest.raises(SegmentationError, match="no cut-out lesion"):
        pasted_lesions(tmp_path / "run", split, tmp_path / "cutouts", config)
    assert pasted_lesions(tmp_path, split, None, SegmenterConfig()) is None


def test_copy_paste_share_out_of_range_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        segment.parse_args(["train", "--out", "x", "--copy-paste", "1.5"])
    assert exit_info.value.code == 2
    assert "--copy-paste must be between 0 and 1" in capsys.readouterr().err


def test_lesion_cache_follows_the_cutouts_asked_for(tmp_path):
    write_cutouts(
        tmp_path / "cutouts",
        {"PAT_1_1_1": lesion_cutout(), "PAT_2_2_2": np.zeros((50, 50, 3), np.uint8)},
    )
    paths = sorted((tmp_path / "cutouts" / "images").iterdir())
    first = copy_paste.load_lesions(paths, tmp_path / "run")
    assert [p.rsplit("/", 1)[1] for p in first.paths] == ["PAT_1_1_1.png"]  # the black one: none
    again = copy_paste.load_lesions(paths, tmp_path / "run")
    assert again.paths == first.paths and (again.pixels == first.pixels).all()
    # Other cut-outs than those cached (another split): decoded again, not the stale cache.
    assert copy_paste.load_lesions(paths[1:], tmp_path / "run").paths == []
