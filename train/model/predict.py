"""Running a Keras model over decoded pixels, on any backend and under data parallelism.

Training, calibration, ensembles, distillation and evaluation predict through here; a .tflite
runs through `contract.interpreter.predict_tflite`, as the demo server runs it.
"""

from __future__ import annotations

import numpy as np


def predict_keras(model, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's outputs for each image, on any Keras backend and under a data-parallel
    distribution (the batch is rounded up to a multiple of the devices sharing it)."""
    from train.data.pipeline import InferenceBatches
    from train.model.devices import processes, replicas

    if len(pixels) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    devices = replicas()
    batch_size = -(-min(batch_size, len(pixels)) // devices) * devices
    batches = InferenceBatches(pixels, batch_size)
    if processes() > 1:
        # Several hosts: predict's outputs would lie spread over them. Each predicts every
        # image instead (a batch every process gives whole), so every one has them all.
        probs = [model.predict_on_batch(batches[i][0]) for i in range(len(batches))]
        return np.concatenate(probs)[: len(pixels)]
    probs = model.predict(batches, verbose=0)
    return np.asarray(probs)[: len(pixels)]
