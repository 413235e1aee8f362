"""Reading the lesion segmenter file: its packed `lesion_segmenter.json` and its output tensor.

The segmenter (`models/lesion_segmenter.tflite`, written by `export.segmentation`) takes the
whole photo stretched to image_size x image_size (`contract.images.resize_to_input`, like the
classifier) and outputs P(lesion) per pixel, 1 x S x S x 1 (uint8 in the int8 file). The JSON
packed after the flatbuffer holds the framing rule's numbers (`contract.framing.FramingRule`)
so that every client applies the same threshold, minimum area and "several" ratio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from contract.framing import FramingRule
from contract.model_file import ModelFileError, read_associated_files

SEGMENTER_FILE = "lesion_segmenter.json"
SEGMENTER_LABELS_FILE = "segmenter_labels.txt"


@dataclass(frozen=True)
class SegmenterInfo:
    """What the segmenter file says about itself."""

    image_size: int
    rule: FramingRule
    crop_before_classifying: bool  # whether the framing crop is applied (see docs/segmentation.md)
    card: dict[str, Any]


def read_segmenter_info(model: bytes) -> SegmenterInfo:
    """The segmenter's packed JSON; ModelFileError if it is missing or malformed."""
    try:
        info = json.loads(read_associated_files(model)[SEGMENTER_FILE])
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        names = {f.name for f in fields(FramingRule)}
        rule = FramingRule(**{k: v for k, v in (info.get("rule") or {}).items() if k in names})
        return SegmenterInfo(
            image_size=int(info["image_size"]),
            rule=rule,
            crop_before_classifying=bool(info.get("crop_before_classifying", False)),
            card=info,
        )
    except (KeyError, ValueError, TypeError) as error:
        raise ModelFileError(f"the segmenter has no usable {SEGMENTER_FILE}: {error}") from None


def probability_map(output: np.ndarray, image_size: int) -> np.ndarray:
    """The dequantized output of one image (any shape holding S x S values) as (S, S)."""
    values = np.asarray(output, dtype=np.float64)
    if values.size != image_size * image_size:
        raise ValueError(f"expected {image_size}x{image_size} outputs, got {values.size}")
    return values.reshape(image_size, image_size)
