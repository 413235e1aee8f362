"""From an image file to the model's input pixels: the one decoding every stage uses.

Training, evaluation, export calibration and verification, the lesion gate and the demo server
all call `model_input`, so a photo gives the same input tensor wherever it is classified:

1. EXIF orientation is applied (phones store portrait photos sideways plus a rotation tag);
2. every Pillow mode becomes 8-bit RGB: alpha is composited on white (a transparent background
   reads as paper, not as black skin), palette images go through their palette (and its
   transparency), 16- and 32-bit integer images are scaled from 0-65535 to 0-255 when they use
   that range, float images from 0-1, greyscale and CMYK by Pillow's conversion;
3. the whole image is stretched to the model's height x width with bilinear resampling.

Pillow only: a phone app implements the same three steps, and the model card says so.
"""

from __future__ import annotations

import io
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RESIZE_RULE = "EXIF orientation applied, whole image stretched to height x width, bilinear"

_INTEGER_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

ImageSource = str | PathLike | bytes


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


class CorruptImage(ImageError):
    """The header parsed but the pixel data is truncated or damaged."""

    def __init__(self) -> None:
        super().__init__("The image could not be decoded: the file is truncated or damaged.")


def open_upright_rgb(
    source: ImageSource,
    formats: tuple[str, ...] | None = None,
    max_pixels: int | None = None,
) -> tuple[Image.Image, str, str]:
    """Decode a file (path or bytes) to an upright RGB image; also its format and original mode.

    `formats` limits the decoders Pillow may try (untrusted uploads); `max_pixels` refuses
    larger images before their pixels are decoded. Raises an `ImageError` subclass.
    """
    if isinstance(source, bytes) and not source:
        raise UnsupportedImage("The file is empty.")
    limit = max_pixels or Image.MAX_IMAGE_PIXELS or 0
    stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    try:
        image = Image.open(stream, formats=formats)
    except UnidentifiedImageError:
        raise UnsupportedImage("The file is not an image in a supported format.") from None
    except Image.DecompressionBombError:
        raise TooManyPixels(limit) from None
    except FileNotFoundError:
        raise
    except Exception:  # noqa: BLE001 - any failure to parse an untrusted header is the file's fault
        raise CorruptImage() from None
    with image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise TooManyPixels(max_pixels, width, height)
        if width == 0 or height == 0:
            raise CorruptImage()
        try:
            image.load()  # a truncated file fails here, not later
            rgb = to_rgb(ImageOps.exif_transpose(image))
        except Image.DecompressionBombError:
            raise TooManyPixels(limit) from None
        except Exception:  # noqa: BLE001 - truncated or malformed pixel data, from any decoder
            raise CorruptImage() from None
        return rgb, str(image.format), image.mode


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB (the rules are in the module docstring)."""
    if image.mode == "RGB":
        return image
    if image.mode in _INTEGER_MODES:
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(values / 257.0, 0, 255) if values.max() > 255 else np.clip(values, 0, 255)
        return Image.fromarray(np.round(gray).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_to_input(image: Image.Image, height: int, width: int) -> np.ndarray:
    """An RGB image stretched to height x width (bilinear), as uint8 (height, width, 3)."""
    return np.asarray(to_rgb(image).resize((width, height), Image.BILINEAR), dtype=np.uint8)


def model_input(source: ImageSource, height: int, width: int | None = None) -> np.ndarray:
    """A file (path or bytes) as the model's uint8 (height, width, 3) input pixels."""
    image, _, _ = open_upright_rgb(source)
    return resize_to_input(image, height, width or height)
