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
    from train.model.devices import replicas

    if len(pixels) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    devices = replicas()
    batch_size = -(-min(batch_size, len(pixels)) // devices) * devices
    probs = model.predict(InferenceBatches(pixels, batch_size), verbose=0)
    return np.asarray(probs)[: len(pixels)]
