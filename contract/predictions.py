"""One row per evaluated image: what it is and what the model said (`predictions.csv`).

`train.evaluate` writes it beside metrics.json, so evaluations can be compared image by image
(`train.compare`), the shipped model's test photos found again (the segmenter pins them to val,
`train.segmentation.dataset`) or analysed elsewhere without running the model again. Every
writer and reader goes through `PredictionRow` here; `PredictionTable` is the same rows as
columns, for scoring.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.commands import CommandError
from contract.records import Record
from contract.taxonomy import LABELS

PREDICTIONS_CSV = "predictions.csv"
_KEYS = ("path", "group", "domain", "label")
# Tables written before 2026-12-06 lack these two columns.
_CUTOUT = "cutout"  # 1: background removed, reported apart
_THRESHOLD = "threshold"  # the image's triage threshold (0: the photo's own referral stood)
_PROBABILITIES = tuple(f"p_{label}" for label in LABELS)


class PredictionsError(CommandError, ValueError):
    """A file that is not a predictions table of this taxonomy; the message names the file."""


@dataclass(frozen=True)
class PredictionRow:
    """One evaluated image."""

    path: str
    group: str
    domain: str
    label: str  # a code of LABELS
    cutout: bool  # background removed (False in older tables)
    threshold: float | None  # its triage threshold; None in older tables
    # calibrated, in LABELS order (written exactly; with 6 decimals before 2026-12-07)
    probabilities: tuple[float, ...]


def prediction_rows(
    records: Sequence[Record], probs: np.ndarray, cutouts: np.ndarray, thresholds: np.ndarray
) -> list[PredictionRow]:
    """The rows of an evaluation: each record with its probabilities, cut-out flag and
    threshold."""
    return [
        PredictionRow(
            str(r.path), r.group, r.domain, r.label, bool(cut), float(t), tuple(map(float, p))
        )
        for r, p, cut, t in zip(records, probs, cutouts, thresholds, strict=True)
    ]


def write_predictions(path: Path, rows: Iterable[PredictionRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow((*_KEYS, _CUTOUT, _THRESHOLD, *_PROBABILITIES))
        for r in rows:
            threshold = "" if r.threshold is None else repr(r.threshold)
            probabilities = (repr(float(p)) for p in r.probabilities)
            keys = (r.path, r.group, r.domain, r.label)
            writer.writerow([*keys, int(r.cutout), threshold, *probabilities])


def read_predictions(path: Path) -> list[PredictionRow]:
    """The rows, or ValueError saying what is wrong with the file."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        columns = set(_KEYS + _PROBABILITIES)
        if not rows or not columns <= set(rows[0]):
            raise PredictionsError(f"{path}: not a predictions table (columns {sorted(columns)})")
    unknown = sorted({r["label"] for r in rows} - set(LABELS))
    if unknown:
        raise PredictionsError(f"{path}: unknown label(s) {unknown}")
    try:
        return [
            PredictionRow(
                path=r["path"],
                group=r["group"],
                domain=r["domain"],
                label=r["label"],
                cutout=r.get(_CUTOUT) == "1",
                threshold=float(r[_THRESHOLD]) if r.get(_THRESHOLD) else None,
                probabilities=tuple(float(r[c]) for c in _PROBABILITIES),
            )
            for r in rows
        ]
    except (TypeError, ValueError):
        message = f"{path}: a probability or threshold is missing or not a number"
        raise PredictionsError(message) from None


@dataclass(frozen=True)
class PredictionTable:
    """A table's rows as columns."""

    paths: list[str]
    groups: np.ndarray
    domains: np.ndarray
    labels: np.ndarray  # class indices into LABELS
    probs: np.ndarray  # calibrated, as evaluated (with the answers when --answers was given)
    cutouts: np.ndarray  # background-removed images
    thresholds: np.ndarray | None  # each image's triage threshold; None in older tables

    @classmethod
    def of(cls, rows: Sequence[PredictionRow]) -> PredictionTable:
        thresholds = [r.threshold for r in rows]
        return cls(
            paths=[r.path for r in rows],
            groups=np.array([r.group for r in rows]),
            domains=np.array([r.domain for r in rows]),
            labels=np.array([LABELS.index(r.label) for r in rows]),
            probs=np.array([r.probabilities for r in rows]),
            cutouts=np.array([r.cutout for r in rows]),
            thresholds=None if None in thresholds else np.array(thresholds, dtype=np.float64),
        )


def read_table(path: Path) -> PredictionTable:
    """`read_predictions` as columns."""
    return PredictionTable.of(read_predictions(path))
