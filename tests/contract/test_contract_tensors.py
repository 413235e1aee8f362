"""contract.tensors: raw pixels to the input tensor, the output tensor to probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from contract.tensors import TensorSpec, dequantize_output, quantize_input


def spec(dtype, scale=0.0, zero_point=0) -> TensorSpec:
    return TensorSpec((1, 4, 4, 3), np.dtype(dtype), scale, zero_point)


def test_quantize_input_follows_dtype_and_quantization():
    pixels = np.array([0, 1, 128, 255], dtype=np.uint8)
    assert quantize_input(pixels, spec(np.float32)).tolist() == [0.0, 1.0, 128.0, 255.0]
    assert quantize_input(pixels, spec(np.uint8, 1.0, 0)).tolist() == [0, 1, 128, 255]
    assert quantize_input(pixels, spec(np.int8, 1.0, -128)).tolist() == [-128, -127, 0, 127]
    assert quantize_input(pixels, spec(np.int8)).tolist() == [-128, -127, 0, 127]
    assert quantize_input(pixels, spec(np.uint8, 0.99999678, 0)).tolist() == [0, 1, 128, 255]
    assert quantize_input(pixels, spec(np.uint8, 2.0, 10)).tolist() == [10, 10, 74, 138]


def test_dequantize_output():
    assert dequantize_output(np.array([0, 128, 255], np.uint8), spec(np.uint8, 1 / 256, 0)) == (
        pytest.approx([0.0, 0.5, 255 / 256])
    )
    assert dequantize_output(np.array([-128, 0], np.int8), spec(np.int8, 1 / 256, -128)) == (
        pytest.approx([0.0, 0.5])
    )
    assert dequantize_output(np.array([0.25], np.float32), spec(np.float32)) == [0.25]
