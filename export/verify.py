"""Verifying an exported .tflite against the Keras model it came from.

The .tflite runs as the demo server runs it (`contract.interpreter.predict_tflite`); the Keras
model runs here, plainly, on one device: the reference the exported file is held to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from contract import metrics


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


def keras_outputs(model, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The Keras model's outputs for uint8 images (N, H, W, 3), batch by batch."""
    return np.asarray(model.predict(pixels, batch_size=batch_size, verbose=0))


def _bacc_by_domain(y: np.ndarray, probs: np.ndarray, domains: np.ndarray) -> dict[str, float]:
    return {
        scope: metrics.balanced_accuracy(y[mask], probs[mask].argmax(1))
        for scope, mask in metrics.domain_scopes(domains).items()
    }


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
