"""recipes/shipped_2025_split.csv is the shipped model's own split, recovered: the grouped rule
over the images it had (docs/history/more_data.md, "The shipped model's split, recovered")."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from contract.records import Skipped
from contract.run_folder import SPLITS, read_split
from train.data.datasets import counts, load_dataset, merge_identical_images
from train.data.split import SplitFractions, grouped_split

REPO = Path(__file__).resolve().parents[1]
SPLIT = REPO / "recipes" / "shipped_2025_split.csv"
DATA_PREFIX = "../shared/data/"  # how the file names images, relative to the repository
FOLDERS = ("ham10000", "pad_ufes20", "pad_ufes20_cutouts")


def test_each_split_holds_the_images_the_shipped_card_counts():
    card = json.loads((REPO / "models" / "model_card.json").read_text())
    splits = read_split(SPLIT)
    assert {name: counts(splits[name]) for name in SPLITS} == card["counts"]


def test_its_test_split_is_the_one_the_shipped_model_was_judged_on():
    with (REPO / "models" / "evaluation" / "predictions.csv").open(newline="") as f:
        judged = sorted(row["path"] for row in csv.DictReader(f))
    assert sorted(str(r.path) for r in read_split(SPLIT)["test"]) == judged


@pytest.mark.slow
def test_the_grouped_rule_deals_it_again_from_the_images_it_lists(data_dir: Path):
    """Today's folders hold 52 more PAD-UFES-20 photos; without them, seed 1337 deals the same
    images into the same splits (one image moved would deal every later group differently)."""
    records = merge_identical_images(
        [r for folder in FOLDERS for r in load_dataset(data_dir / folder, Skipped())]
    )
    listed = {
        str(r.path).removeprefix(DATA_PREFIX): name
        for name, rows in read_split(SPLIT).items()
        for r in rows
    }
    relative = {id(r): r.path.relative_to(data_dir).as_posix() for r in records}
    had = [r for r in records if relative[id(r)] in listed]
    assert len(had) == len(listed) and len(records) - len(had) == 52
    again = grouped_split(had, SplitFractions(0.15, 0.15), seed=1337)
    assert {relative[id(r)]: name for name in SPLITS for r in again[name]} == listed
