"""Running a .tflite over decoded pixels with LiteRT's interpreter, image by image.

Evaluation, export verification, the lesion gate's and the segmenter's reports all run a model
file this way, through `contract.tensors.invoke` (the code the demo server runs), so a .tflite
is measured exactly as the server feeds it. LiteRT is imported when a model is run, so the
contract stays importable with numpy and Pillow alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.tensors import invoke


def predict_tflite(model: str | Path | bytes, pixels: np.ndarray, threads: int = 2) -> np.ndarray:
    """Outputs of a .tflite (a path or its bytes) for each uint8 image (N, H, W, 3), flattened
    to float64 (N, outputs), whatever its input/output types (float, uint8 or int8)."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        interpreter = Interpreter(model_content=model, num_threads=threads)
    else:
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    outputs = int(np.prod(interpreter.get_output_details()[0]["shape"][1:]))
    probs = np.empty((len(pixels), outputs), np.float64)
    for i, image in enumerate(pixels):
        probs[i] = invoke(interpreter, image[None])[0]
    return probs
