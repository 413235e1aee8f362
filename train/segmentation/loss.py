"""The segmenter's Dice-based loss and its Keras metric (the evaluation's per-image Dice and
Jaccard are `contract.metrics.dice_jaccard`, which export verification compares too).

Training: loss = (1 - soft Dice) + 0.5 x binary cross-entropy, per image then averaged. The soft
Dice is what the issue asks the network to optimise; cross-entropy keeps gradients alive on the
many background pixels early in training and on images whose Dice is already near 1.

Masks are thresholded at 0.5; an image where both masks are empty scores 1.
"""

from __future__ import annotations

import keras
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
