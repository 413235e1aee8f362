"""The "not a skin-lesion photo" gate as the server runs it: one .tflite, one number, one threshold.

The file is the whole contract: the model outputs one outlier score (the largest, over several
feature layers, of the squared Mahalanobis distance from lesion photos divided by that layer's
own limit), and `lesion_gate.json` (a zip member appended after the flatbuffer) holds the threshold
and input size. No TensorFlow and nothing from train/ or export/ is imported here.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from demo_server.litert import (
    InterpreterPool,
    dequantize_output,
    quantize_input,
    read_model_file,
)

GATE_JSON = "lesion_gate.json"


class GateError(Exception):
    """The gate file cannot be used (unreadable, not a TFLite model, or its JSON is missing)."""


@dataclass(frozen=True)
class GateResult:
    is_lesion: bool
    distance: float
    threshold: float


def _read_json(model: bytes) -> dict:
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            info = json.loads(archive.read(GATE_JSON))
        return {"threshold": float(info["threshold"]), "image_size": int(info["image_size"])}
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as error:
        raise GateError(f"the gate has no usable {GATE_JSON}: {error}") from None


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
        info = _read_json(model)
        self.threshold: float = info["threshold"]
        self.image_size: int = info["image_size"]
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
        model = read_model_file(path, GateError, "gate")
        return cls(model, file_name=Path(path).name, **kwargs)

    def distance(self, pixels: np.ndarray) -> float:
        """Outlier score for one image_size x image_size x 3 uint8 image."""
        raw = self._pool.run(quantize_input(pixels[np.newaxis], self._pool.input))
        return float(dequantize_output(raw.reshape(-1)[:1], self._pool.output)[0])

    def check(self, image: Image.Image) -> GateResult:
        """Verdict for an RGB, upright image, stretched to the gate's input size (bilinear)."""
        size = (self.image_size, self.image_size)
        pixels = np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.uint8)
        distance = self.distance(pixels)
        return GateResult(distance <= self.threshold, distance, self.threshold)
