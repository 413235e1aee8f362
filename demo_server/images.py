"""Decoding untrusted uploads in memory into an upright RGB image, or a clear 4xx reason.

Alpha is composited on white (a transparent background reads as paper, not as black skin).
16-bit and 32-bit integer images are scaled from 0-65535 to 0-255; float images from 0-1.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from demo_server.errors import ApiError

pillow_heif.register_heif_opener()
Image.init()  # open(formats=...) raises KeyError for a plugin not loaded yet

# The JPEG opener also opens MPO (many phone cameras' JPEGs); HEIF covers HEIC.
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
ACCEPTED_MIME_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image plus what it was before decoding (for the response)."""

    image: Image.Image
    format: str
    original_mode: str


def decode_upload(data: bytes, max_pixels: int) -> DecodedImage:
    """Bytes of an uploaded file to an upright RGB image; raises ApiError on anything wrong."""
    if not data:
        raise ApiError(400, "empty_file", "The uploaded file is empty.")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ApiError(
            415,
            "unsupported_image",
            "The file is not an image in a supported format (JPEG, PNG, WebP, HEIC/HEIF).",
        ) from None
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # noqa: BLE001 - any failure to parse an untrusted header is the file's fault
        raise _corrupt() from None
    width, height = image.size
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels, width, height)
    if width == 0 or height == 0:
        raise _corrupt()
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        rgb = to_rgb(upright)
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # noqa: BLE001 - truncated or malformed pixel data, from any decoder
        raise _corrupt() from None
    return DecodedImage(image=rgb, format=str(image.format), original_mode=image.mode)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB (see the module docstring for the rules)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(values / 257.0, 0, 255) if values.max() > 255 else np.clip(values, 0, 255)
        return Image.fromarray(np.round(gray).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _too_many_pixels(max_pixels: int, width: int = 0, height: int = 0) -> ApiError:
    size = f" ({width}x{height} = {width * height:,} pixels)" if width else ""
    return ApiError(
        413,
        "too_many_pixels",
        f"The image is too large{size}; the limit is {max_pixels:,} pixels.",
    )


def _corrupt() -> ApiError:
    return ApiError(
        422,
        "corrupt_image",
        "The image could not be decoded: the file is truncated or damaged.",
    )
