"""The files of a run folder, which training writes and evaluation and export read.

A finished run (`python -m train`, `train.ensemble`, `train.recipe`) holds `model.keras`,
`model_card.json` (what the model is: labels, input, calibration, triage, metrics; the exporter
packs it into every .tflite) and `split.csv` (which image is in train, val or test; every later
step, export's representative images and verification included, uses the run's own split).
Their names and formats, and the check that a folder holds what a step needs, are written once,
here; the card is read and written by `contract.card`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from contract.card import MODEL_CARD_JSON
from contract.commands import CommandError
from contract.records import Record

SPLITS = ("train", "val", "test")
SPLIT_CSV = "split.csv"
# The shipped classifier's split, committed; its rows' paths are relative to the repository root,
# like this path (commands run from there).
SHIPPED_SPLIT_CSV = Path("recipes/shipped_2025_split.csv")
MODEL_KERAS = "model.keras"
FINISHED_RUN = (MODEL_KERAS, MODEL_CARD_JSON, SPLIT_CSV)
_COLUMNS = ("split", "path", "label", "group", "domain", "source")


class RunFolderError(CommandError, ValueError):
    """A folder lacks a file the step needs; the message names the file and what writes it."""


def check_run_folder(
    run: Path, files: Sequence[str] = FINISHED_RUN, written_by: str = "python -m train"
) -> None:
    """RunFolderError naming the first of `files` that `run` lacks."""
    for name in files:
        if not (run / name).is_file():
            raise RunFolderError(
                f"{run / name} not found; is {run} a finished run folder (written by {written_by})?"
            )


def write_split(path: Path, assignment: dict[str, list[Record]]) -> None:
    """split.csv: one row per image, train first, then val and test."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(_COLUMNS)
        for split in SPLITS:
            for r in assignment[split]:
                writer.writerow((split, str(r.path), r.label, r.group, r.domain, r.source))


def read_split(path: Path) -> dict[str, list[Record]]:
    """The split every later step uses: evaluation, export's representative images, verification."""
    assignment: dict[str, list[Record]] = {s: [] for s in SPLITS}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            assignment[row["split"]].append(
                Record(Path(row["path"]), row["label"], row["group"], row["domain"], row["source"])
            )
    return assignment
