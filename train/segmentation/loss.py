"""Dice-based loss and the per-image Dice / Jaccard the evaluation reports.

Training: loss = (1 - soft Dice) + 0.5 x binary cross-entropy, per image then averaged. The soft
Dice is what the issue asks the network to optimise; cross-entropy keeps gradients alive on the
many background pixels early in training and on images whose Dice is already near 1.

Evaluation (numpy): masks thresholded at 0.5; an image where both masks are empty scores 1.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

SMOOTH = 1.0
BCE_WEIGHT = 0.5


def soft_dice(y_true, y_pred):
    """Per-image soft Dice of (N, H, W, 1) probabilities."""
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (ops.shape(y_pred)[0], -1))
    y_pred = ops.reshape(y_pred, (ops.shape(y_pred)[0], -1))
    overlap = ops.sum(y_true * y_pred, axis=1)
    total = ops.sum(y_true, axis=1) + ops.sum(y_pred, axis=1)
    return (2.0 * overlap + SMOOTH) / (total + SMOOTH)


def dice_bce_loss(y_true, y_pred):
    bce = keras.losses.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred)  # N, H, W
    bce = ops.mean(ops.reshape(bce, (ops.shape(y_pred)[0], -1)), axis=1)
    return 1.0 - soft_dice(y_true, y_pred) + BCE_WEIGHT * bce


def hard_dice(y_true, y_pred):
    """Per-image Dice at threshold 0.5 (a Keras metric: averaged over images)."""
    binary = ops.cast(y_pred >= 0.5, y_pred.dtype)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (ops.shape(y_pred)[0], -1))
    binary = ops.reshape(binary, (ops.shape(y_pred)[0], -1))
    overlap = ops.sum(y_true * binary, axis=1)
    total = ops.sum(y_true, axis=1) + ops.sum(binary, axis=1)
    return ops.where(total > 0, 2.0 * overlap / ops.maximum(total, 1.0), 1.0)


def dice_jaccard(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and Jaccard of boolean masks (N, H, W); both empty scores 1."""
    truth = truth.reshape(len(truth), -1).astype(bool)
    predicted = predicted.reshape(len(predicted), -1).astype(bool)
    overlap = (truth & predicted).sum(axis=1).astype(np.float64)
    union = (truth | predicted).sum(axis=1).astype(np.float64)
    total = truth.sum(axis=1) + predicted.sum(axis=1).astype(np.float64)
    dice = np.where(total > 0, 2 * overlap / np.maximum(total, 1), 1.0)
    jaccard = np.where(union > 0, overlap / np.maximum(union, 1), 1.0)
    return dice, jaccard
