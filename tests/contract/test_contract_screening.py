"""contract.screening: temperature scaling of the model's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from contract.screening import REFER, WATCH, apply_temperature, screen, standing_thresholds
from contract.taxonomy import LABELS, MALIGNANT
from contract.triage import TriageThresholds


def test_calibration_is_temperature_scaling_of_log_probabilities():
    p = np.array([0.7, 0.2, 0.1, 0.0])
    floored = np.clip(p, 1e-6, None)
    assert apply_temperature(p, 1.0) == pytest.approx(floored / floored.sum())
    t = 2.0
    logits = np.log(np.clip(p, 1e-6, None)) / t
    expected = np.exp(logits) / np.exp(logits).sum()
    assert apply_temperature(p, t) == pytest.approx(expected)
    hotter = apply_temperature(p, 3.0)
    assert hotter.max() < apply_temperature(p, 1.0).max()
    assert np.argsort(hotter).tolist() == np.argsort(apply_temperature(p, 1.0)).tolist()
    assert apply_temperature(p, 0.5).max() > p.max()


def test_answers_can_add_a_referral_but_never_cancel_the_photos():
    """The photo refers (P(malignant) 0.40 against 0.30); answers that push P(malignant) down
    to well below the answers' threshold leave it referred when the photo's referral stands."""
    raw = np.array([0.1, 0.1, 0.3, 0.05, 0.2, 0.25, 0.0])  # akiec+mel+bcc = 0.4
    lower = np.zeros(len(LABELS))
    lower[[LABELS.index(c) for c in MALIGNANT]] = -3.0  # the answers: "benign, surely"
    thresholds = TriageThresholds(0.3)
    photo = screen(raw, LABELS, MALIGNANT, 1.0, thresholds, 0.5)
    assert photo.triage == REFER and not photo.referred_by_photo
    cancelled = screen(raw, LABELS, MALIGNANT, 1.0, thresholds, 0.5, lower)
    assert cancelled.triage == WATCH and cancelled.p_malignant < 0.05  # cards before the rule
    stands = screen(raw, LABELS, MALIGNANT, 1.0, thresholds, 0.5, lower, photo_refers=True)
    assert stands.triage == REFER and stands.referred_by_photo
    assert stands.p_malignant == cancelled.p_malignant and stands.threshold == 0.3
    # Answers that raise P(malignant) over the threshold refer by themselves.
    raised = screen(raw, LABELS, MALIGNANT, 1.0, thresholds, 0.5, -lower, photo_refers=True)
    assert raised.triage == REFER and not raised.referred_by_photo


def test_standing_thresholds_refer_every_image_the_photo_refers():
    thresholds = np.array([0.2, 0.2, 0.3, 0.3])
    photo_refers = np.array([True, False, True, False])
    assert standing_thresholds(thresholds, photo_refers).tolist() == [0.0, 0.2, 0.0, 0.3]
