"""Running a model over decoded pixels: Keras, or a .tflite with the LiteRT interpreter.

Evaluation and export verification both use these, so a Keras model and its .tflite are
always fed identically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def predict_keras(model, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    from train.pipeline import inference_dataset

    return np.asarray(model.predict(inference_dataset(pixels, batch_size), verbose=0))


def predict_tflite(model: str | Path | bytes, pixels: np.ndarray, threads: int = 2) -> np.ndarray:
    """Outputs of a .tflite (a path or its bytes) for each image, dequantized to float, whatever
    its input/output types (float, uint8 or int8)."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        interpreter = Interpreter(model_content=model, num_threads=threads)
    else:
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    probs = np.empty((len(pixels), out["shape"][-1]), np.float32)
    for i, image in enumerate(pixels):
        interpreter.set_tensor(inp["index"], quantize(image[None].astype(np.float32), inp))
        interpreter.invoke()
        probs[i] = dequantize(interpreter.get_tensor(out["index"])[0], out)
    return probs


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.floating):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale
