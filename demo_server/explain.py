""" "Where did it look?": occlusion sensitivity with the same .tflite (so it works for int8 too).

A grey patch slides over a coarse grid; the drop of the top class's (raw) probability when a
cell is covered says how much the model relied on that cell. A negative drop means covering
the cell made the model more confident; the heatmap shows only positive drops.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from demo_server.model import Classifier

GREY = 128
HEATMAP_SIZE = 256
HEAT_RGB = (255, 40, 0)
MAX_ALPHA = 190


@dataclass(frozen=True)
class OcclusionResult:
    """Probability drops per grid cell (rows top to bottom) for the top class."""

    target: int
    base_probability: float
    drops: np.ndarray
    batched: bool


def occluded_batch(pixels: np.ndarray, grid: int) -> np.ndarray:
    """grid*grid copies of an H x W x 3 image, each with one cell painted grey (row-major)."""
    height, width = pixels.shape[:2]
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    cols = np.linspace(0, width, grid + 1).round().astype(int)
    batch = np.repeat(pixels[np.newaxis], grid * grid, axis=0)
    for r in range(grid):
        for c in range(grid):
            batch[r * grid + c, rows[r] : rows[r + 1], cols[c] : cols[c + 1]] = GREY
    return batch


def occlusion_map(classifier: Classifier, pixels: np.ndarray, grid: int) -> OcclusionResult:
    """Occlusion sensitivity of the top class over a grid x grid partition of the input."""
    base = classifier.predict(pixels)
    target = int(np.argmax(base))
    probabilities, batched = classifier.predict_batch(occluded_batch(pixels, grid))
    drops = (base[target] - probabilities[:, target]).reshape(grid, grid)
    return OcclusionResult(
        target=target, base_probability=float(base[target]), drops=drops, batched=batched
    )


def heatmap_png(drops: np.ndarray, size: int = HEATMAP_SIZE) -> bytes:
    """A transparent PNG overlay; the page stretches it over the photo as the model did."""
    positive = np.clip(drops, 0, None)
    peak = positive.max()
    strength = positive / peak if peak > 0 else positive
    alpha = Image.fromarray(np.round(strength * MAX_ALPHA).astype(np.uint8), "L")
    alpha = alpha.resize((size, size), Image.BILINEAR)
    overlay = Image.new("RGBA", (size, size), HEAT_RGB + (0,))
    overlay.putalpha(alpha)
    out = io.BytesIO()
    overlay.save(out, format="PNG", optimize=True)
    return out.getvalue()
