"""Verifying an exported .tflite against the Keras model it came from.

The .tflite runs as the demo server runs it (`contract.interpreter.predict_tflite`); the Keras
model runs here, plainly, on one device: the reference the exported file is held to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from contract import metrics
from contract.bootstrap import paired_difference_intervals


@dataclass(frozen=True)
class Verification:
    variant: str
    file_bytes: int
    n: int
    top1_agreement: float
    max_probability_difference: float
    balanced_accuracy: dict[str, float]  # by domain and "overall"
    keras_balanced_accuracy: dict[str, float]
    # 95% interval of the points lost (Keras minus file), drawing whole lesions / patients
    balanced_accuracy_loss_interval: dict[str, list[float]]

    def balanced_accuracy_loss(self) -> dict[str, float]:
        """Points (percentage) of balanced accuracy lost against Keras, per domain."""
        return {
            d: 100 * (self.keras_balanced_accuracy[d] - self.balanced_accuracy[d])
            for d in self.balanced_accuracy
        }

    def gate_failures(self, split: str, max_loss_points: float) -> list[str]:
        """The domains where this file loses more than `max_loss_points` and the loss is beyond
        noise: the lower end of its 95% interval is above zero (under 2.5% of the draws of
        lesions / patients show the file as good as Keras)."""
        failures = []
        for domain, loss in self.balanced_accuracy_loss().items():
            low, high = self.balanced_accuracy_loss_interval[domain]
            if loss > max_loss_points and low > 0:
                failures.append(
                    f"{self.variant} loses {loss:.2f} points of balanced accuracy on "
                    f"{split}/{domain} (95% interval {low:.2f} to {high:.2f}; allowed "
                    f"{max_loss_points}, or more within noise)"
                )
        return failures

    def to_dict(self) -> dict:
        return {**asdict(self), "balanced_accuracy_loss_points": self.balanced_accuracy_loss()}


def keras_outputs(model, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The Keras model's outputs for uint8 images (N, H, W, 3), batch by batch."""
    return np.asarray(model.predict(pixels, batch_size=batch_size, verbose=0))


def _balanced_accuracies(
    y: np.ndarray, file_probs: np.ndarray, keras_probs: np.ndarray, domains, groups
) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """The file's and Keras's balanced accuracy per domain, and the 95% interval of the points
    the file loses. Why an interval: a phone test split holds 7 melanomas, so one of them
    changing class moves that domain's balanced accuracy by 2.9 points, whatever quantization
    did."""
    file_bacc, keras_bacc, intervals = {}, {}, {}
    for scope, mask in metrics.domain_scopes(domains).items():
        paired = paired_difference_intervals(
            y[mask], groups[mask], (file_probs[mask], 0.5), (keras_probs[mask], 0.5)
        )["balanced_accuracy"]
        file_bacc[scope], keras_bacc[scope] = paired["a"], paired["b"]
        intervals[scope] = [100 * v for v in paired["interval"]]
    return file_bacc, keras_bacc, intervals


def verify(
    variant: str,
    file_bytes: int,
    tflite_probs: np.ndarray,
    keras_probs: np.ndarray,
    y: np.ndarray,
    domains: np.ndarray,
    groups: np.ndarray,
) -> Verification:
    file_bacc, keras_bacc, loss_intervals = _balanced_accuracies(
        y, tflite_probs, keras_probs, domains, groups
    )
    return Verification(
        variant=variant,
        file_bytes=file_bytes,
        n=len(y),
        top1_agreement=float((tflite_probs.argmax(1) == keras_probs.argmax(1)).mean()),
        max_probability_difference=float(np.abs(tflite_probs - keras_probs).max()),
        balanced_accuracy=file_bacc,
        keras_balanced_accuracy=keras_bacc,
        balanced_accuracy_loss_interval=loss_intervals,
    )
