"""The fixed set of images that are not skin-lesion photos, for measuring the lesion gate.

No negative training data exists: the gate is fitted on lesions only, so this set is only ever
used to measure it (export report) and in tests. It mixes real photos of other things
(scikit-image's bundled samples, no download needed) with frames a phone camera produces by
accident or a user uploads by mistake: blank, black, grey or single-colour frames, noise,
gradients and a text document.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# scikit-image samples bundled with the package (0.26); `eagle` and others need a download, and
# `cat` is the same picture as `chelsea`.
SKIMAGE_SAMPLES = (
    "astronaut",
    "brick",
    "camera",
    "checkerboard",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)

_SYNTHETIC_SIZE = 320
_RANDOM_COLOURS = 6


def non_skin_images() -> dict[str, Image.Image]:
    """Name -> RGB image, skimage samples first ("skimage.chelsea"), then synthetic frames."""
    images = {f"skimage.{name}": _skimage_sample(name) for name in SKIMAGE_SAMPLES}
    images.update(synthetic_frames())
    return images


def _skimage_sample(name: str) -> Image.Image:
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, name)())
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 3 and pixels.shape[2] == 4:  # logo: composite on white, like uploads
        rgba = Image.fromarray(pixels, "RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return Image.fromarray(pixels).convert("RGB")


def synthetic_frames(size: int = _SYNTHETIC_SIZE, seed: int = 0) -> dict[str, Image.Image]:
    """Deterministic blank, colour, noise, gradient and document frames (size x size RGB)."""
    rng = np.random.default_rng(seed)
    frames = {
        "white": _solid((255, 255, 255), size),
        "black": _solid((0, 0, 0), size),
        "mid_grey": _solid((128, 128, 128), size),
    }
    for i in range(_RANDOM_COLOURS):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        hex_code = "".join(f"{c:02x}" for c in colour)
        frames[f"colour_{i}_{hex_code}"] = _solid(colour, size)
    frames["noise_rgb"] = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    grey_noise = np.clip(rng.normal(128, 40, (size, size)), 0, 255).astype(np.uint8)
    frames["noise_grey"] = Image.fromarray(grey_noise).convert("RGB")
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    frames["gradient_horizontal"] = _from_float(np.tile(ramp, (size, 1)))
    frames["gradient_vertical"] = _from_float(np.tile(ramp[:, None], (1, size)))
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    frames["gradient_colour"] = _from_float(np.stack([xx, yy, 1 - xx], axis=-1) * 255)
    frames["document"] = _document(size, rng)
    return frames


def _solid(colour: tuple[int, ...], size: int) -> Image.Image:
    return Image.new("RGB", (size, size), colour)


def _from_float(values: np.ndarray) -> Image.Image:
    pixels = np.clip(np.round(values), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def _document(size: int, rng: np.random.Generator) -> Image.Image:
    """Black lines of pseudo-words on white, like a photographed page."""
    page = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=14)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    draw.text((16, 12), "Patient information leaflet", fill=(0, 0, 0), font=font)
    for y in range(40, size - 20, 20):
        words = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(8)]
        draw.text((16, y), " ".join(words), fill=(20, 20, 20), font=font)
    return page
