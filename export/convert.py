"""Keras -> TFLite conversion, one function per quantization variant.

Variants:
- float32: the reference, bit-for-bit the Keras graph.
- float16: weights stored as float16 (half the size; GPU delegates run it natively).
- dynamic: int8 weights, float activations (no calibration data needed).
- int8: full-integer, uint8 input (raw pixels) and uint8 output; the phone default.
- int8_io: full-integer with int8 input (pixel - 128) and int8 output, for NPUs that want int8.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

VARIANTS = ("float32", "float16", "dynamic", "int8", "int8_io")
DEFAULT_VARIANTS = ("int8", "float32")


@dataclass(frozen=True)
class QuantizationConfig:
    variant: str
    # Calibration images (uint8, N x H x W x 3) for the full-integer variants.
    representative: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose from {VARIANTS}")
        if self.needs_calibration and (self.representative is None or not len(self.representative)):
            raise ValueError(f"variant {self.variant} needs representative images")

    @property
    def needs_calibration(self) -> bool:
        return self.variant in ("int8", "int8_io")


def convert(model, config: QuantizationConfig) -> bytes:
    """The .tflite flatbuffer for one variant (without metadata)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if config.variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if config.variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if config.needs_calibration:
        images = config.representative

        def representative_dataset() -> Iterator[list[np.ndarray]]:
            for image in images:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.uint8 if config.variant == "int8" else tf.int8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()
