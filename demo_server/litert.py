"""A pool of LiteRT interpreters over one model (one interpreter is not thread-safe).

Feeding and reading the tensors is the contract's `invoke`, the code export verification and
evaluation run too.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from contract.model_file import ModelFileError, read_model_file
from contract.tensors import TensorSpec, invoke


class PoolBusy(Exception):
    """Every interpreter stayed busy for longer than the pool's timeout."""


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

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """One leased interpreter on one uint8 image (1, H, W, 3): its float64 outputs."""
        with self.lease() as interpreter:
            return invoke(interpreter, pixels)[0]


class SquareImageModel:
    """What the lesion gate and the segmenter share: a pool over a model file that takes one
    square RGB image and packs a JSON of its own (read by `read_info`), the file's identity for
    the API, and loading errors raised as the subclass's `error`."""

    error: type[ModelFileError] = ModelFileError
    kind = "model"  # names the file in "cannot read ... file" errors
    default_file_name = "model.tflite"

    @staticmethod
    def read_info(model: bytes) -> Any:
        """The packed JSON's contents, with an `image_size`; ModelFileError if unusable."""
        raise NotImplementedError

    def adopt(self, info: Any) -> None:
        """Keep what the subclass needs from `read_info`'s result."""

    def __init__(
        self,
        model: bytes,
        interpreters: int = 2,
        threads: int = 1,
        pool_timeout_s: float | None = None,
        file_name: str | None = None,
    ) -> None:
        """`pool_timeout_s`: how long a call waits for a free interpreter before PoolBusy."""
        try:
            info = self.read_info(model)
        except ModelFileError as error:
            raise self.error(str(error)) from None
        self.adopt(info)
        self.image_size: int = info.image_size
        self.pool_size = interpreters
        self.file_name = file_name or self.default_file_name
        self.file_sha256 = hashlib.sha256(model).hexdigest()
        self.file_size = len(model)
        self._pool = InterpreterPool(model, interpreters, pool_timeout_s, self.error, threads)
        shape = self._pool.input.shape
        size = self.image_size
        if shape != (1, size, size, 3):
            raise self.error(f"input shape {shape} does not match image_size {size}")

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> Any:
        try:
            model = read_model_file(path, cls.kind)
        except ModelFileError as error:
            raise cls.error(str(error)) from None
        return cls(model, file_name=Path(path).name, **kwargs)
