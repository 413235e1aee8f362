"""Masks from the PAD-UFES-20 cut-outs, the alignment check, the split, Dice / Jaccard and the
grouped bootstrap of the segmenter's evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.metrics import dice_jaccard
from contract.predictions import read_predictions
from contract.records import Record
from contract.run_folder import write_split
from contract.taxonomy import PHONE
from train.segmentation import masks as masks_module
from train.segmentation.dataset import (
    augment,
    classifier_test_photos,
    make_split,
    split_counts,
)
from train.segmentation.evaluation import evaluate_arrays, summarise, weighted_statistics


def skin_photo(size=(300, 300), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([200, 150, 130], np.float64)
    noise = rng.normal(0, 12, (size[1], size[0], 3))
    pixels = base + noise
    yy, xx = np.mgrid[: size[1], : size[0]]
    spot = (yy - 140) ** 2 / 40**2 + (xx - 120) ** 2 / 55**2 <= 1
    pixels[spot] = [90, 50, 40]
    pixels[spot & (rng.random(spot.shape) < 0.05)] = [10, 8, 8]  # very dark pixels in the lesion
    return np.clip(pixels, 0, 255).astype(np.uint8), spot


def cut_out(photo: np.ndarray, spot: np.ndarray, size=512, shift=(0, 0)) -> np.ndarray:
    cut = np.where(spot[..., None], photo, 0).astype(np.uint8)
    cut = np.roll(cut, shift, axis=(0, 1))
    return np.array(Image.fromarray(cut).resize((size, size), Image.BILINEAR))


def save_pair(tmp_path, stem, photo, cutout):
    (tmp_path / "photos").mkdir(exist_ok=True)
    (tmp_path / "cutouts").mkdir(exist_ok=True)
    Image.fromarray(photo).save(tmp_path / "photos" / f"{stem}.jpg", quality=95)
    Image.fromarray(cutout).save(tmp_path / "cutouts" / f"{stem}.jpg", quality=95)


def test_cutout_mask_fills_dark_lesion_pixels_and_drops_specks():
    photo, spot = skin_photo()
    cutout = cut_out(photo, spot, size=300)
    cutout[5, 5] = 200  # a JPEG speck in the black
    mask = masks_module.cutout_mask(cutout)
    dice, _ = dice_jaccard(spot[None], mask[None])
    assert dice[0] > 0.97 and not mask[5, 5]


def test_aligned_and_shifted_pairs(tmp_path):
    photo, spot = skin_photo()
    save_pair(tmp_path, "PAT_1_1_1", photo, cut_out(photo, spot))
    save_pair(tmp_path, "PAT_2_2_2", photo, cut_out(photo, spot, shift=(0, 12)))
    save_pair(tmp_path, "PAT_3_3_3", photo, np.zeros((512, 512, 3), np.uint8))
    rows = masks_module.build_masks(tmp_path / "photos", tmp_path / "cutouts", tmp_path / "m")
    by_stem = {r.stem: r for r in rows}
    good = by_stem["PAT_1_1_1"]
    assert good.aligned and good.best_shift == "0,0" and good.mean_diff < 6
    assert good.mean_diff_shifted_8px > 3 * good.mean_diff
    assert good.photo_size == "300x300" and good.cutout_size == "512x512"
    assert not by_stem["PAT_2_2_2"].aligned  # moved 12 px: the photo does not match
    assert by_stem["PAT_3_3_3"].reason == "empty cut-out"
    mask = masks_module.load_mask(tmp_path / "m", "PAT_1_1_1")
    assert mask.shape == (300, 300) and dice_jaccard(spot[None], mask[None])[0][0] > 0.95
    assert masks_module.load_mask(tmp_path / "m", "PAT_2_2_2") is None
    summary = masks_module.summary(rows)
    assert summary["pairs"] == 3 and summary["aligned"] == 1 and len(summary["failed"]) == 2
    with (tmp_path / "m" / masks_module.MASKS_CSV).open() as f:
        assert len(list(csv.DictReader(f))) == 3


def test_split_keeps_patients_whole_and_pins_the_classifier_test_photos_to_val(tmp_path):
    root = tmp_path / "pad_ufes20"
    (root / "images").mkdir(parents=True)
    rows = []
    for patient in range(40):
        for k in range(2):
            stem = f"PAT_{patient}_{patient}_{k}"
            Image.new("RGB", (8, 8), (patient * 5, k * 9, 3)).save(root / "images" / f"{stem}.jpg")
            rows.append((f"PAT_{patient}", "NEV" if patient % 2 else "BCC", f"{stem}.png"))
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("patient_id", "diagnostic", "img_id"))
        writer.writerows(rows)
    pinned = [root / "images" / "PAT_3_3_0.jpg", root / "images" / "PAT_8_8_1.jpg"]
    test = [
        *(Record(p, "nv", f"PAD-UFES-20/PAT_{p.stem.split('_')[1]}", PHONE, "x") for p in pinned),
        Record(tmp_path / "pad_ufes20_cutouts/images/PAT_9_9_0.jpg", "nv", "P9", PHONE, "x"),
        Record(tmp_path / "ham10000/images/ISIC_1.jpg", "nv", "I1", "dermoscopic", "x"),
    ]
    trained = Record(root / "images" / "PAT_4_4_0.jpg", "nv", "PAD-UFES-20/PAT_4", PHONE, "x")
    classifier_split = tmp_path / "split.csv"
    write_split(classifier_split, {"train": [trained], "val": [], "test": test})
    assert [r.path for r in classifier_test_photos(classifier_split)] == pinned
    from train.data.split import SplitFractions

    split = make_split(root, 0, SplitFractions(0.2, 0.2), keep_in_val=pinned)
    groups = {name: {r.group for r in records} for name, records in split.items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"])
    assert not groups["val"] & groups["test"]
    assert {"PAD-UFES-20/PAT_3", "PAD-UFES-20/PAT_8"} <= groups["val"]
    masks_dir = tmp_path / "masks"
    masks_dir.mkdir()
    Image.new("L", (8, 8)).save(masks_dir / "PAT_3_3_0.png")
    counts = split_counts(split, masks_dir)
    assert counts["val"]["with_mask"] == 1 and sum(c["photos"] for c in counts.values()) == 80


def test_the_shipped_split_pins_the_photos_its_test_predictions_pinned(data_dir, monkeypatch):
    """The shipped classifier's split pins the very photos (resolved) that were pinned when they
    were read from its test predictions (models/evaluation/predictions.csv, phone photos that
    are not cut-outs), in the same order, and framing's unseen patients are theirs."""
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # a split.csv names images relative to the repository
    rows = read_predictions(repo / "models" / "evaluation" / "predictions.csv")
    before = [(repo / r.path).resolve() for r in rows if r.domain == PHONE]
    before = [p for p in before if p.parent.parent.name == "pad_ufes20"]
    records = classifier_test_photos(repo / "recipes" / "shipped_2025_split.csv")
    pinned = [r.path.resolve() for r in records]
    assert pinned == before and len(pinned) == 84
    assert all(p.is_file() and p.is_relative_to(data_dir.resolve()) for p in pinned)
    patients = {f"PAD-UFES-20/{'_'.join(p.stem.split('_')[:2])}" for p in before}
    assert {r.group for r in records} == patients


