"""demo_server.images: formats, EXIF orientation and colour-mode conversion of uploads.

contract.images.to_rgb, which every mode goes through, is tested in tests/contract/.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from demo_server.errors import ApiError
from demo_server.images import decode_upload

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def decode(data: bytes):
    return decode_upload(data, LIMIT)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_supported_formats_decode_to_rgb(fmt):
    image = Image.new("RGB", (40, 30), (200, 100, 50))
    decoded = decode(encode(image, fmt, quality=95))
    assert decoded.image.mode == "RGB" and decoded.image.size == (40, 30)
    assert decoded.format == fmt
    r, g, b = decoded.image.getpixel((20, 15))
    assert abs(r - 200) < 12 and abs(g - 100) < 12 and abs(b - 50) < 12


@pytest.mark.parametrize(
    ("orientation", "size"),
    [(1, (60, 20)), (3, (60, 20)), (6, (20, 60)), (8, (20, 60))],
)
def test_exif_orientation_is_honoured(orientation, size):
    # Left third red, the rest blue; after rotating, red must land where EXIF says.
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode(encode(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    assert decoded.image.size == size
    red_corner = {1: (2, 10), 3: (57, 10), 6: (10, 2), 8: (10, 57)}[orientation]
    r, _, b = decoded.image.getpixel(red_corner)
    assert r > 200 and b < 60


def test_grayscale_and_bilevel():
    gray = decode(encode(Image.new("L", (8, 8), 77), "PNG")).image
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (77, 77, 77)
    bilevel = decode(encode(Image.new("1", (8, 8), 1), "PNG")).image
    assert bilevel.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg():
    decoded = decode(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95))
    assert decoded.original_mode == "CMYK"
    r, g, b = decoded.image.getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_palette_with_and_without_transparency():
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert decode(encode(palette, "PNG")).image.getpixel((0, 0)) == (10, 200, 30)
    palette.info["transparency"] = 1
    assert decode(encode(palette, "PNG", transparency=1)).image.getpixel((0, 0)) == (
        255,
        255,
        255,
    )


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (200, 0, 0, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    image = decode(encode(rgba, "PNG")).image
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((1, 0)) == (200, 0, 0)
    assert image.getpixel((2, 0))[0] in range(125, 130)
    la = decode(encode(Image.new("LA", (2, 2), (0, 0)), "PNG")).image
    assert la.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grayscale_png_is_scaled_to_eight_bits():
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    decoded = decode(encode(image, "PNG"))
    assert decoded.original_mode in ("I", "I;16")
    assert [decoded.image.getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]


def test_first_frame_of_animated_webp():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert decode(data).image.getpixel((5, 5)) == (255, 0, 0)


def test_pixel_limit_counts_the_header_size():
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    with pytest.raises(ApiError) as excinfo:
        decode_upload(data, 59_999)
    assert excinfo.value.status == 413 and excinfo.value.code == "too_many_pixels"
    assert decode_upload(data, 60_000).image.size == (300, 200)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"GIF89a" + b"\0" * 40, 415),
        (encode(Image.new("RGB", (50, 50)), "PNG")[:60], 422),
    ],
)
def test_bad_input_raises_api_error(data, status):
    with pytest.raises(ApiError) as excinfo:
        decode(data)
    assert excinfo.value.status == status
