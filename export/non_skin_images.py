"""Images that are not skin-lesion photos: an evaluation set and a separate development set.

No negative training data exists: the gate is fitted on lesions only. `non_skin_images()` is
the evaluation set, only ever used to measure the gate (export report) and in tests. It mixes
real photos of other things (scikit-image's bundled samples, no download needed) with frames a
phone camera produces by accident or a user uploads by mistake: blank, black, grey or
single-colour frames, noise, gradients and a text document.

`development_images()` is where gate designs are compared, so that the evaluation set is not
tuned on: other pictures bundled with scikit-image and matplotlib (microscopy, a fundus crop, an
MRI slice, faces, terrain, a photo, packaging, a logo) and other synthetic frames (another seed,
other patterns). No image is in both sets.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from contract.images import open_upright_rgb, to_rgb

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

# Bundled with scikit-image but not in the evaluation set; `lfw_subset` is 200 small faces.
DEVELOPMENT_SKIMAGE = ("cell", "microaneurysms", "shepp_logan_phantom")
DEVELOPMENT_FACES = (0, 50, 100, 150)
# matplotlib's sample data (mpl-data/sample_data)
DEVELOPMENT_MATPLOTLIB = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")

_SYNTHETIC_SIZE = 320
_RANDOM_COLOURS = 6


def non_skin_images() -> dict[str, Image.Image]:
    """Name -> RGB image, skimage samples first ("skimage.chelsea"), then synthetic frames."""
    images = {f"skimage.{name}": _skimage_sample(name) for name in SKIMAGE_SAMPLES}
    images.update(synthetic_frames())
    return images


def development_images() -> dict[str, Image.Image]:
    """Name -> RGB image of the development set (disjoint from `non_skin_images()`)."""
    import gzip

    import skimage.data
    from matplotlib import cbook

    images = {
        f"skimage.{name}": _from_float(getattr(skimage.data, name)(), rescale=True)
        for name in DEVELOPMENT_SKIMAGE
    }
    images["skimage.stereo_motorcycle"] = Image.fromarray(skimage.data.stereo_motorcycle()[0])
    faces = skimage.data.lfw_subset()
    images.update(
        {f"skimage.lfw_subset_{i}": _from_float(faces[i], rescale=True) for i in DEVELOPMENT_FACES}
    )
    for name in DEVELOPMENT_MATPLOTLIB:
        path = cbook.get_sample_data(name, asfileobj=False)
        images[f"matplotlib.{name}"] = open_upright_rgb(path)[0]
    with gzip.open(cbook.get_sample_data("s1045.ima.gz", asfileobj=False)) as f:
        mri = np.frombuffer(f.read(), np.uint16).reshape(256, 256)
    images["matplotlib.mri_slice"] = _from_float(mri, rescale=True)
    topography = np.load(cbook.get_sample_data("topobathy.npz", asfileobj=False))["topo"]
    images["matplotlib.topography"] = _from_float(topography, rescale=True)
    images.update(_other_frames())
    return images


def _other_frames(size: int = _SYNTHETIC_SIZE, seed: int = 12345) -> dict[str, Image.Image]:
    """Synthetic development frames: patterns absent from `synthetic_frames`, another seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    circles = np.full((size, size, 3), 240, np.uint8)
    for _ in range(12):
        (cy, cx), radius = rng.integers(0, size, 2), rng.integers(10, 60)
        circles[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.integers(0, 256, 3)
    coarse_noise = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return {
        "stripes": _from_float((xx // 16) % 2 * 255.0),
        "circles": Image.fromarray(circles),
        "blurred_noise": coarse_noise.resize((size, size), Image.BICUBIC),
        "skin_tone_frame": _solid((224, 172, 140), size),
        "dark_noisy_frame": _from_float(rng.normal(12, 6, (size, size, 3))),
        "overexposed_frame": _from_float(rng.normal(250, 4, (size, size, 3))),
    }


def _skimage_sample(name: str) -> Image.Image:
    import skimage.data

    pixels = np.asarray(getattr(skimage.data, name)())
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    return to_rgb(Image.fromarray(pixels))  # logo's alpha: composited on white, like uploads


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


def _from_float(values: np.ndarray, rescale: bool = False) -> Image.Image:
    """RGB image of 0-255 values, or of any range stretched to 0-255 (`rescale`)."""
    values = np.asarray(values, np.float64)
    if rescale:
        values = 255 * (values - values.min()) / max(np.ptp(values), 1e-12)
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
