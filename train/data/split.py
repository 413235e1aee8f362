"""Grouped, stratified train/val/test split, written to and read from a CSV in the run folder.

No lesion or patient is in two splits. Within that constraint groups are dealt, rarest class
first, to whichever split is furthest below its share of that (domain, class), so small classes
such as dermatofibroma still appear in val and test.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from train.data.datasets import Record

SPLITS = ("train", "val", "test")
SPLIT_CSV = "split.csv"
_COLUMNS = ("split", "path", "label", "group", "domain", "source")


@dataclass(frozen=True)
class SplitFractions:
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ValueError(f"bad split fractions val={self.val} test={self.test}")

    def shares(self) -> dict[str, float]:
        return {"train": 1 - self.val - self.test, "val": self.val, "test": self.test}


def grouped_split(
    records: list[Record], fractions: SplitFractions, seed: int
) -> dict[str, list[Record]]:
    """Assign whole groups to splits, balancing each (domain, class) stratum."""
    by_group: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_group[r.group].append(r)
    stratum_size = Counter((r.domain, r.label) for r in records)

    def rarity(group: str) -> int:
        return min(stratum_size[(r.domain, r.label)] for r in by_group[group])

    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    groups.sort(key=rarity)  # stable: shuffled within equal rarity

    shares = fractions.shares()
    filled: dict[str, Counter] = {s: Counter() for s in SPLITS}
    assignment: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for group in groups:
        members = by_group[group]
        strata = Counter((r.domain, r.label) for r in members)

        def deficit(split: str, strata: Counter = strata) -> float:
            return sum(
                n * (shares[split] - filled[split][k] / stratum_size[k]) for k, n in strata.items()
            )

        best = max((s for s in SPLITS if shares[s] > 0), key=deficit)
        filled[best].update(strata)
        assignment[best].extend(members)
    return assignment


def write_split(path: Path, assignment: dict[str, list[Record]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(_COLUMNS)
        for split in SPLITS:
            for r in assignment[split]:
                writer.writerow((split, str(r.path), r.label, r.group, r.domain, r.source))


def read_split(path: Path) -> dict[str, list[Record]]:
    """The split every later step uses: evaluation, export calibration and verification."""
    assignment: dict[str, list[Record]] = {s: [] for s in SPLITS}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            assignment[row["split"]].append(
                Record(Path(row["path"]), row["label"], row["group"], row["domain"], row["source"])
            )
    return assignment


def differing_split(a: Path, b: Path) -> str | None:
    """The first of train/val/test whose records differ between two split.csv files, or None.

    Runs combined into one model (an ensemble, or a teacher and its student) must share every
    split, or one of them has seen the others' val or test images.
    """
    ours, theirs = read_split(a), read_split(b)
    return next((name for name in SPLITS if ours[name] != theirs[name]), None)
