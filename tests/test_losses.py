"""Training losses: logit-adjusted cross-entropy (`--balance logit_adjust`) and the
malignant term (`--malignant-loss-weight`)."""

from __future__ import annotations

import numpy as np
import pytest

from contract.taxonomy import LABELS, MALIGNANT
from train.model.losses import (
    class_log_prior,
    logit_adjusted_crossentropy,
    with_malignant_term,
)


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


def test_the_malignant_term_is_the_binary_cross_entropy_of_the_referral_sum():
    """Two predictions with the same seven-way loss on a melanoma: the one that puts the rest
    on other malignant classes costs less with the term, since the triage refers on the sum."""
    mel, bcc, nv = (LABELS.index(c) for c in ("mel", "bcc", "nv"))
    y = np.eye(len(LABELS), dtype=np.float32)[[mel, mel]]
    p = np.full((2, len(LABELS)), 0.0, np.float32)
    p[:, mel] = 0.4
    p[0, bcc], p[1, nv] = 0.6, 0.6  # wrong class; right referral (row 0) or not (row 1)
    seven_way = lambda y_true, y_pred: -np.log((y_pred * y_true).sum(axis=1))  # noqa: E731
    got = np.asarray(with_malignant_term(seven_way, 0.5)(y, p))
    p_mal = p[:, [LABELS.index(c) for c in MALIGNANT]].sum(axis=1)
    expected = seven_way(y, p) + 0.5 * -np.log(np.clip(p_mal, 1e-7, 1 - 1e-7))
    assert np.allclose(got, expected, atol=1e-5)
    assert got[0] < got[1]
    # Soft targets (label smoothing, distillation) count their malignant share.
    soft = np.full((1, len(LABELS)), 0.1, np.float32)
    soft[0, nv] = 0.4
    share = soft[0, [LABELS.index(c) for c in MALIGNANT]].sum()
    got = float(np.asarray(with_malignant_term(lambda a, b: 0.0, 1.0)(soft, p[1:]))[0])
    bce = -(share * np.log(p_mal[1]) + (1 - share) * np.log(1 - p_mal[1]))
    assert got == pytest.approx(bce, abs=1e-4)
