"""What the answers add to a photo's probabilities: a likelihood ratio per class.

Per domain, a multinomial logistic regression predicts the class from the answers alone
(z = x W + b). Its log-odds relative to its own prediction for "no answers" (z = b),

    r_c = (z_c - logsumexp(z)) - (b_c - logsumexp(b)),

is what the answers say beyond the prior, and is added to the log of the image probabilities
(naive Bayes: answers and photo taken as independent given the class), scaled by a strength
chosen on val. No answers means r = 0: the photo-only result. Classes a domain never shows
(df and vasc in PAD-UFES-20) get r = 0. Training drops answers at random so that any subset of
questions can be left unanswered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.answers import BY_NAME, Answers, encode, feature_names
from train.taxonomy import LABELS

PROBABILITY_FLOOR = 1e-6  # as in train.metrics.apply_temperature and the demo server


@dataclass(frozen=True)
class AnswerModel:
    domain: str
    questions: tuple[str, ...]
    classes: tuple[str, ...]  # the labels the regression covers; others get r = 0
    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    strength: float = 1.0

    def log_ratios(self, features: np.ndarray) -> np.ndarray:
        """r for each row of features, over all LABELS (N x 7)."""
        z = np.atleast_2d(features) @ self.weights + self.bias
        r = _log_softmax(z) - _log_softmax(self.bias[None])
        full = np.zeros((len(z), len(LABELS)))
        full[:, [LABELS.index(c) for c in self.classes]] = r
        return full

    def log_ratios_of(self, answers: Answers) -> np.ndarray:
        """r for one person's answers (questions this model does not ask are ignored)."""
        return self.log_ratios(encode(answers, self.questions))[0]

    def as_json(self) -> dict:
        return {
            "questions": list(self.questions),
            "features": feature_names(self.questions),
            "classes": list(self.classes),
            "weights": np.round(self.weights, 6).tolist(),
            "bias": np.round(self.bias, 6).tolist(),
            "strength": self.strength,
        }

    @classmethod
    def from_json(cls, domain: str, spec: dict) -> AnswerModel:
        return cls(
            domain=domain,
            questions=tuple(spec["questions"]),
            classes=tuple(spec["classes"]),
            weights=np.array(spec["weights"], dtype=np.float64),
            bias=np.array(spec["bias"], dtype=np.float64),
            strength=float(spec["strength"]),
        )


def with_answers(raw: np.ndarray, ratios: np.ndarray, strength: float) -> np.ndarray:
    """Image probabilities updated by the answers' log ratios (still uncalibrated)."""
    logits = np.log(np.clip(raw, PROBABILITY_FLOOR, 1.0)) + strength * ratios
    return np.exp(_log_softmax(logits))


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
) -> AnswerModel:
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
    return AnswerModel(domain, questions, tuple(LABELS[i] for i in present), weights, bias)


def _with_dropped_answers(
    questions: tuple[str, ...],
    features: np.ndarray,
    y: np.ndarray,
    drop_rate: float,
    copies: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    widths = [len(BY_NAME[q].choices) for q in questions]
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
        grad = (np.exp(_log_softmax(x @ weights + bias)) - onehot) / n
        weights -= rate * (x.T @ grad + l2 / n * weights)
        bias -= rate * grad.sum(axis=0)
    return weights, bias


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
