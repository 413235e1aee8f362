"""Logit-adjusted cross-entropy (`--balance logit_adjust`)."""

from __future__ import annotations

import numpy as np
import pytest

from contract.taxonomy import LABELS
from train.model.losses import class_log_prior, logit_adjusted_crossentropy


def test_class_log_prior_is_the_label_share_with_a_floor_of_one():
    labels = np.array([5] * 90 + [0] * 10)
    prior = np.exp(class_log_prior(labels))
    assert prior[5] == pytest.approx(90 / 105) and prior[0] == pytest.approx(10 / 105)
    assert prior[3] == pytest.approx(1 / 105)  # absent: counted once, not log(0)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_the_loss_is_cross_entropy_after_adding_the_log_prior():
    rng = np.random.default_rng(0)
    p = _softmax(rng.normal(size=(4, len(LABELS)))).astype(np.float32)
    y = np.eye(len(LABELS), dtype=np.float32)[[0, 5, 5, 3]]
    log_prior = class_log_prior(np.array([5] * 50 + [0] * 5 + [3]))
    got = np.asarray(logit_adjusted_crossentropy(log_prior, 0.0)(y, p))
    expected = -np.log((_softmax(np.log(p) + log_prior) * y).sum(axis=1))
    assert np.allclose(got, expected, atol=1e-5)
    # The prior already backs the majority class, so the network must earn a minority label
    # with a larger margin: against plain cross-entropy, a minority label costs more.
    plain = -np.log((p * y).sum(axis=1))
    assert got[1] < plain[1] and got[0] > plain[0]


def test_a_uniform_prior_changes_nothing():
    p = _softmax(np.arange(len(LABELS), dtype=np.float32)[None]).astype(np.float32)
    y = np.eye(len(LABELS), dtype=np.float32)[[2]]
    uniform = np.full(len(LABELS), -np.log(len(LABELS)), np.float32)
    got = float(np.asarray(logit_adjusted_crossentropy(uniform, 0.0)(y, p))[0])
    assert got == pytest.approx(-np.log(p[0, 2]), abs=1e-5)
