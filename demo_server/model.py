"""The .tflite model as a phone app sees it: LiteRT interpreters plus the metadata packed inside.

Nothing here may import TensorFlow: the file and its associated files are the whole contract.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from contract.colour_constancy import apply
from contract.images import resize_to_input
from contract.model_file import ModelFileError, ModelMetadata, read_metadata, read_model_file
from contract.tensors import invoke
from demo_server.litert import InterpreterPool, PoolBusy

# Re-exported so callers need not know which module pools interpreters.
__all__ = ["Classifier", "ModelError", "ModelMetadata", "PoolBusy"]


class ModelError(ModelFileError):
    """The model file cannot be used (missing, not a TFLite model, or its metadata is wrong)."""


class Classifier:
    """A pool of LiteRT interpreters over one model (an interpreter is not thread-safe)."""

    def __init__(
        self,
        model_bytes: bytes,
        file_name: str = "model.tflite",
        interpreters: int = 4,
        pool_timeout_s: float = 30.0,
        batch_size: int = 0,
    ) -> None:
        """`batch_size` > 0 prepares the batch interpreter now, so the first explain is fast."""
        self._model_bytes = model_bytes
        self._pool = InterpreterPool(model_bytes, interpreters, pool_timeout_s, ModelError)
        try:
            self.metadata = read_metadata(
                model_bytes, self._pool.input, self._pool.output, file_name
            )
        except ModelFileError as error:
            raise ModelError(str(error)) from None
        self.pool_size = interpreters
        self.path: Path | None = None  # the file it was read from (from_file)
        self._batch_lock = threading.Lock()
        self._batch_interpreter: Interpreter | None = None
        self._batch_size = 0
        self._can_batch = True  # False once the model refused a batch-sized input
        if batch_size > 0:
            with self._batch_lock:
                self._batch_interpreter_for(batch_size)

    @property
    def model_id(self) -> str:
        """Its name in ``?model=ID``: the file name without ``.tflite``."""
        return Path(self.metadata.file_name).stem

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> Classifier:
        """Load a .tflite file; raises ModelError with a readable reason if it is unusable."""
        try:
            data = read_model_file(path, "model")
        except ModelFileError as error:
            raise ModelError(str(error)) from None
        classifier = cls(data, file_name=Path(path).name, **kwargs)
        classifier.path = Path(path)
        return classifier

    def to_pixels(self, image: Image.Image) -> np.ndarray:
        """The model's input pixels for an upright RGB image (`contract.images`), after the
        colour-constancy step its card names (`contract.colour_constancy`)."""
        meta = self.metadata
        pixels = resize_to_input(image, meta.input_height, meta.input_width)
        return apply(pixels, meta.colour_constancy)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) probabilities for one H x W x 3 uint8 image."""
        return self._pool.run(pixels[np.newaxis])

    def predict_batch(self, batch: np.ndarray) -> tuple[np.ndarray, bool]:
        """Probabilities for N images; batched in one invoke when the model allows resizing.

        Returns the (N, classes) probabilities and whether a single batched invoke was used.
        """
        with self._batch_lock:
            interpreter = self._batch_interpreter_for(len(batch))
            if interpreter is not None:
                return invoke(interpreter, batch), True
        return np.stack([self.predict(pixels) for pixels in batch]), False

    def _batch_interpreter_for(self, size: int) -> Interpreter | None:
        """An interpreter whose input is resized to `size` images, or None if it cannot be."""
        if self._batch_interpreter is not None and self._batch_size == size:
            return self._batch_interpreter
        if not self._can_batch:
            return None
        meta = self.metadata
        try:
            interpreter = Interpreter(model_content=self._model_bytes, num_threads=2)
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(
                index, [size, meta.input_height, meta.input_width, 3], strict=False
            )
            interpreter.allocate_tensors()
            out_shape = tuple(interpreter.get_output_details()[0]["shape"])
        except (ValueError, RuntimeError):
            out_shape = ()
        if out_shape != (size, len(meta.labels)):  # e.g. a Reshape that pins the batch to 1
            self._can_batch, self._batch_interpreter = False, None
            return None
        self._batch_interpreter, self._batch_size = interpreter, size
        return interpreter
