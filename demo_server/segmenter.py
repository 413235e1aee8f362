"""The lesion segmenter as the server runs it: where the spot is, its outline, and whether the
photo shows one spot, none or several (LiteRT only, never TensorFlow).

The file is the whole contract: `contract.segmentation` reads its input size and framing rule,
`contract.framing` turns its P(lesion) per pixel into the verdict, outline, box and crop, the
same functions the evaluation runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from contract.framing import NO_LESION, ONE, SEVERAL, VERDICTS, Framing, crop, frame
from contract.images import resize_to_input
from contract.model_file import ModelFileError
from contract.segmentation import SegmenterInfo, probability_map, read_segmenter_info
from demo_server.litert import SquareImageModel

NO_LESION_MESSAGE = (
    "No skin spot was found in this photo. Take a closer, sharp, well-lit photo of one spot."
)
SEVERAL_MESSAGE = (
    "Several spots were found in this photo. Take a closer photo of the one spot you are "
    "asking about."
)
MESSAGES = {NO_LESION: NO_LESION_MESSAGE, SEVERAL: SEVERAL_MESSAGE}


_INT0 = {"type": "integer", "minimum": 0}
_FILE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "sha256": {"type": "string"},
        "size_bytes": {"type": "integer"},
    },
    "required": ["name", "sha256", "size_bytes"],
}
# The OpenAPI schemas of the fields below (demo_server.openapi lists them with the others).
LESION_SCHEMAS: dict[str, Any] = {
    "Lesion": {
        "type": "object",
        "properties": {
            "verdict": {
                "enum": list(VERDICTS),
                "description": f"`{ONE}`: one spot (outline and box are the spot); "
                f"`{NO_LESION}`: none found; `{SEVERAL}`: two or more spots of similar size "
                "(outline and box are the largest). The last two come with a message asking "
                "for a closer photo of one spot; the scores are still given, for the whole "
                "photo.",
            },
            "found": {**_INT0, "description": "Spots counted (components of the mask)."},
            "area_fraction": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "The (largest) spot's share of the photo; 0 when none.",
            },
            "box": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {
                            "left": _INT0,
                            "top": _INT0,
                            "width": _INT0,
                            "height": _INT0,
                        },
                        "required": ["left", "top", "width", "height"],
                    },
                    {"type": "null"},
                ],
                "description": "Bounding box of the (largest) spot in image pixels (after EXIF "
                "orientation, as `image.width` x `image.height`); null when none.",
            },
            "outline": {
                "type": "array",
                "items": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 2,
                    "maxItems": 2,
                },
                "description": "The (largest) spot's boundary as a closed polygon of [x, y] "
                "vertices in image pixels (at most 64); empty when none.",
            },
            "message": {
                "type": ["string", "null"],
                "description": "For a person, when the verdict is not `one`.",
            },
            "cropped": {
                "type": "boolean",
                "description": "Whether the classifier saw the crop around the spot instead "
                "of the whole photo.",
            },
        },
        "required": ["verdict", "found", "area_fraction", "box", "outline", "message", "cropped"],
    },
    "LesionSegmenterInfo": {
        "type": "object",
        "properties": {
            "loaded": {
                "type": "boolean",
                "description": "Whether classify answers say where the spot is (`lesion`).",
            },
            "image_size": {"type": ["integer", "null"]},
            "crop_before_classifying": {"type": ["boolean", "null"]},
            "file": {"anyOf": [_FILE, {"type": "null"}]},
        },
        "required": ["loaded", "image_size", "crop_before_classifying", "file"],
    },
}


class SegmenterError(ModelFileError):
    """The segmenter file cannot be used (unreadable, not TFLite, or its JSON is missing)."""


class LesionSegmenter(SquareImageModel):
    """A small pool of LiteRT interpreters over the segmenter model."""

    error = SegmenterError
    kind = "segmenter"
    default_file_name = "lesion_segmenter.tflite"
    read_info = staticmethod(read_segmenter_info)

    def adopt(self, info: SegmenterInfo) -> None:
        self.rule = info.rule
        self.crop_before_classifying = info.crop_before_classifying

    def __init__(self, model: bytes, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        size = self.image_size
        if int(np.prod(self._pool.output.shape)) != size * size:
            raise SegmenterError(f"output shape {self._pool.output.shape} is not 1x{size}x{size}")

    def probabilities(self, image: Image.Image) -> np.ndarray:
        """P(lesion) per pixel (S, S) for an upright RGB image, stretched to S x S (bilinear)."""
        pixels = resize_to_input(image, self.image_size, self.image_size)
        return probability_map(self._pool.run(pixels[np.newaxis]), self.image_size)

    def locate(self, image: Image.Image, size: tuple[int, int] | None = None) -> Framing:
        """The verdict, outline, box and crop in pixels of `size` (the image's own: None)."""
        width, height = size or image.size
        return frame(self.probabilities(image), width, height, self.rule)


def lesion_json(framing: Framing, cropped: bool) -> dict[str, Any]:
    """The classify answer's `lesion` field."""
    return {
        "verdict": framing.verdict,
        "found": framing.lesions,
        "area_fraction": round(framing.area_fraction, 6),
        "box": framing.box.as_json() if framing.box else None,
        "outline": framing.outline,
        "message": MESSAGES.get(framing.verdict),
        "cropped": cropped,
    }


def segmenter_info_json() -> dict[str, Any]:
    """The /api/v1/model `lesion_segmenter` field, for the current app."""
    segmenter = current_segmenter()
    if segmenter is None:
        return {"loaded": False, "image_size": None, "crop_before_classifying": None, "file": None}
    return {
        "loaded": True,
        "image_size": segmenter.image_size,
        "crop_before_classifying": segmenter.crop_before_classifying,
        "file": {
            "name": segmenter.file_name,
            "sha256": segmenter.file_sha256,
            "size_bytes": segmenter.file_size,
        },
    }


EXTENSION = "demo_server.segmenter"  # where create_app keeps it in app.extensions


def current_segmenter() -> LesionSegmenter | None:
    """The loaded segmenter, or None when the server runs without one."""
    from flask import current_app

    return current_app.extensions.get(EXTENSION)


def load_segmenter(path: Path | None, interpreters: int, pool_timeout_s: float):
    """The segmenter for create_app (one interpreter per server thread), or None."""
    if path is None:
        return None
    return LesionSegmenter.from_file(
        path, interpreters=interpreters, threads=1, pool_timeout_s=pool_timeout_s
    )


@dataclass(frozen=True)
class SegmentedUpload:
    """What the segmenter made of an upload (framing None and ms None without a segmenter) and
    the image the classifier is to see: the crop when the segmenter file says to crop before
    classifying and found one lesion, else the whole photo."""

    image: Image.Image
    framing: Framing | None
    cropped: bool
    ms: float | None


def segment_upload(image: Image.Image, size: tuple[int, int]) -> SegmentedUpload:
    """Run the current app's segmenter, if any, on an upright RGB upload (PoolBusy if busy);
    the framing is in the upload's own pixels (`size`), which `image` may be reduced from."""
    segmenter = current_segmenter()
    if segmenter is None:
        return SegmentedUpload(image, None, False, None)
    start = time.perf_counter()
    framing = segmenter.locate(image, size)
    ms = (time.perf_counter() - start) * 1000.0
    if segmenter.crop_before_classifying and framing.crop is not None:
        box = framing.crop.scaled(image.width / size[0], image.height / size[1], *image.size)
        return SegmentedUpload(crop(image, box), framing, True, ms)
    return SegmentedUpload(image, framing, False, ms)
