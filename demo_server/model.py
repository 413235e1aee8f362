"""The .tflite model as a phone app sees it: LiteRT interpreters plus the metadata packed inside.

Nothing here may import TensorFlow: the file and its associated files are the whole contract.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from demo_server.answers import AnswersCardError, AnswerSpec, answer_spec
from demo_server.litert import (
    InterpreterPool,
    PoolBusy,
    TensorSpec,
    dequantize_output,
    quantize_input,
    read_model_file,
)

DEFAULT_MALIGNANT = ("akiec", "bcc", "mel")
# Re-exported so callers need not know which module pools interpreters.
__all__ = [
    "Classifier",
    "ModelError",
    "ModelMetadata",
    "PoolBusy",
    "TensorSpec",
    "dequantize_output",
    "quantize_input",
    "read_metadata",
]


class ModelError(Exception):
    """The model file cannot be used (missing, not a TFLite model, or its metadata is wrong)."""


@dataclass(frozen=True)
class ModelMetadata:
    """What the model file says about itself (associated files + tensor details)."""

    name: str
    version: str
    labels: tuple[str, ...]
    display_names: tuple[str, ...]
    malignant_labels: tuple[str, ...]
    temperature: float
    malignant_threshold: float
    input: TensorSpec
    output: TensorSpec
    card: dict[str, Any] = field(default_factory=dict)
    answers: AnswerSpec | None = None  # the card's optional questions about person and spot
    file_name: str = ""
    file_sha256: str = ""
    file_size: int = 0

    @property
    def input_height(self) -> int:
        return self.input.shape[1]

    @property
    def input_width(self) -> int:
        return self.input.shape[2]


def read_associated_files(model_bytes: bytes) -> dict[str, bytes]:
    """The zip appended after the flatbuffer (labels.txt, labels_en.txt, model_card.json)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        raise ModelError("the model has no associated files (labels.txt is missing)") from None


def _lines(data: bytes) -> tuple[str, ...]:
    return tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())


def read_metadata(
    model_bytes: bytes, input_spec: TensorSpec, output_spec: TensorSpec, file_name: str
) -> ModelMetadata:
    """Combine the associated files with the interpreter's tensor details, checking they agree."""
    files = read_associated_files(model_bytes)
    if "labels.txt" not in files:
        raise ModelError("the model's associated files lack labels.txt")
    labels = _lines(files["labels.txt"])
    try:
        card = json.loads(files["model_card.json"]) if "model_card.json" in files else {}
    except ValueError as exc:
        raise ModelError(f"model_card.json is not valid JSON: {exc}") from None
    if "labels_en.txt" in files:
        display_names = _lines(files["labels_en.txt"])
    else:
        display_names = tuple(card.get("display_names") or labels)
    if len(input_spec.shape) != 4 or input_spec.shape[3] != 3:
        raise ModelError(f"expected an input of shape 1xHxWx3, got {list(input_spec.shape)}")
    if output_spec.shape[-1] != len(labels) or len(display_names) != len(labels):
        raise ModelError(
            f"{len(labels)} labels and {len(display_names)} display names "
            f"for {output_spec.shape[-1]} model outputs"
        )
    try:
        answers = answer_spec(card, labels)
    except AnswersCardError as exc:
        raise ModelError(f"model_card.json: {exc}") from None
    return ModelMetadata(
        name=str(card.get("name", Path(file_name).stem)),
        version=str(card.get("version", "unknown")),
        labels=labels,
        display_names=display_names,
        malignant_labels=tuple(card.get("malignant_labels", DEFAULT_MALIGNANT)),
        temperature=float((card.get("calibration") or {}).get("temperature", 1.0)),
        malignant_threshold=float((card.get("triage") or {}).get("malignant_threshold", 0.5)),
        input=input_spec,
        output=output_spec,
        card=card,
        answers=answers,
        file_name=file_name,
        file_sha256=hashlib.sha256(model_bytes).hexdigest(),
        file_size=len(model_bytes),
    )


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
        self.metadata = read_metadata(model_bytes, self._pool.input, self._pool.output, file_name)
        self.pool_size = interpreters
        self._batch_lock = threading.Lock()
        self._batch_interpreter: Interpreter | None = None
        self._batch_size = 0
        self._can_batch = True  # False once the model refused a batch-sized input
        if batch_size > 0:
            with self._batch_lock:
                self._batch_interpreter_for(batch_size)

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> Classifier:
        """Load a .tflite file; raises ModelError with a readable reason if it is unusable."""
        data = read_model_file(path, ModelError, "model")
        return cls(data, file_name=Path(path).name, **kwargs)

    def to_pixels(self, image: Image.Image) -> np.ndarray:
        """Stretch an RGB image to the model's H x W with bilinear resampling (the contract)."""
        size = (self.metadata.input_width, self.metadata.input_height)
        return np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.uint8)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) probabilities for one H x W x 3 uint8 image."""
        raw = self._pool.run(quantize_input(pixels[np.newaxis], self.metadata.input))
        return dequantize_output(raw.reshape(-1), self.metadata.output)

    def predict_batch(self, batch: np.ndarray) -> tuple[np.ndarray, bool]:
        """Probabilities for N images; batched in one invoke when the model allows resizing.

        Returns the (N, classes) probabilities and whether a single batched invoke was used.
        """
        with self._batch_lock:
            interpreter = self._batch_interpreter_for(len(batch))
            if interpreter is not None:
                interpreter.set_tensor(
                    interpreter.get_input_details()[0]["index"],
                    quantize_input(batch, self.metadata.input),
                )
                interpreter.invoke()
                raw = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
                return dequantize_output(raw, self.metadata.output), True
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
