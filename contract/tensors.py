"""Feeding a model's input tensor and reading its output, whatever their dtypes.

A .tflite takes float32, uint8 or int8 pixels and gives float32, uint8 or int8 probabilities;
the tensors' own (scale, zero point) say how to convert. `invoke` is the one function that runs
an interpreter on pixels: the demo server, export verification and evaluation all call it, so
they cannot feed a model differently. It duck-types LiteRT's `Interpreter` (set_tensor, invoke,
get_tensor, get_input_details, get_output_details) and imports no runtime itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Interpreter(Protocol):
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def set_tensor(self, index: int, value: np.ndarray) -> None: ...
    def invoke(self) -> None: ...
    def get_tensor(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and (scale, zero point) of one model input or output."""

    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> TensorSpec:
        """From an interpreter's `get_input_details()` / `get_output_details()` entry."""
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return cls(
            shape=tuple(int(d) for d in detail["shape"]),
            dtype=np.dtype(detail["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype.name,
            "quantization": {"scale": self.scale, "zero_point": self.zero_point},
        }


def quantize_input(pixels: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Raw 0-255 RGB pixels (uint8) to the input tensor's dtype, honouring its quantization."""
    if spec.dtype.kind == "f":
        return pixels.astype(spec.dtype)
    return _input_table(spec)[pixels]


def _input_table(spec: TensorSpec) -> np.ndarray:
    """The quantized value of each pixel value 0-255 (a lookup is faster than the arithmetic)."""
    scale, zero_point = spec.scale, spec.zero_point
    if scale == 0.0:  # unquantized integer input: uint8 is raw pixels, int8 is pixel - 128
        scale, zero_point = 1.0, (-128 if spec.dtype == np.int8 else 0)
    info = np.iinfo(spec.dtype)
    values = np.round(np.arange(256, dtype=np.float64) / scale + zero_point)
    return np.clip(values, info.min, info.max).astype(spec.dtype)


def dequantize_output(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Output tensor to float64 (integer softmax outputs without parameters step in 1/256)."""
    if spec.dtype.kind == "f":
        return values.astype(np.float64)
    scale, zero_point = spec.scale, spec.zero_point
    if scale == 0.0:
        scale, zero_point = 1.0 / 256.0, (-128 if spec.dtype == np.int8 else 0)
    return (values.astype(np.float64) - zero_point) * scale


def invoke(interpreter: Interpreter, pixels: np.ndarray) -> np.ndarray:
    """Run an allocated interpreter on a batch of uint8 images (N, H, W, 3): float64 (N, outputs).

    N must match the interpreter's (possibly resized) input batch.
    """
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], quantize_input(pixels, TensorSpec.from_detail(inp)))
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"])
    return dequantize_output(raw, TensorSpec.from_detail(out)).reshape(len(pixels), -1)
