"""One row per evaluated image: what it is and what the model said (predictions.csv).

`train.evaluate` writes it beside metrics.json, so evaluations can be compared image by image
(`train.compare`) or analysed elsewhere without running the model again.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.records import Record
from contract.taxonomy import LABELS

PREDICTIONS_CSV = "predictions.csv"
_KEYS = ("path", "group", "domain", "label")
# Tables written before 2026-12-06 lack these two columns.
_CUTOUT = "cutout"  # 1: background removed, reported apart
_THRESHOLD = "threshold"  # the image's triage threshold (0: the photo's own referral stood)
_PROBABILITIES = tuple(f"p_{label}" for label in LABELS)


@dataclass(frozen=True)
class PredictionTable:
    paths: list[str]
    groups: np.ndarray
    domains: np.ndarray
    labels: np.ndarray  # class indices into LABELS
    probs: np.ndarray  # calibrated, as evaluated (with the answers when --answers was given)
    cutouts: np.ndarray  # background-removed images
    thresholds: np.ndarray | None  # each image's triage threshold; None in older tables


def write_predictions(
    path: Path,
    records: Sequence[Record],
    probs: np.ndarray,
    cutouts: np.ndarray,
    thresholds: np.ndarray,
) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow((*_KEYS, _CUTOUT, _THRESHOLD, *_PROBABILITIES))
        for record, row, cut, threshold in zip(records, probs, cutouts, thresholds, strict=True):
            keys = (record.path, record.group, record.domain, record.label)
            writer.writerow([*keys, int(cut), repr(float(threshold)), *(f"{p:.6f}" for p in row)])


def read_predictions(path: Path) -> PredictionTable:
    """The table, or ValueError saying what is wrong with the file."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        columns = set(_KEYS + _PROBABILITIES)
        if not rows or not columns <= set(rows[0]):
            raise ValueError(f"{path}: not a predictions table (columns {sorted(columns)})")
    unknown = sorted({r["label"] for r in rows} - set(LABELS))
    if unknown:
        raise ValueError(f"{path}: unknown label(s) {unknown}")
    try:
        probs = np.array([[float(r[c]) for c in _PROBABILITIES] for r in rows])
        thresholds = (
            np.array([float(r[_THRESHOLD]) for r in rows]) if _THRESHOLD in rows[0] else None
        )
    except (TypeError, ValueError):
        raise ValueError(f"{path}: a probability or threshold is missing or not a number") from None
    return PredictionTable(
        paths=[r["path"] for r in rows],
        groups=np.array([r["group"] for r in rows]),
        domains=np.array([r["domain"] for r in rows]),
        labels=np.array([LABELS.index(r["label"]) for r in rows]),
        probs=probs,
        cutouts=np.array([r.get(_CUTOUT) == "1" for r in rows]),
        thresholds=thresholds,
    )
