"""contract.predictions: the committed evaluations' tables read and write back unchanged, and
probabilities are written exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.predictions import (
    PREDICTIONS_CSV,
    PredictionRow,
    PredictionTable,
    read_predictions,
    write_predictions,
)
from contract.taxonomy import LABELS

REPO = Path(__file__).resolve().parents[2]
TABLES = sorted(REPO.glob(f"models/**/{PREDICTIONS_CSV}"))


def test_the_shipped_evaluations_have_tables():
    assert REPO / "models" / "evaluation" / PREDICTIONS_CSV in TABLES


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_table_reads_and_writes_back_the_same_rows(path: Path, tmp_path: Path):
    rows = read_predictions(path)
    assert rows and all(len(r.probabilities) == len(LABELS) for r in rows)
    write_predictions(tmp_path / PREDICTIONS_CSV, rows)
    assert read_predictions(tmp_path / PREDICTIONS_CSV) == rows


def test_probabilities_and_thresholds_are_written_exactly(tmp_path: Path):
    """A photo exactly at its threshold (val's fallback is a malignant photo's own score) stays
    referred when the table is scored again."""
    probabilities = tuple(np.random.default_rng(0).dirichlet(np.ones(len(LABELS))))
    at_threshold = float(np.float32(sum(probabilities[:3])))
    row = PredictionRow("a.jpg", "g1", "phone", "mel", False, at_threshold, probabilities)
    write_predictions(tmp_path / PREDICTIONS_CSV, [row])
    assert read_predictions(tmp_path / PREDICTIONS_CSV) == [row]


def test_rows_become_columns(tmp_path: Path):
    rows = [
        PredictionRow("a.jpg", "g1", "phone", "mel", True, 0.2, (0.1,) * 7),
        PredictionRow("b.jpg", "g2", "dermoscopic", "nv", False, 0.0, (0.2,) * 7),
    ]
    write_predictions(tmp_path / PREDICTIONS_CSV, rows)
    table = PredictionTable.of(read_predictions(tmp_path / PREDICTIONS_CSV))
    assert table.paths == ["a.jpg", "b.jpg"] and table.cutouts.tolist() == [True, False]
    assert table.labels.tolist() == [LABELS.index("mel"), LABELS.index("nv")]
    assert table.thresholds.tolist() == [0.2, 0.0] and table.probs.shape == (2, 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,group\na,b\n", "not a predictions table"),
        ("path,group,domain,label," + ",".join(f"p_{c}" for c in LABELS) + "\n"
         "a,g,phone,xyz" + ",0.1" * 7 + "\n", r"unknown label\(s\) \['xyz'\]"),
        ("path,group,domain,label," + ",".join(f"p_{c}" for c in LABELS) + "\n"
         "a,g,phone,nv" + ",x" * 7 + "\n", "not a number"),
    ],
)  # fmt: skip
def test_a_malformed_table_says_what_is_wrong(tmp_path: Path, text: str, message: str):
    (tmp_path / PREDICTIONS_CSV).write_text(text)
    with pytest.raises(ValueError, match=message):
        read_predictions(tmp_path / PREDICTIONS_CSV)
