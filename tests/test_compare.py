"""train.compare: two evaluations of the same images, compared image by image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.predictions import PREDICTIONS_CSV, prediction_rows, read_table, write_predictions
from contract.records import Record
from contract.taxonomy import LABELS
from contract.triage import TriageThresholds
from train.compare import main


def records(n: int) -> list[Record]:
    rng = np.random.default_rng(0)
    return [
        Record(
            Path(f"data/img{i}.jpg"),
            LABELS[int(rng.integers(len(LABELS)))],
            f"lesion{i // 2}",
            "phone" if i % 3 == 0 else "dermoscopic",
            "set",
        )
        for i in range(n)
    ]


SHARED = TriageThresholds(0.3)  # one threshold for every image


def cutouts(n: int) -> np.ndarray:
    """Half of the phone images (every sixth) are background-removed cut-outs."""
    return np.arange(n) % 6 == 0


def evaluation(
    folder: Path,
    recs: list[Record],
    right: float,
    seed: int,
    thresholds: TriageThresholds = SHARED,
) -> Path:
    """An evaluation folder as train.evaluate writes it, right on about `right` of the images."""
    rng = np.random.default_rng(seed)
    y = np.array([LABELS.index(r.label) for r in recs])
    guess = np.where(rng.random(len(y)) < right, y, rng.integers(0, len(LABELS), len(y)))
    probs = np.full((len(y), len(LABELS)), 0.05)
    probs[np.arange(len(y)), guess] = 0.7
    folder.mkdir(parents=True)
    per_image = thresholds.for_images([r.domain for r in recs])
    rows = prediction_rows(recs, probs, cutouts(len(recs)), per_image)
    write_predictions(folder / PREDICTIONS_CSV, rows)
    summary = {
        "malignant_threshold": thresholds.any_domain,
        "malignant_threshold_by_domain": dict(thresholds.by_domain),
    }
    (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


def test_predictions_table_round_trips(tmp_path: Path):
    recs = records(30)
    evaluation(tmp_path / "a", recs, 0.5, seed=1)
    table = read_table(tmp_path / "a" / PREDICTIONS_CSV)
    assert table.paths == [str(r.path) for r in recs]
    assert list(table.labels) == [LABELS.index(r.label) for r in recs]
    assert list(table.domains) == [r.domain for r in recs]
    assert table.probs.shape == (30, len(LABELS))
    assert np.allclose(table.probs.max(1), 0.7)
    assert np.array_equal(table.cutouts, cutouts(30))
    assert table.thresholds.tolist() == [0.3] * 30


def drop_columns(path: Path, names: tuple[str, ...]) -> None:
    """The table as written before those columns existed."""
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in names]
    path.write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n")


def test_a_table_from_before_cutouts_and_thresholds_were_written_still_reads(tmp_path: Path):
    evaluation(tmp_path / "a", records(30), 0.5, seed=1)
    path = tmp_path / "a" / PREDICTIONS_CSV
    drop_columns(path, ("cutout", "threshold"))
    table = read_table(path)
    assert not table.cutouts.any() and len(table.cutouts) == 30
    assert table.thresholds is None


def test_compare_reports_each_scope_with_a_paired_interval(tmp_path: Path, capsys):
    recs = records(300)
    a = evaluation(tmp_path / "a", recs, 0.3, seed=1)
    b = evaluation(tmp_path / "b", recs, 0.9, seed=2)
    out = tmp_path / "comparison.json"
    assert main([str(a), str(b), "--resamples", "200", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    # Cut-outs are no photo a person sends: a scope of their own, outside overall and phone.
    assert "| overall | 250 |" in table and "| phone | 50 |" in table
    assert "| phone cut-outs | 50 |" in table
    result = json.loads(out.read_text())
    scopes = set(result) - {"a", "b", "resamples"}
    assert scopes == {"overall", "dermoscopic", "phone", "phone cut-outs"}
    assert result["overall"]["malignant_auc"]["interval"][0] > 0
    lead = result["overall"]["balanced_accuracy"]
    assert lead["interval"][0] > 0.3  # a 0.9 model against a 0.3 one: far beyond noise
    assert lead["b_ahead"] == 1.0
    # The other way round, the same lead with the sign turned.
    assert main([str(b), str(a), "--resamples", "200"]) == 0
    swapped = f"{lead['b']:.4f} -> {lead['a']:.4f}: {-lead['difference']:+.4f}"
    assert swapped in capsys.readouterr().out
    assert lead["difference"] == pytest.approx(lead["b"] - lead["a"])


@pytest.mark.parametrize("old_table", [False, True])
def test_compare_triages_each_domain_at_its_own_threshold(tmp_path: Path, old_table: bool):
    """From the table's threshold column, or, in a table without one, from metrics.json."""
    recs = records(300)
    a = evaluation(tmp_path / "a", recs, 0.9, seed=1)
    own = TriageThresholds(0.3, {"dermoscopic": 0.9})
    b = evaluation(tmp_path / "b", recs, 0.9, seed=1, thresholds=own)  # the same predictions
    if old_table:
        drop_columns(b / PREDICTIONS_CSV, ("threshold",))
    out = tmp_path / "comparison.json"
    assert main([str(a), str(b), "--resamples", "100", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # No P(malignant) reaches 0.9: B refers no dermoscopic image; phone photos keep 0.3.
    assert result["dermoscopic"]["malignant_sensitivity"]["a"] > 0.5
    assert result["dermoscopic"]["malignant_sensitivity"]["b"] == 0.0
    assert result["dermoscopic"]["malignant_specificity"]["b"] == 1.0
    phone = result["phone"]["malignant_sensitivity"]
    assert phone["a"] == phone["b"] and phone["difference"] == 0.0


def test_compare_triages_at_each_images_own_threshold(tmp_path: Path):
    """With answers whose card lets the photo's referral stand, an image's threshold is 0:
    compare reads it from the table, not from the domain's threshold."""
    recs = records(300)
    a = evaluation(tmp_path / "a", recs, 0.9, seed=1)
    b = evaluation(tmp_path / "b", recs, 0.9, seed=1)
    path = b / PREDICTIONS_CSV
    path.write_text(path.read_text().replace(",0.3,", ",0.0,"))  # every image referred
    out = tmp_path / "comparison.json"
    assert main([str(a), str(b), "--resamples", "100", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["overall"]["malignant_sensitivity"]["b"] == 1.0
    assert result["overall"]["malignant_specificity"]["b"] == 0.0


def test_compare_refuses_evaluations_of_different_images(tmp_path: Path, capsys):
    a = evaluation(tmp_path / "a", records(30), 0.5, seed=1)
    b = evaluation(tmp_path / "b", records(31), 0.5, seed=1)
    assert main([str(a), str(b)]) == 2
    assert "not of the same images" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda text: "path,label\nx.jpg,mel\n", "not a predictions table"),
        (lambda text: text.replace(",mel,", ",melanoma,", 1), "unknown label(s) ['melanoma']"),
        (lambda text: text.replace(",0.7", ",high", 1), "not a number"),
    ],
)
def test_compare_refuses_a_damaged_predictions_table(edit, message, tmp_path: Path, capsys):
    a = evaluation(tmp_path / "a", records(30), 0.5, seed=1)
    b = evaluation(tmp_path / "b", records(30), 0.5, seed=2)
    table = b / PREDICTIONS_CSV
    table.write_text(edit(table.read_text()))
    assert main([str(a), str(b)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--resamples", "10"], "--resamples must be at least 100"),
        (["--out"], "expected one argument"),
    ],
)
def test_compare_usage_errors(extra, message, tmp_path: Path, capsys):
    a = evaluation(tmp_path / "a", records(10), 0.5, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        main([str(a), str(a), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_needs_evaluation_folders(tmp_path: Path, capsys):
    a = evaluation(tmp_path / "a", records(10), 0.5, seed=1)
    with pytest.raises(SystemExit):
        main([str(a), str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert (
        "usage: python -m train.compare" in err and "evaluate with python -m train.evaluate" in err
    )
