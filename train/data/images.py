"""Decoding a data set's image files into model inputs, skipping (and naming) unreadable ones.

Each file goes through `contract.images.model_input`, the decoding the demo server uses too, so
what the model saw in training is what it sees in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from contract.images import model_input
from train.data.datasets import Record, Skipped


def decode_records(
    records: Sequence[Record], size: int, skipped: Skipped, workers: int = 4
) -> tuple[np.ndarray, list[Record]]:
    """Decode all records; unreadable ones are added to `skipped` and left out."""

    def attempt(record: Record) -> np.ndarray | None:
        try:
            return model_input(record.path, size)
        except (OSError, ValueError) as error:
            skipped.add(record.path, f"unreadable image ({error})")
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(attempt, records))
    kept = [(a, r) for a, r in zip(arrays, records, strict=True) if a is not None]
    pixels = np.stack([a for a, _ in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    return pixels, [r for _, r in kept]
