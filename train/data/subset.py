"""Small real subsets for smoke runs and tests, taken by whole groups."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from contract.records import Record


def take_per_class(records: list[Record], per_class: int, seed: int) -> list[Record]:
    """About `per_class` images of each (domain, class), whole lesions or patients at a time."""
    by_group: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_group[r.group].append(r)
    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    taken: Counter = Counter()
    subset: list[Record] = []
    for group in groups:
        members = by_group[group]
        if any(taken[(r.domain, r.label)] < per_class for r in members):
            subset += members
            taken.update((r.domain, r.label) for r in members)
    return subset
