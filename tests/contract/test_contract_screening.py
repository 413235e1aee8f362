"""contract.screening: temperature scaling of the model's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from contract.screening import calibrate


def test_calibration_is_temperature_scaling_of_log_probabilities():
    p = np.array([0.7, 0.2, 0.1, 0.0])
    assert calibrate(p, 1.0) == pytest.approx(np.clip(p, 1e-6, None) / np.clip(p, 1e-6, None).sum())
    t = 2.0
    logits = np.log(np.clip(p, 1e-6, None)) / t
    expected = np.exp(logits) / np.exp(logits).sum()
    assert calibrate(p, t) == pytest.approx(expected)
    hotter = calibrate(p, 3.0)
    assert hotter.max() < calibrate(p, 1.0).max()
    assert np.argsort(hotter).tolist() == np.argsort(calibrate(p, 1.0)).tolist()
    assert calibrate(p, 0.5).max() > p.max()
