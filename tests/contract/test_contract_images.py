"""contract.images.to_rgb: every integer and float colour mode to 8-bit RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from contract.images import to_rgb


@pytest.mark.parametrize("mode", ["I", "I;16", "I;16B"])
def test_to_rgb_integer_modes(mode):
    dtype = {"I": "<i4", "I;16": "<u2", "I;16B": ">u2"}[mode]
    image = Image.frombytes(mode, (3, 1), np.array([0, 32896, 65535], dtype=dtype).tobytes())
    assert [to_rgb(image).getpixel((x, 0)) for x in range(3)] == [
        (0, 0, 0),
        (128, 128, 128),
        (255, 255, 255),
    ]


def test_to_rgb_eight_bit_range_in_mode_i_is_kept():
    image = Image.fromarray(np.array([[0, 10, 255]], dtype=np.int32), "I")
    assert to_rgb(image).getpixel((1, 0)) == (10, 10, 10)


def test_to_rgb_float_images():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    assert [to_rgb(unit).getpixel((x, 0))[0] for x in range(3)] == [0, 127, 255]
    nan = Image.fromarray(np.array([[np.nan, 300.0]], dtype=np.float32), "F")
    assert [to_rgb(nan).getpixel((x, 0))[0] for x in range(2)] == [0, 255]
