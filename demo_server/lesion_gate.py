"""The "not a skin-lesion photo" gate as the server runs it: one .tflite, one number, one threshold.

The file is the whole contract: the model outputs one outlier score (the largest, over several
feature layers, of the squared Mahalanobis distance from lesion photos divided by that layer's
own limit), and `lesion_gate.json` (a zip member appended after the flatbuffer, read by
`contract.model_file`) holds the threshold and input size. No TensorFlow, nothing from train/
or export/ here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from contract.images import resize_to_input
from contract.model_file import GateInfo, ModelFileError, read_gate_info
from demo_server.litert import SquareImageModel


class GateError(ModelFileError):
    """The gate file cannot be used (unreadable, not a TFLite model, or its JSON is missing)."""


@dataclass(frozen=True)
class GateResult:
    is_lesion: bool
    distance: float
    threshold: float


class LesionGate(SquareImageModel):
    """A small pool of LiteRT interpreters (one is not thread-safe) over the gate model."""

    error = GateError
    kind = "gate"
    default_file_name = "lesion_gate.tflite"
    read_info = staticmethod(read_gate_info)

    def adopt(self, info: GateInfo) -> None:
        self.threshold: float = info.threshold

    def distance(self, pixels: np.ndarray) -> float:
        """Outlier score for one image_size x image_size x 3 uint8 image."""
        return float(self._pool.run(pixels[np.newaxis])[0])

    def check(self, image: Image.Image) -> GateResult:
        """Verdict for an RGB, upright image, stretched to the gate's input size (bilinear)."""
        distance = self.distance(resize_to_input(image, self.image_size, self.image_size))
        return GateResult(distance <= self.threshold, distance, self.threshold)
