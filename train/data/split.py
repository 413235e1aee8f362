"""Grouped, stratified train/val/test split (the run folder's split.csv: `contract.run_folder`).

No lesion or patient is in two splits. Within that constraint groups are dealt, rarest class
first, to whichever split is furthest below its share of that (domain, class), so small classes
such as dermatofibroma still appear in val and test.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contract.commands import CommandError
from contract.records import Record
from contract.run_folder import SPLITS, read_split


class SplitError(CommandError, ValueError):
    """An earlier split cannot be kept as asked; the message says which file or group."""


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
    records: list[Record],
    fractions: SplitFractions,
    seed: int,
    keep: Mapping[str, str] | None = None,
) -> dict[str, list[Record]]:
    """Assign whole groups to splits, balancing each (domain, class) stratum.

    `keep` (image path -> split, e.g. an earlier split.csv read by `kept_assignments`) pins the
    groups of those images to their split first, new images of such a group included, so adding
    data never moves an image already assigned and old val/test results stay comparable; the
    other groups are then dealt by the same rule.
    """
    by_group: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_group[r.group].append(r)
    stratum_size = Counter((r.domain, r.label) for r in records)
    pinned = _pinned_groups(by_group, keep or {})

    def rarity(group: str) -> int:
        return min(stratum_size[(r.domain, r.label)] for r in by_group[group])

    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    groups.sort(key=rarity)  # stable: shuffled within equal rarity

    shares = fractions.shares()
    filled: dict[str, Counter] = {s: Counter() for s in SPLITS}
    assignment: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for group in groups:
        if group in pinned:
            members = by_group[group]
            filled[pinned[group]].update((r.domain, r.label) for r in members)
            assignment[pinned[group]].extend(members)
    for group in (g for g in groups if g not in pinned):
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


def _pinned_groups(
    by_group: Mapping[str, list[Record]], keep: Mapping[str, str]
) -> dict[str, str]:
    """The split of every group that has a kept image; ValueError if a group's kept images
    were in different splits (joining them now would leak one into the other)."""
    pinned: dict[str, str] = {}
    for group, members in by_group.items():
        paths = [str(r.path.resolve()) for r in members]
        splits = {keep[p] for p in paths if p in keep}
        if len(splits) > 1:
            raise SplitError(
                f"group {group} has kept images in {sorted(splits)}: it cannot stay whole"
            )
        if splits:
            pinned[group] = splits.pop()
    return pinned


def kept_assignments(path: Path) -> dict[str, str]:
    """Image path (resolved) -> split, from an earlier split.csv (its `split` and `path`)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    unknown = {row.get("split") for row in rows} - set(SPLITS)
    if not rows or "path" not in rows[0] or unknown:
        raise SplitError(f"{path} is not a split.csv (columns split, path; splits {SPLITS})")
    return {str(Path(row["path"]).resolve()): row["split"] for row in rows}


def differing_split(a: Path, b: Path) -> str | None:
    """The first of train/val/test whose records differ between two split.csv files, or None.

    Runs combined into one model (an ensemble, or a teacher and its student) must share every
    split, or one of them has seen the others' val or test images.
    """
    ours, theirs = read_split(a), read_split(b)
    return next((name for name in SPLITS if ours[name] != theirs[name]), None)
