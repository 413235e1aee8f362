"""Adding data without moving an image already assigned; the ISIC 2017 loader."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from contract.records import Record, Skipped
from contract.run_folder import write_split
from train.data.datasets import load_dataset, merge_identical_images
from train.data.split import SplitError, SplitFractions, grouped_split, kept_assignments


def records(prefix: str, groups: int, per_group: int = 2) -> list[Record]:
    labels = ["nv", "nv", "mel", "bkl", "bcc"]
    return [
        Record(
            Path(f"/data/{prefix}/g{g}_{i}.jpg"),
            labels[g % len(labels)],
            f"{prefix}/g{g}",
            "dermoscopic",
            prefix,
        )
        for g in range(groups)
        for i in range(per_group)
    ]


def test_new_images_are_dealt_around_the_kept_split(tmp_path: Path):
    old = records("old", 200)
    first = grouped_split(old, SplitFractions(), seed=1)
    write_split(tmp_path / "split.csv", first)
    keep = kept_assignments(tmp_path / "split.csv")

    # A new data set, and one more photo of a lesion that is already in test.
    in_test = first["test"][0]
    extra = Record(Path("/data/old/late.jpg"), in_test.label, in_test.group, "dermoscopic", "old")
    new = records("new", 100)
    second = grouped_split(old + new + [extra], SplitFractions(), seed=99, keep=keep)

    where = {str(r.path): split for split, rs in second.items() for r in rs}
    assert all(where[str(r.path)] == split for split, rs in first.items() for r in rs)
    assert where[str(extra.path)] == "test"  # follows its lesion
    dealt = Counter(where[str(r.path)] for r in new)
    assert dealt["train"] > dealt["val"] > 0 and dealt["test"] > 0
    groups = {}
    for split, rs in second.items():
        for r in rs:
            assert groups.setdefault(r.group, split) == split  # no group in two splits


def test_a_group_kept_in_two_splits_is_refused():
    old = records("old", 2, per_group=1)
    merged = [Record(r.path, r.label, "one-lesion", r.domain, r.source) for r in old]
    keep = {str(old[0].path.resolve()): "train", str(old[1].path.resolve()): "test"}
    with pytest.raises(SplitError, match="one-lesion"):
        grouped_split(merged, SplitFractions(), seed=1, keep=keep)


def test_a_file_that_is_not_a_split_is_refused(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text("path,label\na.jpg,nv\n")
    with pytest.raises(SplitError, match="not a split.csv"):
        kept_assignments(path)
    path.write_text("split,path\nholdout,a.jpg\n")
    with pytest.raises(SplitError, match="not a split.csv"):
        kept_assignments(path)


def test_keep_split_needs_data(tmp_path: Path, capsys):
    from train.__main__ import main

    (tmp_path / "old.csv").write_text("split,path\ntrain,a.jpg\n")
    with pytest.raises(SystemExit):
        main(["--split-from", str(tmp_path / "old.csv"), "--keep-split", str(tmp_path / "old.csv"),
              "--out", str(tmp_path / "run")])  # fmt: skip
    assert "give --data" in capsys.readouterr().err


def test_isic2017_loader_keeps_repeat_shots_together(data_dir: Path):
    skipped = Skipped()
    isic = load_dataset(data_dir / "isic2017", skipped)
    assert not skipped.items
    assert len(isic) == 2745 and len({r.group for r in isic}) == 2649
    assert Counter(r.label for r in isic) == {"nv": 1838, "mel": 521, "bkl": 386}
    assert {r.domain for r in isic} == {"dermoscopic"}
    labels = {}
    with (data_dir / "isic2017" / "labels.csv").open() as f:
        for row in csv.DictReader(f):
            labels[row["image_id"]] = row["group_id"]
    assert all(r.group == f"ISIC-2017/{labels[r.path.stem]}" for r in isic)
    split = grouped_split(merge_identical_images(isic), SplitFractions(), seed=3)
    sides = {}
    for name, rs in split.items():
        for r in rs:
            assert sides.setdefault(r.group, name) == name