def test_augment_moves_photo_and_mask_together():
    photo, spot = skin_photo(size=(320, 320))
    rng = np.random.default_rng(3)
    for _ in range(5):
        pixels, mask = augment(photo, spot, 224, rng)
        assert pixels.shape == (224, 224, 3) and mask.shape == (224, 224)
        if mask.any():  # the lesion is the dark part of the view
            assert pixels[mask].mean() < pixels[~mask].mean() - 40


def test_dice_and_jaccard_per_image():
    truth = np.zeros((3, 4, 4), bool)
    predicted = np.zeros((3, 4, 4), bool)
    truth[0, :2], predicted[0, :1] = True, True  # 8 true, 4 predicted inside
    truth[1, 0, 0] = True  # missed entirely
    dice, jaccard = dice_jaccard(truth, predicted)  # image 2: both empty
    assert dice.tolist() == pytest.approx([2 * 4 / 12, 0.0, 1.0])
    assert jaccard.tolist() == pytest.approx([4 / 8, 0.0, 1.0])


def test_weighted_statistics_and_grouped_intervals():
    values = np.array([0.1, 0.5, 0.9, 0.95])
    stats = weighted_statistics(values, np.array([[1.0, 1, 1, 1], [0, 0, 2, 2]]))
    assert stats["mean"].tolist() == pytest.approx([0.6125, 0.925])
    assert stats["median"].tolist() == [0.5, 0.9]
    summary = summarise(np.r_[np.full(30, 0.9), np.full(10, 0.2)], np.arange(40) // 2, 500)
    assert summary["mean"]["value"] == pytest.approx(0.725)
    low, high = summary["mean"]["interval"]
    assert low < 0.725 < high and high - low < 0.4
    assert summary["p5"]["value"] == pytest.approx(0.2)


def test_evaluate_arrays_reports_sizes_and_verdicts():
    truth = np.zeros((2, 64, 64), bool)
    truth[:, 10:40, 10:40] = True
    probabilities = truth.astype(float) * 0.9
    probabilities[1, 50:60, 50:60] = 0.9  # a second, smaller spot
    report, dice, _ = evaluate_arrays(truth, probabilities, np.array(["a", "b"]), resamples=100)
    assert report["photos"] == 2 and dice[0] == 1.0 and dice[1] < 1.0
    assert report["verdicts_truth_to_predicted"] == {"one->one": 2}
    assert report["by_lesion_size"][">= 10 %"]["photos"] == 2


def test_records_from_the_real_data_pair_up(data_dir):
    """On the real folders: two photos with cut-outs are aligned (the full check is
    `python -m train.segment masks`, 472 pairs in about two minutes)."""
    photos = masks_module.index_images(data_dir / "pad_ufes20" / "images")
    cutouts = masks_module.index_images(data_dir / "pad_ufes20_cutouts" / "images")
    common = sorted(set(photos) & set(cutouts))
    assert len(common) > 400
    for stem in common[:2]:
        row, mask = masks_module.check_pair(stem, photos[stem], cutouts[stem])
        assert row.aligned, row
        assert mask.any()
    assert isinstance(Record, type)


@pytest.mark.parametrize(
    "command",
    (
        ["train", "--out", "x"],
        ["framing", "x", "--segmenter", "s", "--classifier", "c", "--out", "o"],
    ),
)
def test_a_missing_classifier_split_is_a_usage_error(command, tmp_path, capsys):
    from train.segment import parse_args

    missing = ["--classifier-split", str(tmp_path / "none.csv")]
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*command, *missing])
    assert exit_info.value.code == 2
    assert f"no classifier split {tmp_path / 'none.csv'}" in capsys.readouterr().err
    if command[0] == "train":  # nothing pinned: the file is not read
        assert parse_args([*command, *missing, "--no-pin"]).no_pin
