"""Running a model over decoded pixels: Keras, or a .tflite with the LiteRT interpreter.

Evaluation and export verification both use these, so a Keras model and its .tflite are
always fed identically, and a .tflite exactly as the demo server feeds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.tensors import invoke


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


def predict_tflite(model: str | Path | bytes, pixels: np.ndarray, threads: int = 2) -> np.ndarray:
    """Outputs of a .tflite (a path or its bytes) for each image, through `contract.tensors.invoke`,
    the code the demo server runs, whatever its input/output types (float, uint8 or int8)."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        interpreter = Interpreter(model_content=model, num_threads=threads)
    else:
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    outputs = interpreter.get_output_details()[0]["shape"][-1]
    probs = np.empty((len(pixels), outputs), np.float64)
    for i, image in enumerate(pixels):
        probs[i] = invoke(interpreter, image[None])[0]
    return probs
