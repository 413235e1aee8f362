"""Loaders, the skip-and-report rule, and the grouped split, on the real images."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from contract.records import Skipped, decode_records
from contract.run_folder import read_split, write_split
from contract.taxonomy import DERMOSCOPIC, LABELS, PHONE
from train.data.datasets import DatasetError, load_dataset, merge_identical_images
from train.data.split import SplitFractions, grouped_split
from train.data.subset import take_per_class


@pytest.fixture(scope="module")
def real_records(data_dir: Path):
    skipped = Skipped()
    records = []
    for name in ("ham10000", "pad_ufes20", "pad_ufes20_cutouts"):
        records += load_dataset(data_dir / name, skipped)
    return merge_identical_images(records), skipped


def test_real_loaders_read_every_listed_image(real_records, data_dir: Path):
    records, skipped = real_records
    assert skipped.items == []
    by_source = Counter(r.source for r in records)
    ham_rows = sum(1 for _ in open(data_dir / "ham10000/HAM10000_metadata.csv")) - 1
    pad_rows = sum(1 for _ in open(data_dir / "pad_ufes20/metadata.csv")) - 1
    cut_rows = sum(1 for _ in open(data_dir / "pad_ufes20_cutouts/metadata.csv")) - 1
    assert by_source["HAM10000"] == ham_rows
    assert by_source["PAD-UFES-20"] == pad_rows + cut_rows
    assert {r.label for r in records} == set(LABELS)
    assert {r.domain for r in records if r.source == "HAM10000"} == {DERMOSCOPIC}
    assert {r.domain for r in records if r.source == "PAD-UFES-20"} == {PHONE}
    # PAD-UFES-20 has no dermatofibroma or vascular lesions after the mapping.
    assert {r.label for r in records if r.domain == PHONE} == {"akiec", "bcc", "bkl", "mel", "nv"}


def test_pad_photo_and_its_cutout_share_a_group(real_records):
    records, _ = real_records
    groups_by_stem: dict[str, set[str]] = {}
    for r in records:
        if r.source == "PAD-UFES-20":
            groups_by_stem.setdefault(r.path.stem, set()).add(r.group)
    shared = [stem for stem, g in groups_by_stem.items() if len(g) > 1]
    assert shared == []
    assert any(len([r for r in records if r.path.stem == s]) == 2 for s in groups_by_stem)


def test_byte_identical_images_end_up_in_one_group(real_records):
    import hashlib

    records, _ = real_records
    groups_by_digest: dict[str, set[str]] = {}
    for r in records:
        digest = hashlib.sha1(r.path.read_bytes()).hexdigest()
        groups_by_digest.setdefault(digest, set()).add(r.group)
    assert all(len(g) == 1 for g in groups_by_digest.values())


def test_grouped_split_never_shares_a_lesion_or_patient(real_records, tmp_path: Path):
    records, _ = real_records
    splits = grouped_split(records, SplitFractions(0.15, 0.15), seed=1337)
    groups = {name: {r.group for r in recs} for name, recs in splits.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(v) for v in splits.values()) == len(records)
    # Stratified: every (domain, class) present overall is in val and in test.
    strata = {(r.domain, r.label) for r in records}
    for name in ("val", "test"):
        assert {(r.domain, r.label) for r in splits[name]} == strata
        assert 0.10 < len(splits[name]) / len(records) < 0.20
    # Written once, read back identically by every later step.
    write_split(tmp_path / "split.csv", splits)
    assert read_split(tmp_path / "split.csv") == splits


def test_split_is_reproducible_for_a_seed(real_records):
    records, _ = real_records
    a = grouped_split(records, SplitFractions(), seed=7)
    b = grouped_split(list(reversed(records)), SplitFractions(), seed=7)
    assert {k: sorted(map(str, (r.path for r in v))) for k, v in a.items()} == {
        k: sorted(map(str, (r.path for r in v))) for k, v in b.items()
    }


def test_subset_takes_whole_groups(real_records):
    records, _ = real_records
    subset = take_per_class(records, 10, seed=0)
    groups = {r.group for r in subset}
    assert all(r in subset for r in records if r.group in groups)
    per_stratum = Counter((r.domain, r.label) for r in subset)
    assert set(per_stratum) == {(r.domain, r.label) for r in records}
    assert all(n >= 10 for n in per_stratum.values())


def _official_ham_layout(data_dir: Path, root: Path, n: int = 6) -> list[str]:
    """A small copy of HAM10000 in the official two-folder layout."""
    lines = (data_dir / "ham10000/HAM10000_metadata.csv").read_text().splitlines()
    (root / "HAM10000_images_part_1").mkdir(parents=True)
    (root / "HAM10000_images_part_2").mkdir()
    rows = lines[1 : n + 1]
    for i, row in enumerate(rows):
        image_id = row.split(",")[1]
        part = "HAM10000_images_part_1" if i % 2 else "HAM10000_images_part_2"
        shutil.copy(data_dir / f"ham10000/images/{image_id}.jpg", root / part)
    (root / "HAM10000_metadata.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    return [row.split(",")[1] for row in rows]


def test_ham_official_layout_with_missing_and_corrupt_images(data_dir: Path, tmp_path: Path):
    ids = _official_ham_layout(data_dir, tmp_path)
    next(tmp_path.rglob(f"{ids[0]}.jpg")).unlink()  # missing
    truncated = next(tmp_path.rglob(f"{ids[1]}.jpg"))
    truncated.write_bytes(truncated.read_bytes()[:300])  # truncated
    next(tmp_path.rglob(f"{ids[2]}.jpg")).write_bytes(b"not an image")  # unreadable

    skipped = Skipped()
    records = load_dataset(tmp_path, skipped)
    assert len(records) == len(ids) - 1
    pixels, kept = decode_records(records, 32, skipped)
    assert pixels.shape == (len(ids) - 3, 32, 32, 3)
    named = {Path(what).stem for what, _ in skipped.items}
    assert named == set(ids[:3])
    with pytest.warns(UserWarning, match=r"skipped 3 image\(s\)") as caught:
        skipped.warn()
    assert all(i in str(caught[0].message) for i in ids[:3])


def test_pad_layout_matches_png_names_to_jpeg_files(data_dir: Path, tmp_path: Path):
    lines = (data_dir / "pad_ufes20/metadata.csv").read_text().splitlines()
    (tmp_path / "images").mkdir()
    rows = lines[1:5]
    for row in rows:
        stem = Path(row.split(",")[24]).stem
        shutil.copy(data_dir / f"pad_ufes20/images/{stem}.jpg", tmp_path / "images")
    (tmp_path / "metadata.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    assert all(row.split(",")[24].endswith(".png") for row in rows)
    records = load_dataset(tmp_path, Skipped())
    assert len(records) == 4
    assert all(r.group.startswith("PAD-UFES-20/PAT_") for r in records)


def test_class_folder_layout(data_dir: Path, tmp_path: Path):
    images = sorted((data_dir / "ham10000/images").glob("*.jpg"))[:3]
    (tmp_path / "mel" / "lesion1").mkdir(parents=True)
    (tmp_path / "nv").mkdir()
    (tmp_path / "notaclass").mkdir()
    shutil.copy(images[0], tmp_path / "mel/lesion1/a.jpg")
    shutil.copy(images[1], tmp_path / "mel/lesion1/b.jpg")
    shutil.copy(images[2], tmp_path / "nv/c.jpg")
    skipped = Skipped()
    records = load_dataset(tmp_path, skipped)
    assert sorted((r.label, r.group) for r in records) == [
        ("mel", f"{tmp_path.name}/lesion1"),
        ("mel", f"{tmp_path.name}/lesion1"),
        ("nv", f"{tmp_path.name}/c"),
    ]
    assert [reason for _, reason in skipped.items] == [f"folder name is not a class code {LABELS}"]


def test_unknown_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DatasetError, match="no HAM10000_metadata.csv"):
        load_dataset(tmp_path, Skipped())
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(tmp_path / "nope", Skipped())
