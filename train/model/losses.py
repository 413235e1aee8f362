"""Training losses beside plain cross-entropy: logit adjustment, and a term for the referral.

Logit-adjusted cross-entropy (Menon et al., "Long-tail learning via logit adjustment", 2021) is
the third way to balance classes, beside loss weights and resampling: every image is seen once
per epoch with loss weight 1, and the loss adds tau * log(prior) to the logits, so the network
itself is pushed to model p(x | class) rather than the prior; its plain softmax is then the
balanced classifier that balanced accuracy asks for. Rare classes are neither repeated
(resampling's over-fitting) nor up-weighted (loss weights' noisy gradients).
"""

from __future__ import annotations

import keras
import numpy as np

from contract.taxonomy import LABELS, MALIGNANT


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


def with_malignant_term(loss, weight: float):
    """`loss` plus `weight` x the binary cross-entropy of P(malignant), the sum of the malignant
    classes' probabilities, against the target's share of them.

    The triage refers on that sum, not on the top class: a melanoma called a carcinoma costs the
    seven-way loss but not the referral, and a nevus with 30% spread over three malignant
    classes costs the referral but little of the seven-way loss. This term makes training see
    the decision users get (issue 32, lever 3a)."""
    columns = np.array([code in MALIGNANT for code in LABELS], np.float32)
    malignant = keras.ops.convert_to_tensor(columns)

    def total(y_true, y_pred):
        p_true = keras.ops.sum(y_true * malignant, axis=-1, keepdims=True)
        p_pred = keras.ops.sum(y_pred * malignant, axis=-1, keepdims=True)
        p_pred = keras.ops.clip(p_pred, 1e-7, 1 - 1e-7)
        referral = keras.losses.binary_crossentropy(p_true, p_pred)
        return loss(y_true, y_pred) + weight * referral

    return total
