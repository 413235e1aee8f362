"""Colour constancy: the same lesion under another light or camera gives the same pixels.

Shades of Grey (Finlayson & Trezzi, "Shades of Gray and Colour Constancy", CIC 2004), with
p = 6 as the best ISIC 2018 entries used it: each channel's light is estimated as the Minkowski
p-norm of its values, e_c = (mean(v ** p)) ** (1 / p), and the channel is multiplied by
g_c = |e| / (sqrt(3) * e_c), so the estimated light becomes grey with the same Euclidean length
(the common ISIC implementation's normalisation; overall brightness is kept, only the cast
goes). Values are rounded and clipped to 0-255.

Where: on the classifier's input pixels, uint8 (height, width, 3) after the resize to the
model's input (and after the crop around the lesion where the segmenter asks for one), right
before they are fed. Every client has exactly that array (contract.images.resize_to_input,
pixels.mjs's resizeBilinear), it is small, and the estimate is of what the network sees. A
model expects it when its card's `input.colour_constancy` names it (`SHADES_OF_GREY_P6`);
without the key, as in every card written before it, the pixels are fed unchanged.

Computed so that another language gives the same bytes (demo_server/static/colour.mjs, pinned
by tests/demo_server/test_ondevice_contract.py): the sums of v ** 6 are exact integers (from
a 256-bin histogram), the three gains are rounded to 16-bit fixed point, and each pixel is
(v * gain + 2 ** 15) >> 16 in integers. Only the gains' root and square root are floating
point: a last-bit difference there could move one gain by 2 ** -16 and a pixel by one level,
never more.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from contract.card import ModelCard

SHADES_OF_GREY_P6 = "shades_of_grey_p6"
STEPS = (SHADES_OF_GREY_P6,)  # the names a card may give; a client refuses any other
CARD_KEY = "colour_constancy"  # in the card's `input`
POWER = 6
FRACTION_BITS = 16
# A gain of 255 already sends every non-zero value to 255: larger ones change nothing, and the
# cap keeps v * gain within 32 bits for clients that compute in them.
MAX_GAIN = 255 << FRACTION_BITS


class ColourConstancyError(ValueError):
    """A card names a colour-constancy step this code does not know."""


def step_of(card: ModelCard) -> str | None:
    """The step a model's card asks for (None: feed the pixels unchanged)."""
    step = card.input.colour_constancy
    if step is None:
        return None
    if step not in STEPS:
        raise ColourConstancyError(
            f"input.{CARD_KEY} is {step!r}; known: {', '.join(STEPS)} (or no key for none)"
        )
    return step


def gains(pixels: np.ndarray) -> np.ndarray:
    """The three fixed-point channel gains (int64, 1.0 = 2 ** 16) of one uint8 RGB image."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 (height, width, 3) pixels, got {pixels.dtype} {pixels.shape}"
        )
    count = pixels.shape[0] * pixels.shape[1]
    powers = [v**POWER for v in range(256)]
    estimate = []
    for channel in range(3):
        histogram = np.bincount(pixels[..., channel].ravel(), minlength=256).tolist()
        total = sum(n * p for n, p in zip(histogram, powers, strict=True))  # exact integers
        estimate.append((float(total) / count) ** (1 / POWER) if count else 0.0)
    length = math.sqrt(
        estimate[0] * estimate[0] + estimate[1] * estimate[1] + estimate[2] * estimate[2]
    )
    if length == 0.0:  # all black: nothing to correct
        return np.full(3, 1 << FRACTION_BITS, np.int64)
    fixed = [
        MAX_GAIN if e == 0.0 else min(MAX_GAIN, _round(length / (math.sqrt(3.0) * e) * 65536.0))
        for e in estimate
    ]
    return np.array(fixed, np.int64)


def _round(x: float) -> int:
    """Half up, as Math.floor(x + 0.5) in JavaScript."""
    return math.floor(x + 0.5)


def shades_of_grey(pixels: np.ndarray) -> np.ndarray:
    """One uint8 (height, width, 3) image with its colour cast removed (module docstring)."""
    values = np.arange(256, dtype=np.int64)[:, None]
    tables = np.minimum(255, (values * gains(pixels) + (1 << (FRACTION_BITS - 1))) >> FRACTION_BITS)
    tables = tables.astype(np.uint8)
    return np.stack([tables[pixels[..., c], c] for c in range(3)], axis=-1)


def apply(pixels: np.ndarray, step: str | None) -> np.ndarray:
    """A model's input pixels, one image (H, W, 3) or a batch (N, H, W, 3), after `step`; the
    same array when `step` is None. A batch is corrected image by image, in place."""
    if step is None:
        return pixels
    if step not in STEPS:
        raise ColourConstancyError(f"unknown colour-constancy step {step!r}")
    if pixels.ndim == 3:
        return shades_of_grey(pixels)
    for i in range(len(pixels)):
        pixels[i] = shades_of_grey(pixels[i])
    return pixels
