"""Labelled images (records) and what every stage makes of them: model inputs and label indices.

A record is one image file with its label, its group (lesion or patient: what a split keeps
together) and its domain (what metrics are reported per). Training, evaluation, export
calibration and verification all decode records here, through `contract.images.model_input`
(the decoding the demo server uses too), so what the model saw in training is what it sees in
use; an unreadable file is named in `Skipped`, never silently dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.images import model_input
from contract.taxonomy import label_index


@dataclass(frozen=True)
class Record:
    """One labelled image."""

    path: Path
    label: str  # a code of contract.taxonomy.LABELS
    group: str  # lesion or patient: never split across train/val/test
    domain: str  # contract.taxonomy.DOMAINS
    source: str  # data-set name, for counts and attribution


@dataclass
class Skipped:
    """Images that could not be used, each with the reason; reported, never silently dropped."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str | Path, reason: str) -> None:
        self.items.append((str(what), reason))

    def warn(self) -> None:
        """One warning at the end of loading that counts and names every skipped image."""
        if not self.items:
            return
        shown = "\n".join(f"  {what}: {reason}" for what, reason in self.items[:50])
        more = f"\n  ... and {len(self.items) - 50} more" if len(self.items) > 50 else ""
        warnings.warn(
            f"skipped {len(self.items)} image(s):\n{shown}{more}", UserWarning, stacklevel=2
        )


def decode_records(
    records: Sequence[Record], size: int, skipped: Skipped, workers: int = 4
) -> tuple[np.ndarray, list[Record]]:
    """Decode all records to uint8 (N, size, size, 3); unreadable ones are added to `skipped`
    and left out of both the pixels and the returned records."""

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


def label_indices(records: Sequence[Record]) -> np.ndarray:
    """Each record's class as its index in `contract.taxonomy.LABELS` (the model's outputs)."""
    return np.array([label_index(r.label) for r in records], dtype=np.int32)
