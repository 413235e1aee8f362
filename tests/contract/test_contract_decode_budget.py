"""contract.images' decode budget: hostile files are refused before their pixels are decoded,
images far larger than needed are decoded smaller, and ordinary ones exactly as before."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from contract.images import (
    HEADROOM,
    DecodeBudget,
    OverBudget,
    TooManyPixels,
    jpeg_scans,
    model_input,
    open_image,
    open_upright_rgb,
    resize_to_input,
    to_rgb,
)
from demo_server.attack import deep_png, lossless_webp, progressive_jpeg_bomb


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth noise, like a photo: upsampled random blocks."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR)


# --- counting JPEG scans ----------------------------------------------------------------------


def test_jpeg_scans_counts_every_scan_of_the_first_image():
    image = photo(64, 48)
    assert jpeg_scans(encode(image, "JPEG")) == 1
    progressive = encode(image, "JPEG", progressive=True)
    assert 6 <= jpeg_scans(progressive) <= 12
    bomb = progressive_jpeg_bomb(side=64, repeats=50)
    assert (
        jpeg_scans(bomb)
        == jpeg_scans(encode(Image.new("RGB", (64, 64)), "JPEG", progressive=True)) + 50
    )


def test_jpeg_scans_skips_segments_and_stops_at_the_end_of_the_image():
    baseline = encode(photo(64, 48), "JPEG")
    # A comment segment holding a scan marker, and a second image after the end: neither counts.
    comment = b"\xff\xfe" + (len(b"\xff\xda" * 10) + 2).to_bytes(2, "big") + b"\xff\xda" * 10
    crafted = baseline[:2] + comment + baseline[2:] + baseline
    assert jpeg_scans(crafted) == 1
    assert jpeg_scans(b"\xff\xd8\x00garbage") == 0


# --- refusals before decoding ---------------------------------------------------------------------


def test_a_jpeg_repeating_scans_is_refused_before_decoding():
    bomb = progressive_jpeg_bomb(side=1000, repeats=1100)  # 1,110 scans x 1 MP
    with pytest.raises(OverBudget, match="1110 scans over 1000x1000") as refused:
        open_image(bomb)
    assert "limit of 1,000,000,000" in str(refused.value)
    # Training's decoder (model_input) refuses it too.
    with pytest.raises(OverBudget):
        model_input(bomb, 32)
    # Within the budget it decodes.
    assert open_upright_rgb(bomb, budget=DecodeBudget(max_scan_pixels=2 * 10**9))[0].size == (
        1000,
        1000,
    )


def test_a_file_whose_decoding_needs_too_much_memory_is_refused():
    webp = lossless_webp(side=2000)  # 4 MP: about 12 bytes a pixel while libwebp decodes it
    opened = open_image(webp)
    assert opened.cost_bytes > 4_000_000 * 12
    with pytest.raises(OverBudget, match=r"2000x2000 WEBP would take about \d+ MB"):
        open_image(webp, budget=DecodeBudget(max_bytes=opened.cost_bytes - 1))


def test_the_pixel_cap_still_comes_first():
    with pytest.raises(TooManyPixels, match="3000x3000"):
        open_image(deep_png(side=3000), budget=DecodeBudget(max_pixels=1_000_000))


# --- decoding no more than needed ---------------------------------------------------------------


def test_a_jpeg_far_larger_than_needed_is_decoded_by_dct_scaling():
    data = encode(photo(3600, 2400), "JPEG", quality=90)
    need = 100
    image, fmt, mode = open_upright_rgb(data, budget=DecodeBudget(need=need))
    assert (fmt, mode) == ("JPEG", "RGB")
    # Reduced, but never below HEADROOM x need on a side.
    assert min(image.size) >= HEADROOM * need and image.size[0] < 3600
    full, _, _ = open_upright_rgb(data)
    assert full.size == (3600, 2400)
    reduced_pixels = resize_to_input(image, need, need).astype(int)
    full_pixels = resize_to_input(full, need, need).astype(int)
    difference = np.abs(reduced_pixels - full_pixels)
    assert difference.mean() < 1.0 and difference.max() <= 8


def test_images_within_headroom_decode_exactly_as_without_a_budget():
    for data in (
        encode(photo(700, 500), "JPEG", quality=90),
        encode(photo(700, 500), "PNG"),
        encode(photo(700, 500).convert("RGBA"), "WEBP", lossless=True),
    ):
        plain = np.asarray(open_upright_rgb(data)[0])
        budgeted = np.asarray(open_upright_rgb(data, budget=DecodeBudget(need=100))[0])
        np.testing.assert_array_equal(plain, budgeted)


def test_a_deep_png_is_reduced_in_eight_bits_before_any_conversion():
    need = 64
    image, fmt, mode = open_upright_rgb(deep_png(side=3000), budget=DecodeBudget(need=need))
    assert (fmt, mode) == ("PNG", "I;16")
    assert image.mode == "RGB" and min(image.size) >= HEADROOM * need and image.size[0] < 3000
    assert image.getpixel((5, 5)) == (4, 4, 4)  # round(1000 / 257)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_orientation_survives_reduction(fmt):
    # Left third red, the rest blue, rotated 90 degrees by EXIF (orientation 6).
    pixels = np.zeros((1200, 3600, 3), dtype=np.uint8)
    pixels[:, :1200] = (255, 0, 0)
    pixels[:, 1200:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(pixels), fmt, exif=exif)
    image, _, _ = open_upright_rgb(data, budget=DecodeBudget(need=100))
    width, height = image.size
    assert height > width and height < 3600  # upright, and reduced
    red, _, blue = image.getpixel((width // 2, 5))
    assert red > 200 and blue < 60
    red, _, blue = image.getpixel((width // 2, height - 5))
    assert red < 60 and blue > 200


def test_sixteen_bit_conversion_matches_the_float_formula_for_every_value():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    image = Image.frombytes("I;16", (256, 256), values.tobytes())
    expected = np.round(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(to_rgb(image))[..., 0], expected)
