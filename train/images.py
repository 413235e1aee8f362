"""Decoding image files into fixed-size RGB pixel arrays.

Every consumer (training, evaluation, export calibration and verification) decodes the same
way: EXIF orientation applied, converted to RGB, the whole image stretched to size x size with
bilinear filtering. The demo server does the same with Pillow alone, so what the model saw in
training is what it sees in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

from train.datasets import Record, Skipped


def decode_image(path, size: int) -> np.ndarray:
    """uint8 array (size, size, 3); raises OSError/ValueError for unreadable or truncated files."""
    with Image.open(path) as image:
        image.load()  # a truncated file fails here, not later
        image = ImageOps.exif_transpose(image).convert("RGB")
        return np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def decode_records(
    records: Sequence[Record], size: int, skipped: Skipped, workers: int = 4
) -> tuple[np.ndarray, list[Record]]:
    """Decode all records; unreadable ones are added to `skipped` and left out."""

    def attempt(record: Record) -> np.ndarray | None:
        try:
            return decode_image(record.path, size)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            skipped.add(record.path, f"unreadable image ({error})")
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(attempt, records))
    kept = [(a, r) for a, r in zip(arrays, records, strict=True) if a is not None]
    pixels = np.stack([a for a, _ in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    return pixels, [r for _, r in kept]
