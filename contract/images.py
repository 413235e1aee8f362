"""From an image file to the model's input pixels: the one decoding every stage uses.

Training, evaluation, export (its representative images, verification), the lesion gate and the
demo server all call `model_input`, so a photo gives the same input tensor wherever it is
classified:

1. EXIF orientation is applied (phones store portrait photos sideways plus a rotation tag);
2. every Pillow mode becomes 8-bit RGB: alpha is composited on white (a transparent background
   reads as paper, not as black skin), palette images go through their palette (and its
   transparency), 16- and 32-bit integer images are scaled from 0-65535 to 0-255 when they use
   that range, float images from 0-1, greyscale and CMYK by Pillow's conversion;
3. the whole image is stretched to the model's height x width with bilinear resampling.

Pillow only: a phone app implements the same three steps, and the model card says so.

Every decode has a `DecodeBudget`, so that a hostile file costs bounded time and memory in
training as in the server: the header is read first and a file whose decoding would cost more
than the budget (a JPEG with too many scans over its pixels, a decoded size over the memory
limit) is refused before any pixel is decoded. An image far larger than the caller needs
(`DecodeBudget.need`) is decoded smaller: JPEG by DCT scaling (draft mode), other formats by
averaging whole pixel blocks in their own mode, before any conversion. Both keep at least
`HEADROOM` times the needed side, so the final bilinear stretch changes by a rounding step at
most (docs/hostile_clients.md); images within that are decoded exactly as before.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE_RULE = "EXIF orientation applied, whole image stretched to height x width, bilinear"

_INTEGER_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_ONE_BYTE_MODES = ("1", "L", "P")
# Decoded files smaller than this many times the needed side are decoded whole (and exactly as
# before budgets existed); larger ones are reduced to no less than this many times it.
HEADROOM = 4
# Rows converted at a time from 16/32-bit and float images: the temporaries stay small.
_ROWS = 256
# Every 16-bit value to 8 bits: round(v / 257), and v clipped (images within 0-255).
_BY_257 = ((np.arange(65536) + 128) // 257).astype(np.uint8)
_CLIPPED = np.minimum(np.arange(65536), 255).astype(np.uint8)
# A JPEG marker after entropy-coded data: 0xFF not followed by a stuffed 0x00 or a restart.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")
# Bytes a decoder holds per pixel besides the image it returns (libwebp's canvas and the frame
# it hands to Pillow; libheif's planes).
_DECODER_BYTES_PER_PIXEL = {"WEBP": 8, "HEIF": 6}
# What `to_rgb` and the upright copy may hold per pixel at once (the worst case: alpha
# composited on white), and the full-size 8-bit copy a reduction of these modes starts from.
_CONVERSION_BYTES_PER_PIXEL = 16
_REDUCE_CONVERSION_BYTES = {"I;16": 1, "P": 4, "1": 1}

ImageSource = str | PathLike | bytes


@dataclass(frozen=True)
class DecodeBudget:
    """What decoding one file may cost; anything more is refused with `OverBudget`.

    `max_pixels`: the image's area from its header (None: Pillow's decompression-bomb limit).
    `max_bytes`: the memory its decoding is estimated to take (`decode_cost`).
    `max_scan_pixels`: a JPEG's scans times its pixels. Each scan of a progressive JPEG walks
    every coefficient again, so a small file can repeat scans for seconds or minutes of CPU;
    ordinary progressive JPEGs have 6 to 12 scans. `need`: the largest side the caller resizes
    to (0: the full image is wanted, no reduction).
    """

    max_pixels: int | None = None
    max_bytes: int = 1024 * 2**20
    max_scan_pixels: int = 1_000_000_000
    need: int = 0


class ImageError(ValueError):
    """An image that cannot be used, with a reason a person can act on."""


class UnsupportedImage(ImageError):
    """Not an image, or not in one of the accepted formats."""


class TooManyPixels(ImageError):
    """More pixels than the caller accepts (or a decompression bomb)."""

    def __init__(self, limit: int, width: int = 0, height: int = 0) -> None:
        size = f" ({width}x{height} = {width * height:,} pixels)" if width else ""
        super().__init__(f"The image is too large{size}; the limit is {limit:,} pixels.")
        self.limit = limit


class OverBudget(ImageError):
    """Decoding would cost more time or memory than the budget allows."""


class CorruptImage(ImageError):
    """The header parsed but the pixel data is truncated or damaged."""

    def __init__(self) -> None:
        super().__init__("The image could not be decoded: the file is truncated or damaged.")


@dataclass
class OpenedImage:
    """A file whose header is read and within budget; no pixel decoded yet (`decode` does).

    `cost_bytes` is the estimated memory its decoding takes, for callers that ration it;
    `size` the file's own width and height, before any reduction or rotation.
    """

    image: Image.Image
    format: str
    mode: str
    cost_bytes: int
    budget: DecodeBudget
    size: tuple[int, int]


def open_image(
    source: ImageSource, formats: tuple[str, ...] | None = None, budget: DecodeBudget | None = None
) -> OpenedImage:
    """Read a file's header (path or bytes) and check it against the budget.

    `formats` limits the decoders Pillow may try (untrusted uploads). Raises an `ImageError`
    subclass (FileNotFoundError for a missing path).
    """
    budget = budget or DecodeBudget()
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not data:
        raise UnsupportedImage("The file is empty.")
    limit = budget.max_pixels or Image.MAX_IMAGE_PIXELS or 0
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise UnsupportedImage("The file is not an image in a supported format.") from None
    except Image.DecompressionBombError:
        raise TooManyPixels(limit) from None
    except Exception:  # noqa: BLE001 - any failure to parse an untrusted header is the file's fault
        raise CorruptImage() from None
    width, height = image.size
    if budget.max_pixels is not None and width * height > budget.max_pixels:
        raise TooManyPixels(budget.max_pixels, width, height)
    if width == 0 or height == 0:
        raise CorruptImage()
    mode, format_name = image.mode, str(image.format)
    scans = jpeg_scans(data) if format_name in ("JPEG", "MPO") else 1
    if scans * width * height > budget.max_scan_pixels:
        raise OverBudget(
            f"The JPEG repeats {scans} scans over {width}x{height} pixels, more decoding work "
            f"than the limit of {budget.max_scan_pixels:,} scan-pixels; save it again as an "
            "ordinary (baseline) JPEG."
        )
    try:
        _draft(image, format_name, budget.need)
    except Exception:  # noqa: BLE001 - a header the decoder cannot scale is the file's fault
        raise CorruptImage() from None
    cost = decode_cost(image, format_name, scans, (width, height), budget.need)
    if cost > budget.max_bytes:
        raise OverBudget(
            f"Decoding this {width}x{height} {format_name} would take about {cost / 2**20:,.0f} "
            f"MB, over the limit of {budget.max_bytes / 2**20:,.0f} MB; send a smaller image."
        )
    return OpenedImage(image, format_name, mode, cost, budget, (width, height))


def decode(opened: OpenedImage) -> Image.Image:
    """The pixels of an opened file as an upright 8-bit RGB image (reduced when far larger than
    the budget's `need`). Raises `CorruptImage` or `TooManyPixels`."""
    image = opened.image
    limit = opened.budget.max_pixels or Image.MAX_IMAGE_PIXELS or 0
    try:
        image.load()  # a truncated file fails here, not later
        reduced = _reduce(image, opened.budget.need)
        if reduced is image:  # the image as decoded: exif_transpose copies it, as it always did
            return to_rgb(ImageOps.exif_transpose(image))
        ImageOps.exif_transpose(reduced, in_place=True)
        return to_rgb(reduced)
    except Image.DecompressionBombError:
        raise TooManyPixels(limit) from None
    except Exception:  # noqa: BLE001 - truncated or malformed pixel data, from any decoder
        raise CorruptImage() from None
    finally:
        image.close()


def upright_size(opened: OpenedImage, decoded: Image.Image) -> tuple[int, int]:
    """The file's full width and height as `decoded` (its upright, maybe reduced, pixels) is
    turned: what a client that sent it measures its own photo in."""
    width, height = opened.size
    turned = (decoded.width >= decoded.height) != (width >= height)
    return (height, width) if turned else (width, height)


def open_upright_rgb(
    source: ImageSource,
    formats: tuple[str, ...] | None = None,
    budget: DecodeBudget | None = None,
) -> tuple[Image.Image, str, str]:
    """Decode a file (path or bytes) to an upright RGB image; also its format and original mode.

    `formats` limits the decoders Pillow may try (untrusted uploads); `budget` refuses files
    that would cost too much before their pixels are decoded. Raises an `ImageError` subclass.
    """
    opened = open_image(source, formats, budget)
    return decode(opened), opened.format, opened.mode


def jpeg_scans(data: bytes) -> int:
    """The number of scans (SOS segments) in a JPEG file's first image, read from its markers.

    Entropy-coded data is skipped with one regular-expression search per scan, so a file of
    any content costs time linear in its size, in C.
    """
    scans, position, end = 0, 2, len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            break  # not a marker: damaged; the decoder reports it
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            scans += 1
            found = _JPEG_MARKER.search(data, position)
            position = found.start() if found else end
    return scans


def decode_cost(
    image: Image.Image, format_name: str, scans: int, full_size: tuple[int, int], need: int = 0
) -> int:
    """Estimated bytes to decode an opened image (after `_draft`) and convert it to RGB.

    The image Pillow decodes into (its size after DCT scaling), what the decoder holds beside
    it (a JPEG of several scans keeps every DCT coefficient of the full-size image, 2 bytes
    each, per component), the 8-bit copy a reduction starts from, and the conversions to
    upright RGB of what is left after reduction.
    """
    width, height = image.size
    pixels = width * height
    mode = image.mode
    per_pixel = _bytes_per_pixel(mode) + _DECODER_BYTES_PER_PIXEL.get(format_name, 0)
    cost = pixels * per_pixel
    if format_name in ("JPEG", "MPO") and scans > 1:
        cost += int(2 * full_size[0] * full_size[1] * _jpeg_samples_per_pixel(image))
    factor = _factor(image.size, need)
    if factor > 1:
        cost += pixels * _REDUCE_CONVERSION_BYTES.get(mode[:4], 0)
    return cost + _CONVERSION_BYTES_PER_PIXEL * (width // factor) * (height // factor)


def _jpeg_samples_per_pixel(image: Image.Image) -> float:
    """DCT coefficients per pixel of a JPEG: its components' sampling (1.5 for 4:2:0 colour)."""
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * len(image.getbands())
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    return sum(layer[1] * layer[2] for layer in layers) / (h_max * v_max)


def _bytes_per_pixel(mode: str) -> int:
    """Pillow's storage: one byte for 1/L/P, two for 16-bit integers, four for the rest."""
    if mode in _ONE_BYTE_MODES:
        return 1
    return 2 if mode.startswith("I;16") else 4


def _factor(size: tuple[int, int], need: int) -> int:
    """The integer reduction, the same on both axes (the aspect ratio is kept for the
    segmenter's square crop), that keeps at least HEADROOM x need on the shorter side."""
    return max(1, min(size) // (HEADROOM * need)) if need > 0 else 1


def _draft(image: Image.Image, format_name: str, need: int) -> None:
    """Ask the JPEG decoder for a 1/2, 1/4 or 1/8 scale when that still leaves HEADROOM x need
    on both sides (Pillow picks the largest such scale)."""
    if format_name in ("JPEG", "MPO") and _factor(image.size, need) >= 2:
        image.draft(None, (HEADROOM * need, HEADROOM * need))


def _reduce(image: Image.Image, need: int) -> Image.Image:
    """The image averaged over whole pixel blocks when it is still far larger than needed (in
    its own mode: before any conversion); the same image otherwise."""
    factor = _factor(image.size, need)
    if factor == 1:
        return image
    if image.mode.startswith("I;16"):  # reduce has no 16-bit mode: 8 bits first, in row blocks
        image = _eight_bit(image)
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB (the rules are in the module docstring)."""
    if image.mode == "RGB":
        return image
    if image.mode in _INTEGER_MODES or image.mode == "F":
        return _eight_bit(image).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float image as 8-bit "L" by the module docstring's rules, _ROWS
    rows at a time (no wider full-size copy): integers round(v / 257) when the maximum exceeds
    255, else v, clipped (v / 257 never ends in exactly .5, so integer arithmetic and the
    16-bit tables round alike); floats x 255 when nothing exceeds 1, truncated, clipped, NaN 0.
    """
    gray = np.empty((image.height, image.width), dtype=np.uint8)
    if image.mode == "F":
        peak = max(np.nan_to_num(b.astype(np.float64)).max() for _, b in _row_blocks(image))
        scale = 255.0 if peak <= 1.0 else 1.0
        for top, block in _row_blocks(image):
            values = np.nan_to_num(block.astype(np.float64)) * scale
            gray[top : top + len(block)] = np.clip(values, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L")
    divisor = 257 if max(int(block.max()) for _, block in _row_blocks(image)) > 255 else 1
    table = _BY_257 if divisor == 257 else _CLIPPED
    for top, block in _row_blocks(image):
        if block.dtype.kind == "u" and block.dtype.itemsize == 2:
            gray[top : top + len(block)] = table[block]
        else:
            values = (block.astype(np.int64) + divisor // 2) // divisor
            gray[top : top + len(block)] = np.clip(values, 0, 255)
    return Image.fromarray(gray, "L")


def _row_blocks(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, pixels) of each block of _ROWS rows, copied out one at a time."""
    for top in range(0, image.height, _ROWS):
        box = (0, top, image.width, min(top + _ROWS, image.height))
        yield top, np.asarray(image.crop(box))


def resize_to_input(image: Image.Image, height: int, width: int) -> np.ndarray:
    """An RGB image stretched to height x width (bilinear), as uint8 (height, width, 3)."""
    return np.asarray(to_rgb(image).resize((width, height), Image.BILINEAR), dtype=np.uint8)


def model_input(
    source: ImageSource, height: int, width: int | None = None, budget: DecodeBudget | None = None
) -> np.ndarray:
    """A file (path or bytes) as the model's uint8 (height, width, 3) input pixels; decoded no
    larger than HEADROOM times the input needs (`budget.need` is set from the input size)."""
    width = width or height
    budget = budget or DecodeBudget(need=max(height, width))
    image, _, _ = open_upright_rgb(source, budget=budget)
    return resize_to_input(image, height, width)
