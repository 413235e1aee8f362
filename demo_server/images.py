"""Decoding untrusted uploads in memory into an upright RGB image, or a clear 4xx reason.

The decoding itself is the contract's (`contract.images`), the same as training's; here only the
formats an upload may use, HEIC support, and the HTTP status of each failure are decided.
"""

from __future__ import annotations

from dataclasses import dataclass

import pillow_heif
from PIL import Image

from contract.images import CorruptImage, TooManyPixels, UnsupportedImage, open_upright_rgb
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
    """Bytes of an uploaded file to an upright RGB image (`contract.images`), or an ApiError."""
    if not data:
        raise ApiError(400, "empty_file", "The uploaded file is empty.")
    try:
        image, format_name, mode = open_upright_rgb(data, FORMATS, max_pixels)
    except UnsupportedImage:
        raise ApiError(
            415,
            "unsupported_image",
            "The file is not an image in a supported format (JPEG, PNG, WebP, HEIC/HEIF).",
        ) from None
    except TooManyPixels as error:
        raise ApiError(413, "too_many_pixels", str(error)) from None
    except CorruptImage as error:
        raise ApiError(422, "corrupt_image", str(error)) from None
    return DecodedImage(image=image, format=format_name, original_mode=mode)
