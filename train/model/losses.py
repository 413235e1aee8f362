"""Logit-adjusted cross-entropy (Menon et al., "Long-tail learning via logit adjustment", 2021).

The third way to balance classes, beside loss weights and resampling: every image is seen once
per epoch with loss weight 1, and the loss adds tau * log(prior) to the logits, so the network
itself is pushed to model p(x | class) rather than the prior; its plain softmax is then the
balanced classifier that balanced accuracy asks for. Rare classes are neither repeated
(resampling's over-fitting) nor up-weighted (loss weights' noisy gradients).
"""

from __future__ import annotations

import keras
import numpy as np

from contract.taxonomy import LABELS


def class_log_prior(labels: np.ndarray) -> np.ndarray:
    """log of each class's share of the training labels (a class with none counts as one)."""
    counts = np.maximum(np.bincount(labels, minlength=len(LABELS)), 1)
    return np.log(counts / counts.sum()).astype(np.float32)


def logit_adjusted_crossentropy(log_prior: np.ndarray, label_smoothing: float, tau: float = 1.0):
    """A Keras loss on the model's softmax output: CE(softmax(log p + tau * log prior))."""
    shift = keras.ops.convert_to_tensor(tau * log_prior)

    def loss(y_true, y_pred):
        logits = keras.ops.log(keras.ops.clip(y_pred, 1e-7, 1.0)) + shift
        return keras.losses.categorical_crossentropy(
            y_true, logits, from_logits=True, label_smoothing=label_smoothing
        )

    return loss
