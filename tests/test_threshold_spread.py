"""train.threshold_spread: the lower-bound threshold fitted again on redraws of val."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract.bootstrap import confident_threshold
from contract.predictions import PREDICTIONS_CSV, PredictionRow, PredictionTable, write_predictions
from contract.taxonomy import LABELS
from train.threshold_spread import TARGET, main, threshold_spread

MEL, NV = LABELS.index("mel"), LABELS.index("nv")


def table(n: int, seed: int, cutouts: int = 0) -> PredictionTable:
    """n dermoscopic photos, one per lesion, a third melanomas scored higher on average."""
    rng = np.random.default_rng(seed)
    labels = np.where(np.arange(n) % 3 == 0, MEL, NV)
    p_mel = np.clip(np.where(labels == MEL, 0.6, 0.2) + rng.normal(0, 0.15, n), 0.01, 0.98)
    probs = np.zeros((n, len(LABELS)))
    probs[:, MEL], probs[:, NV] = p_mel, 1 - p_mel
    return PredictionTable(
        paths=[f"{seed}_{i}.jpg" for i in range(n)],
        groups=np.array([f"{seed}_lesion{i}" for i in range(n)]),
        domains=np.array(["dermoscopic"] * n),
        labels=labels,
        probs=probs,
        cutouts=np.arange(n) < cutouts,
        thresholds=np.full(n, 0.3),
    )


def test_the_threshold_is_the_rule_s_on_val_and_its_redraws_spread():
    val, test = table(150, seed=1), table(600, seed=2)
    spread = threshold_spread(val, test, "dermoscopic", redraws=40)
    assert spread.threshold == confident_threshold(val.labels, val.probs, val.groups, TARGET)[0]
    for low, mid, high in (
        spread.threshold_percentiles,
        spread.test_sensitivity_percentiles,
        spread.test_specificity_percentiles,
    ):
        assert low <= mid <= high
    low, _, high = spread.test_specificity_percentiles
    assert high - low > 0.02  # 50 melanomas on val cannot pin the threshold
    scores = test.probs[:, MEL]
    assert spread.test_specificity == np.mean(scores[test.labels == NV] < spread.threshold)


def test_cut_outs_are_left_out():
    """Melanoma cut-outs scored near zero would pull the threshold down if they counted."""
    val, test = table(180, seed=1, cutouts=30), table(600, seed=2)
    val.probs[:30, MEL], val.probs[:30, NV] = 0.001, 0.999
    val.labels[:30] = MEL
    photos = slice(30, None)
    y, probs, groups = val.labels[photos], val.probs[photos], val.groups[photos]
    expected = confident_threshold(y, probs, groups, TARGET)
    assert threshold_spread(val, test, "dermoscopic", redraws=20).threshold == expected[0] > 0.01


def write(folder: Path, t: PredictionTable) -> Path:
    folder.mkdir()
    rows = [
        PredictionRow(p, g, d, LABELS[y], bool(c), 0.3, tuple(map(float, pr)))
        for p, g, d, y, c, pr in zip(
            t.paths, t.groups, t.domains, t.labels, t.cutouts, t.probs, strict=True
        )
    ]
    write_predictions(folder / PREDICTIONS_CSV, rows)
    return folder


def test_the_command_prints_and_writes_the_spread(tmp_path: Path, capsys):
    val, test = write(tmp_path / "val", table(90, 1)), write(tmp_path / "test", table(300, 2))
    out = tmp_path / "spread.json"
    assert main([str(val), str(test), "--redraws", "20", "--out", str(out)]) == 0
    assert "over 20 redraws of val" in capsys.readouterr().out
    assert json.loads(out.read_text())["kind"] == "dermoscopic"


def test_the_command_refuses_what_it_cannot_measure(tmp_path: Path, capsys):
    val, test = write(tmp_path / "val", table(90, 1)), write(tmp_path / "test", table(300, 2))
    assert main([str(val), str(test), "--kind", "phone", "--redraws", "20"]) == 2
    assert "phone: val and test each need malignant photos" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(val), str(test), "--redraws", "5"])
    assert "--redraws must be at least 20" in capsys.readouterr().err
