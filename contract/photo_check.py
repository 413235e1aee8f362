"""The photo check run before a result is shown: is the photo sharp, well exposed, and the spot
large enough in the frame? (numpy and Pillow only.)

A blurred, dark or far-away photo is the largest source of error a person controls, and the
lesion gate turns a blurred real spot away as "not a skin-lesion photo". So the server and the
page measure every photo the same way (the page's twin is `demo_server/static/photocheck.mjs`,
pinned by `tests/demo_server/test_photo_check_parity.py`) and say "retake" first; the person
may check the photo anyway.

1. The photo, upright and in 8-bit RGB, is stretched to SIZE x SIZE with the contract's bilinear
   resize (`contract.images.resize_to_input`, which the page repeats to the bit), so that the
   measures do not depend on the camera's resolution.
2. Grey level per pixel: (299 R + 587 G + 114 B + 500) // 1000, in integers.
3. Sharpness: the variance of the 4-neighbour Laplacian (4 c - up - down - left - right) over
   the inner (SIZE - 2)^2 pixels: integer sums, then sum_sq / n - (sum / n)^2 in float64.
4. Exposure: the mean grey level, and the shares of pixels at or above HIGHLIGHT (clipped
   highlights) and at or below SHADOW (clipped shadows).
5. The spot's size: the segmenter's area fraction (`contract.framing`), when it found one spot.

The thresholds (`RULE`) were chosen on the val photos of the shipped split by
`python -m train.photo_check` (docs/on_device.md#the-photo-check); the page reads them, and the
messages, from the configuration `demo_server/pages.py` embeds: written once, here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from contract.images import resize_to_input

SIZE = 256
HIGHLIGHT = 250  # grey levels at or above: clipped highlights
SHADOW = 5  # at or below: clipped shadows

BLURRY, DARK, BRIGHT, SMALL = "blurry", "dark", "bright", "small"
REASONS = (BLURRY, DARK, BRIGHT, SMALL)  # the order the messages are shown in
MESSAGES = {
    BLURRY: "Too blurry: hold the phone still, tap the spot to focus, and take it again.",
    DARK: "Too dark: take it again in daylight or brighter light, without shadow on the spot.",
    BRIGHT: "Too bright: glare or flash washes the spot out; take it again without the flash.",
    SMALL: "Move closer: the spot is small in the photo; fill more of the frame with it.",
}
RETAKE_TITLE = "Retake the photo?"


@dataclass(frozen=True)
class PhotoCheckRule:
    """When a photo is worth retaking; a measure beyond its bound names the reason."""

    min_sharpness: float  # variance of the Laplacian of the grey SIZE x SIZE photo
    min_brightness: float  # mean grey level, 0 to 255
    max_shadows: float  # share of clipped-shadow pixels
    max_highlights: float  # share of clipped-highlight pixels
    min_area_fraction: float  # the spot's share of the frame, when the segmenter found one

    def as_json(self) -> dict[str, float]:
        return asdict(self)


# Chosen by `python -m train.photo_check runs/shipped_2025 --predictions
# runs/compare/after_val/predictions.csv` (docs/on_device.md#the-photo-check).
RULE = PhotoCheckRule(
    min_sharpness=3.0,
    min_brightness=60.0,
    max_shadows=0.25,
    max_highlights=0.1,
    min_area_fraction=0.01,
)


@dataclass(frozen=True)
class PhotoMeasures:
    """What the check measures on the whole photo."""

    sharpness: float
    brightness: float
    shadows: float
    highlights: float


@dataclass(frozen=True)
class PhotoCheck:
    """The measures, the spot's share of the frame (None: no segmenter, or not one spot) and
    the reasons to retake (empty: the photo is fine)."""

    measures: PhotoMeasures
    area_fraction: float | None
    reasons: tuple[str, ...]

    @property
    def retake(self) -> bool:
        return bool(self.reasons)

    def as_json(self) -> dict[str, Any]:
        """The API's `photo_check` field (the page builds the same object)."""
        return {
            "retake": self.retake,
            "reasons": list(self.reasons),
            "messages": [MESSAGES[reason] for reason in self.reasons],
            **asdict(self.measures),
            "area_fraction": self.area_fraction,
        }


def grey_levels(pixels: np.ndarray) -> np.ndarray:
    """Integer grey level (H, W) of uint8 RGB pixels (H, W, 3)."""
    rgb = np.asarray(pixels, dtype=np.int64)
    return (299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000


def measure_pixels(pixels: np.ndarray) -> PhotoMeasures:
    """The measures of uint8 RGB pixels (H, W, 3), already stretched to SIZE x SIZE."""
    grey = grey_levels(pixels)
    centre = grey[1:-1, 1:-1]
    laplacian = 4 * centre - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    n = laplacian.size
    mean = float(int(laplacian.sum())) / n
    variance = float(int((laplacian * laplacian).sum())) / n - mean * mean
    count = grey.size
    return PhotoMeasures(
        sharpness=variance,
        brightness=float(int(grey.sum())) / count,
        shadows=int((grey <= SHADOW).sum()) / count,
        highlights=int((grey >= HIGHLIGHT).sum()) / count,
    )


def measure(image: Image.Image) -> PhotoMeasures:
    """The measures of an upright photo (any mode: `resize_to_input` makes it 8-bit RGB)."""
    return measure_pixels(resize_to_input(image, SIZE, SIZE))


def check(
    measures: PhotoMeasures, area_fraction: float | None = None, rule: PhotoCheckRule = RULE
) -> PhotoCheck:
    """The reasons to retake, in REASONS order."""
    failed = {
        BLURRY: measures.sharpness < rule.min_sharpness,
        DARK: measures.brightness < rule.min_brightness or measures.shadows > rule.max_shadows,
        BRIGHT: measures.highlights > rule.max_highlights,
        SMALL: area_fraction is not None and area_fraction < rule.min_area_fraction,
    }
    return PhotoCheck(measures, area_fraction, tuple(r for r in REASONS if failed[r]))
