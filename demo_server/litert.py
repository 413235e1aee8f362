"""LiteRT plumbing shared by the classifier and the lesion gate: a pool of interpreters (one is
not thread-safe) and the pixel/output (de)quantization that the tensors' own parameters dictate.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class PoolBusy(Exception):
    """Every interpreter stayed busy for longer than the pool's timeout."""


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
    """Raw 0-255 RGB pixels to the input tensor's dtype, honouring its quantization."""
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
    """Output tensor to float (integer softmax outputs without parameters step in 1/256)."""
    if spec.dtype.kind == "f":
        return values.astype(np.float64)
    scale, zero_point = spec.scale, spec.zero_point
    if scale == 0.0:
        scale, zero_point = 1.0 / 256.0, (-128 if spec.dtype == np.int8 else 0)
    return (values.astype(np.float64) - zero_point) * scale


def read_model_file(path: Path, load_error: type[Exception], what: str) -> bytes:
    """The bytes of a .tflite file, or `load_error` naming `what` could not be read and why."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise load_error(f"cannot read {what} file {path}: {exc.strerror}") from None


class InterpreterPool:
    """`size` interpreters over one model; `lease()` lends one to a single thread at a time."""

    def __init__(
        self,
        model_bytes: bytes,
        size: int,
        timeout_s: float | None,
        load_error: type[Exception],
        threads: int = 1,
    ) -> None:
        """`load_error` is raised, with LiteRT's reason, when the model cannot be loaded."""
        if size < 1:
            raise ValueError("need at least one interpreter")
        self.size = size
        self._timeout_s = timeout_s
        self._pool: queue.Queue[Interpreter] = queue.Queue()
        for _ in range(size):
            try:
                interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise load_error(f"LiteRT cannot load the model: {exc}") from None
            self._pool.put(interpreter)
        self.input = TensorSpec.from_detail(interpreter.get_input_details()[0])
        self.output = TensorSpec.from_detail(interpreter.get_output_details()[0])

    @contextlib.contextmanager
    def lease(self) -> Iterator[Interpreter]:
        try:
            interpreter = self._pool.get(timeout=self._timeout_s)
        except queue.Empty:
            raise PoolBusy() from None
        try:
            yield interpreter
        finally:
            self._pool.put(interpreter)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Invoke one leased interpreter on an already-quantized input; the raw output tensor."""
        with self.lease() as interpreter:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
            interpreter.invoke()
            return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
