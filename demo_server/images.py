"""Decoding untrusted uploads in memory into an upright RGB image, or a clear 4xx reason.

The decoding itself is the contract's (`contract.images`), the same as training's, with its
decode budget; here only the formats an upload may use, HEIC support, the HTTP status of each
failure, and the rationing of heavy decodes (`Decoder`) are decided.
"""

from __future__ import annotations

from dataclasses import dataclass

import pillow_heif
from PIL import Image

from contract.images import (
    CorruptImage,
    DecodeBudget,
    OverBudget,
    TooManyPixels,
    UnsupportedImage,
    decode,
    open_image,
    upright_size,
)
from demo_server.admission import Full, Slots
from demo_server.errors import ApiError, busy
from demo_server.system import release_free_memory

pillow_heif.register_heif_opener()
Image.init()  # open(formats=...) raises KeyError for a plugin not loaded yet

# The JPEG opener also opens MPO (many phone cameras' JPEGs); HEIF covers HEIC.
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
ACCEPTED_MIME_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")
# Decodes estimated above this take one of the server's few decode slots; an ordinary photo
# (a 12 MP phone JPEG is about 60 MB by contract.images.decode_cost) never waits for them.
HEAVY_DECODE_BYTES = 96 * 2**20


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image plus what it was before decoding (for the response).

    `size` is the upload's own upright width and height; `image` is smaller when the upload
    was far larger than any model needs (`contract.images.DecodeBudget.need`)."""

    image: Image.Image
    format: str
    original_mode: str
    size: tuple[int, int]


@dataclass(frozen=True)
class Decoder:
    """The server's decode budget, and the slots heavy decodes share (None: no rationing)."""

    budget: DecodeBudget
    heavy: Slots | None = None

    def decode(self, data: bytes) -> DecodedImage:
        """Bytes of an uploaded file to an upright RGB image (`contract.images`), or an ApiError
        (503 `busy` when heavy decodes are all in use and enough others wait)."""
        if not data:
            raise ApiError(400, "empty_file", "The uploaded file is empty.")
        try:
            opened = open_image(data, FORMATS, self.budget)
            if self.heavy is None or opened.cost_bytes <= HEAVY_DECODE_BYTES:
                image = decode(opened)
            else:
                with self.heavy.hold():
                    image = decode(opened)
                    release_free_memory()
        except UnsupportedImage:
            raise ApiError(
                415,
                "unsupported_image",
                "The file is not an image in a supported format (JPEG, PNG, WebP, HEIC/HEIF).",
            ) from None
        except TooManyPixels as error:
            raise ApiError(413, "too_many_pixels", str(error)) from None
        except OverBudget as error:
            raise ApiError(413, "too_costly", str(error)) from None
        except CorruptImage as error:
            raise ApiError(422, "corrupt_image", str(error)) from None
        except Full:
            raise busy("large images are being decoded") from None
        return DecodedImage(image, opened.format, opened.mode, upright_size(opened, image))


def decode_upload(data: bytes, max_pixels: int) -> DecodedImage:
    """One upload decoded with the contract's default budget under a pixel cap (no rationing)."""
    return Decoder(DecodeBudget(max_pixels=max_pixels)).decode(data)
