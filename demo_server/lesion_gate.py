"""The "not a skin-lesion photo" gate as the server runs it: one .tflite, one number, one threshold.

The file is the whole contract: the model outputs one outlier score (the largest, over several
feature layers, of the squared Mahalanobis distance from lesion photos divided by that layer's
own limit), and `lesion_gate.json` (a zip member appended after the flatbuffer, read by
`contract.model_file`) holds the threshold and input size. No TensorFlow, nothing from train/
or export/ here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from contract.images import resize_to_input
from contract.model_file import ModelFileError, read_gate_info, read_model_file
from demo_server.litert import InterpreterPool


class GateError(ModelFileError):
    """The gate file cannot be used (unreadable, not a TFLite model, or its JSON is missing)."""


@dataclass(frozen=True)
class GateResult:
    is_lesion: bool
    distance: float
    threshold: float


class LesionGate:
    """A small pool of LiteRT interpreters (one is not thread-safe) over the gate model."""

    def __init__(
        self,
        model: bytes,
        interpreters: int = 2,
        threads: int = 1,
        pool_timeout_s: float | None = None,
        file_name: str = "lesion_gate.tflite",
    ) -> None:
        """`pool_timeout_s`: how long a check waits for a free interpreter before PoolBusy."""
        try:
            info = read_gate_info(model)
        except ModelFileError as error:
            raise GateError(str(error)) from None
        self.threshold: float = info.threshold
        self.image_size: int = info.image_size
        self.pool_size = interpreters
        self.file_name = file_name
        self.file_sha256 = hashlib.sha256(model).hexdigest()
        self.file_size = len(model)
        self._pool = InterpreterPool(model, interpreters, pool_timeout_s, GateError, threads)
        shape = self._pool.input.shape
        if shape != (1, self.image_size, self.image_size, 3):
            raise GateError(f"input shape {shape} does not match image_size {self.image_size}")

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> LesionGate:
        try:
            model = read_model_file(path, "gate")
        except ModelFileError as error:
            raise GateError(str(error)) from None
        return cls(model, file_name=Path(path).name, **kwargs)

    def distance(self, pixels: np.ndarray) -> float:
        """Outlier score for one image_size x image_size x 3 uint8 image."""
        return float(self._pool.run(pixels[np.newaxis])[0])

    def check(self, image: Image.Image) -> GateResult:
        """Verdict for an RGB, upright image, stretched to the gate's input size (bilinear)."""
        distance = self.distance(resize_to_input(image, self.image_size, self.image_size))
        return GateResult(distance <= self.threshold, distance, self.threshold)
