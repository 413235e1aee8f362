"""Keras -> TFLite conversion, one function per quantization variant.

Variants:
- float32: the reference, bit-for-bit the Keras graph.
- float16: weights stored as float16 (half the size; GPU delegates run it natively).
- dynamic: int8 weights, float activations (no calibration data needed).
- int8: full-integer, uint8 input (raw pixels) and uint8 output; the phone default.
- int8_io: full-integer with int8 input (pixel - 128) and int8 output, for NPUs that want int8.
- int8_mixed: int8, except the `float_ops` operators whose int8 outputs stray furthest from
  float on representative images (TFLite's QuantizationDebugger, root mean square error over the
  quantization step), which stay float. Input and output are uint8, or float32 when the operator
  next to them is one kept in float. For networks that lose too much in plain int8: bigger and
  slower than int8, smaller and faster than float32. With `float_ops_split="network"`, an
  ensemble's float operators are shared out evenly among its member networks instead of going
  to whichever members int8 damages most.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from contract.commands import CommandError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

VARIANTS = ("float32", "float16", "dynamic", "int8", "int8_io", "int8_mixed")
# The shipped variant; plain int8 lost more than a point on the shipped networks (README).
DEFAULT_VARIANTS = ("int8_mixed",)
FLOAT_OPS_SPLITS = ("file", "network")
# train.ensemble names its members member0, member1, ...; their tensors carry the name.
_MEMBER = re.compile(r"(?:^|/)(member\d+)(?:_\d+)?/")


class QuantizationError(CommandError, ValueError):
    """A quantization setting this network cannot take; the message says which to change."""


@dataclass(frozen=True)
class QuantizationConfig:
    variant: str
    # Representative images (uint8, N x H x W x 3) for the full-integer variants.
    representative: np.ndarray | None = None
    # int8_mixed: operators kept in float (20 kept the ensemble within 1 point on val; 10 did not)
    float_ops: int = 20
    float_ops_split: str = "file"  # "network": an equal share of float_ops per ensemble member
    debug_images: int = 100  # representative images the debugger compares float and int8 on

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose from {VARIANTS}")
        if self.full_integer and (self.representative is None or not len(self.representative)):
            raise ValueError(f"variant {self.variant} needs representative images")
        if self.float_ops < 1 or self.debug_images < 1:
            raise ValueError("float_ops and debug_images must be at least 1")
        if self.float_ops_split not in FLOAT_OPS_SPLITS:
            raise ValueError(
                f"unknown float_ops_split {self.float_ops_split!r}; choose from {FLOAT_OPS_SPLITS}"
            )

    @property
    def full_integer(self) -> bool:
        return self.variant in ("int8", "int8_io", "int8_mixed")


def convert(model, config: QuantizationConfig) -> bytes:
    """The .tflite flatbuffer for one variant (without metadata)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if config.variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if config.variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if config.full_integer:
        converter.representative_dataset = _feed(config.representative)
        if config.variant == "int8_mixed":
            return _int8_with_float_fallback(converter, config)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.uint8 if config.variant == "int8" else tf.int8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()


def _feed(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def dataset() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]

    return dataset


def _int8_with_float_fallback(converter, config: QuantizationConfig) -> bytes:
    """Calibrate once, rank operators by int8 error, re-quantize with the worst left in float."""
    # The public debugger ranks the operators, but its fully quantized model has int8 input and
    # output, which MediaPipe refuses; so quantize with float ends and retype them to uint8 the
    # way the converter does for int8 (a float operator at an end keeps that end float32).
    from tensorflow.lite.python.convert import mlir_quantize
    from tensorflow.lite.python.util import modify_model_io_type

    step = max(1, len(config.representative) // config.debug_images)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_feed(config.representative[::step])
    )
    debugger.run()
    quantized = mlir_quantize(  # float I/O around int8, as the converter does before retyping
        debugger.calibrated_model,
        denylisted_nodes=most_damaged_ops(
            debugger, config.float_ops, per_network=config.float_ops_split == "network"
        ),
    )
    return modify_model_io_type(quantized, tf.uint8, tf.uint8)


def most_damaged_ops(debugger, count: int, per_network: bool = False) -> list[str]:
    """Output tensor names of the `count` operators with the largest RMSE / quantization step."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    return pick_damaged(list(csv.DictReader(io.StringIO(dump.getvalue()))), count, per_network)


def pick_damaged(rows: list[dict[str, str]], count: int, per_network: bool) -> list[str]:
    """The worst `count` of the debugger's rows; per network, each member's worst share first.

    Why the share: in a four-network file the 20 worst operators of the whole file can all sit in
    one or two members, leaving the others fully int8. Refused when `count` covers every
    operator: nothing would quantize the uint8 input (the converter says only "Model input is
    not dequantized").
    """
    if count >= len(rows):
        raise QuantizationError(
            f"int8_mixed: {count} float operators would keep all {len(rows)} of this network's "
            "operators in float, leaving none to quantize its uint8 input; choose fewer "
            "(--float-ops) or the float32 variant"
        )
    ranked = sorted(
        rows, key=lambda r: -(float(r["mean_squared_error"]) ** 0.5) / float(r["scale"])
    )
    names = [r["tensor_name"] for r in ranked]
    if not per_network:
        return names[:count]
    members: dict[str, list[str]] = {}
    for name in names:
        if member := _MEMBER.search(name):
            members.setdefault(member.group(1), []).append(name)
    if len(members) < 2:
        return names[:count]
    share = count // len(members)
    chosen = [name for worst in members.values() for name in worst[:share]]
    rest = [name for name in names if name not in chosen]  # the remainder by the file's ranking
    return chosen + rest[: count - len(chosen)]
