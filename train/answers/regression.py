"""Fitting the answers' model: one multinomial logistic regression per domain, in numpy.

The regression predicts the class from the answers alone; what it adds to a photo (its log
ratios, `contract.answers`) is defined once in the contract, which this fit produces a
`DomainModel` for. Training drops answers at random so that any subset of questions can be left
unanswered.
"""

from __future__ import annotations

import numpy as np

from contract.answers import DomainModel, log_softmax
from contract.questionnaire import BY_NAME
from contract.taxonomy import LABELS


def fit_answer_model(
    domain: str,
    questions: tuple[str, ...],
    features: np.ndarray,
    labels: np.ndarray,
    *,
    drop_rate: float = 0.3,
    copies: int = 4,
    l2: float = 1.0,
    steps: int = 2000,
    seed: int = 0,
) -> DomainModel:
    """Fit the regression on one domain's training answers (labels: indices into LABELS).

    Each row is repeated `copies` times with every question dropped at `drop_rate`, so the
    model has seen every mix of answered and unanswered questions.
    """
    answered = sorted(set(labels[features.any(axis=1)].tolist()))
    if len(answered) < 2:
        raise ValueError(
            f"{domain}: answers of at least two classes are needed, got {len(answered)}"
        )
    present = sorted(set(labels.tolist()))
    y = np.searchsorted(present, labels)
    x, y = _with_dropped_answers(questions, features, y, drop_rate, copies, seed)
    weights, bias = _multinomial_logistic_regression(x, y, len(present), l2, steps)
    return DomainModel(
        domain=domain,
        questions=tuple(BY_NAME[q] for q in questions),
        classes=tuple(LABELS[i] for i in present),
        labels=LABELS,
        weights=weights,
        bias=bias,
    )


def _with_dropped_answers(
    questions: tuple[str, ...],
    features: np.ndarray,
    y: np.ndarray,
    drop_rate: float,
    copies: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    widths = [BY_NAME[q].width for q in questions]
    blocks = np.repeat(np.arange(len(questions)), widths)  # question of each feature column
    rows = [features]
    for _ in range(copies):
        dropped = rng.random((len(features), len(questions))) < drop_rate
        rows.append(features * ~dropped[:, blocks])
    return np.vstack(rows), np.tile(y, copies + 1)


def _multinomial_logistic_regression(
    x: np.ndarray, y: np.ndarray, classes: int, l2: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch gradient descent on the mean cross-entropy plus l2 / n * |W|^2 / 2."""
    n, d = x.shape
    weights, bias = np.zeros((d, classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    rate = 1.0
    for _ in range(steps):
        grad = (np.exp(log_softmax(x @ weights + bias)) - onehot) / n
        weights -= rate * (x.T @ grad + l2 / n * weights)
        bias -= rate * grad.sum(axis=0)
    return weights, bias
