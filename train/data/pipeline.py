"""tf.data input pipelines over decoded pixel arrays."""

from __future__ import annotations

from collections import Counter

import numpy as np
import tensorflow as tf

from contract.taxonomy import LABELS, label_index
from train.data.augment import augment
from train.data.datasets import Record


def label_indices(records: list[Record]) -> np.ndarray:
    return np.array([label_index(r.label) for r in records], dtype=np.int32)


def balancing_weights(records: list[Record], max_weight: float) -> np.ndarray:
    """Per-example weights that give every (domain, class) stratum the same total weight.

    Without this the network learns "dermoscopic mole" (two thirds of the images) and little
    else; phone melanomas, a few dozen images, would barely count.
    """
    strata = [(r.domain, r.label) for r in records]
    size = Counter(strata)
    weights = np.array([len(records) / (len(size) * size[s]) for s in strata], np.float32)
    weights = np.minimum(weights, max_weight)
    return weights / weights.mean()


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(len(LABELS), dtype=np.float32)[labels]


def training_dataset(
    pixels: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    batch_size: int,
    augmented: bool,
    seed: int,
    resample: bool = False,
) -> tf.data.Dataset:
    """Shuffled, augmented batches of (image, target, loss weight).

    `targets` holds one probability row per image: the one-hot label, or a mix of label and
    teacher (train.model.distill).

    Two ways to use the balancing weights: as loss weights (each image once per epoch), or with
    `resample` as sampling probabilities (each epoch draws as many images, with replacement, and
    every loss weight is 1), so a rare stratum is seen more often, in fresh augmentations,
    instead of counting more. Measured here (README), resampling reached a higher val balanced
    accuracy but its int8 export lost more than a point, so loss weights stay the default.
    """
    size = pixels.shape[1]
    if resample:
        images, rows = tf.constant(pixels), tf.constant(targets, tf.float32)
        logits = tf.math.log(tf.constant(weights / weights.sum(), tf.float32))[None]
        # One random number per draw, different every epoch (a seeded op in map() would repeat).
        draws = tf.data.Dataset.random(seed, rerandomize_each_iteration=True).take(len(targets))
        ds = draws.map(
            lambda r: tf.random.stateless_categorical(logits, 1, tf.stack([r, seed]))[0, 0]
        )
        ds = ds.map(lambda i: (tf.gather(images, i), tf.gather(rows, i), tf.constant(1.0)))
    else:
        ds = tf.data.Dataset.from_tensor_slices((pixels, targets.astype(np.float32), weights))
        ds = ds.shuffle(len(targets), seed=seed, reshuffle_each_iteration=True)

    def prepare(image, target, weight):
        image = tf.cast(image, tf.float32)
        if augmented:
            image = augment(image, size)
        return image, target, weight

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def inference_dataset(pixels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(pixels)
    return ds.map(lambda x: tf.cast(x, tf.float32)).batch(batch_size).prefetch(2)
