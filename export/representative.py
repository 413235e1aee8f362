"""Choosing the representative images (LiteRT's term) whose activations set the int8 ranges."""

from __future__ import annotations

import random
from collections import defaultdict

from contract.records import Record


def representative_records(train: list[Record], count: int, seed: int) -> list[Record]:
    """`count` training images dealt round-robin over (domain, class) strata.

    Activation ranges are set by what the converter sees: a sample dominated by dermoscopic
    moles would clip the colours and contrasts of phone photos.
    """
    strata: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in train:
        strata[(r.domain, r.label)].append(r)
    rng = random.Random(seed)
    queues = [rng.sample(members, len(members)) for _, members in sorted(strata.items())]
    chosen: list[Record] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return chosen
