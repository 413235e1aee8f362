"""tf.data input pipelines over decoded pixel arrays."""

from __future__ import annotations

from collections import Counter

import numpy as np
import tensorflow as tf

from train.augment import augment
from train.datasets import Record
from train.taxonomy import LABELS, label_index


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


def training_dataset(
    pixels: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    batch_size: int,
    augmented: bool,
    seed: int,
) -> tf.data.Dataset:
    size = pixels.shape[1]
    ds = tf.data.Dataset.from_tensor_slices((pixels, labels, weights))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)

    def prepare(image, label, weight):
        image = tf.cast(image, tf.float32)
        if augmented:
            image = augment(image, size)
        return image, tf.one_hot(label, len(LABELS)), weight

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def inference_dataset(pixels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(pixels)
    return ds.map(lambda x: tf.cast(x, tf.float32)).batch(batch_size).prefetch(2)
