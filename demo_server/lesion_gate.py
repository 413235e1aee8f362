"""The "not a skin-lesion photo" gate as the server runs it: one .tflite, one number, one threshold.

The file is the whole contract: the model outputs a squared Mahalanobis distance from lesion
photos, and `lesion_gate.json` (a zip member appended after the flatbuffer) holds the threshold
and input size. No TensorFlow and nothing from train/ or export/ is imported here.
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from demo_server.model import PoolBusy

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
        if interpreters < 1:
            raise ValueError("need at least one interpreter")
        info = _read_json(model)
        self.threshold: float = info["threshold"]
        self.image_size: int = info["image_size"]
        self.pool_size = interpreters
        self.file_name = file_name
        self.file_sha256 = hashlib.sha256(model).hexdigest()
        self.file_size = len(model)
        self._pool_timeout_s = pool_timeout_s
        self._pool: queue.Queue[Interpreter] = queue.Queue()
        for _ in range(interpreters):
            try:
                interpreter = Interpreter(model_content=model, num_threads=threads)
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as error:
                raise GateError(f"LiteRT cannot load the gate: {error}") from None
            self._pool.put(interpreter)
        shape = tuple(interpreter.get_input_details()[0]["shape"])
        if shape != (1, self.image_size, self.image_size, 3):
            raise GateError(f"input shape {shape} does not match image_size {self.image_size}")

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> LesionGate:
        try:
            model = Path(path).read_bytes()
        except OSError as error:
            raise GateError(f"cannot read gate file {path}: {error.strerror}") from None
        return cls(model, file_name=Path(path).name, **kwargs)

    def distance(self, pixels: np.ndarray) -> float:
        """Squared distance for one image_size x image_size x 3 uint8 image."""
        try:
            interpreter = self._pool.get(timeout=self._pool_timeout_s)
        except queue.Empty:
            raise PoolBusy() from None
        try:
            inp = interpreter.get_input_details()[0]
            out = interpreter.get_output_details()[0]
            interpreter.set_tensor(inp["index"], _to_input(pixels[np.newaxis], inp))
            interpreter.invoke()
            raw = interpreter.get_tensor(out["index"]).reshape(-1)[0]
        finally:
            self._pool.put(interpreter)
        return _from_output(raw, out)

    def check(self, image: Image.Image) -> GateResult:
        """Verdict for an RGB, upright image, stretched to the gate's input size (bilinear)."""
        size = (self.image_size, self.image_size)
        pixels = np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.uint8)
        distance = self.distance(pixels)
        return GateResult(distance <= self.threshold, distance, self.threshold)


def _to_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return pixels.astype(dtype)
    scale, zero_point = detail["quantization"]
    if scale == 0.0:  # unquantized integer input: raw pixels (uint8) or pixel - 128 (int8)
        scale, zero_point = 1.0, (-128 if dtype == np.int8 else 0)
    info = np.iinfo(dtype)
    values = np.round(pixels.astype(np.float64) / scale + zero_point)
    return np.clip(values, info.min, info.max).astype(dtype)


def _from_output(raw: np.generic, detail: dict) -> float:
    if np.dtype(detail["dtype"]).kind == "f":
        return float(raw)
    scale, zero_point = detail["quantization"]
    return (float(raw) - zero_point) * scale
