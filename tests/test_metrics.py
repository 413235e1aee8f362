"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from contract import metrics
from contract.screening import apply_temperature
from contract.taxonomy import LABELS
from train.model.calibration import fit_temperature, threshold_for_sensitivity

AKIEC, BCC, BKL, DF, MEL, NV, VASC = range(len(LABELS))


def one_hot(indices, confidence=0.9):
    probs = np.full((len(indices), len(LABELS)), (1 - confidence) / (len(LABELS) - 1))
    probs[np.arange(len(indices)), indices] = confidence
    return probs


def test_balanced_accuracy_is_mean_recall_over_present_classes():
    y = np.array([NV, NV, NV, NV, MEL, MEL])
    pred = np.array([NV, NV, NV, NV, NV, MEL])
    assert metrics.per_class_recall(y, pred) == {"mel": 0.5, "nv": 1.0}
    assert metrics.balanced_accuracy(y, pred) == pytest.approx(0.75)


def test_auc_matches_pairwise_definition_with_ties():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    positive = np.array([False, False, True, True, True])
    pairs = [(p, n) for p in scores[positive] for n in scores[~positive]]
    expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert metrics.binary_auc(scores, positive) == pytest.approx(expected)


def test_malignant_probability_and_sensitivity():
    probs = np.zeros((4, len(LABELS)))
    probs[0, [MEL, NV]] = [0.3, 0.7]
    probs[1, [BCC, AKIEC, NV]] = [0.3, 0.3, 0.4]
    probs[2, NV] = 1.0
    probs[3, [BKL, MEL]] = [0.8, 0.2]
    y = np.array([MEL, BCC, NV, BKL])
    assert metrics.malignant_probability(probs) == pytest.approx([0.3, 0.6, 0.0, 0.2])
    result = metrics.sensitivity_specificity(y, probs, threshold=0.25)
    assert result["sensitivity"] == 1.0
    assert result["specificity"] == 1.0
    result = metrics.sensitivity_specificity(y, probs, threshold=0.5)
    assert result["sensitivity"] == 0.5


def test_threshold_for_sensitivity_reaches_the_target():
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(LABELS), 500)
    probs = rng.dirichlet(np.ones(len(LABELS)), 500)
    for target in (0.8, 0.95, 1.0):
        t = threshold_for_sensitivity(y, probs, target)
        assert metrics.sensitivity_specificity(y, probs, t)["sensitivity"] >= target
        higher = metrics.sensitivity_specificity(y, probs, t + 1e-6)["sensitivity"]
        assert higher < target


def test_temperature_scaling_reduces_overconfidence():
    rng = np.random.default_rng(1)
    y = rng.integers(0, len(LABELS), 2000)
    noisy = np.where(rng.random(2000) < 0.6, y, rng.integers(0, len(LABELS), 2000))
    overconfident = one_hot(noisy, confidence=0.99)  # right about 65% of the time
    t = fit_temperature(y, overconfident)
    assert t > 1.5
    calibrated = apply_temperature(overconfident, t)
    assert metrics.expected_calibration_error(y, calibrated) < 0.05
    assert metrics.expected_calibration_error(y, overconfident) > 0.25
    np.testing.assert_allclose(calibrated.sum(1), 1.0, rtol=1e-6)
    assert (calibrated.argmax(1) == overconfident.argmax(1)).all()


def test_report_by_domain_has_each_domain():
    y = np.array([NV, MEL, NV, BCC])
    probs = one_hot([NV, MEL, MEL, BCC])
    report = metrics.report_by_domain(
        y, probs, ["dermoscopic", "dermoscopic", "phone", "phone"], 0.5
    )
    assert set(report) == {"overall", "dermoscopic", "phone"}
    assert report["dermoscopic"]["balanced_accuracy"] == 1.0
    assert report["phone"]["per_class_recall"] == {"bcc": 1.0, "nv": 0.0}
    assert report["overall"]["confusion_matrix"]["rows_true_cols_pred"][NV][MEL] == 1
