"""Verifying an exported .tflite against the Keras model it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from train.evaluation import metrics


@dataclass(frozen=True)
class Verification:
    variant: str
    file_bytes: int
    n: int
    top1_agreement: float
    max_probability_difference: float
    balanced_accuracy: dict[str, float]  # by domain and "overall"
    keras_balanced_accuracy: dict[str, float]

    def balanced_accuracy_loss(self) -> dict[str, float]:
        """Points (percentage) of balanced accuracy lost against Keras, per domain."""
        return {
            d: 100 * (self.keras_balanced_accuracy[d] - self.balanced_accuracy[d])
            for d in self.balanced_accuracy
        }

    def to_dict(self) -> dict:
        return {**asdict(self), "balanced_accuracy_loss_points": self.balanced_accuracy_loss()}


def _bacc_by_domain(y: np.ndarray, probs: np.ndarray, domains: np.ndarray) -> dict[str, float]:
    result = {"overall": metrics.balanced_accuracy(y, probs.argmax(1))}
    for d in sorted(set(domains.tolist())):
        result[d] = metrics.balanced_accuracy(y[domains == d], probs[domains == d].argmax(1))
    return result


def verify(
    variant: str,
    file_bytes: int,
    tflite_probs: np.ndarray,
    keras_probs: np.ndarray,
    y: np.ndarray,
    domains: np.ndarray,
) -> Verification:
    return Verification(
        variant=variant,
        file_bytes=file_bytes,
        n=len(y),
        top1_agreement=float((tflite_probs.argmax(1) == keras_probs.argmax(1)).mean()),
        max_probability_difference=float(np.abs(tflite_probs - keras_probs).max()),
        balanced_accuracy=_bacc_by_domain(y, tflite_probs, domains),
        keras_balanced_accuracy=_bacc_by_domain(y, keras_probs, domains),
    )
