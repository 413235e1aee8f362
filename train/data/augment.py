"""Augmentation that bridges dermoscopic and smartphone photos, on any Keras backend.

Phone photos differ from dermoscopy in white balance, exposure, focus, compression, scale and
framing; each transform below imitates one of those, on raw 0-255 pixels. Everything but the
JPEG recompression is `keras.ops` on a whole batch, inside the compiled training step (the
`Augment` layer, which `train.model.network.training_model` puts in front of the classifier), so
it runs on the accelerator of whichever backend trains: the crop, flips, turns and blur are one
resampling matrix per axis and the colour changes one 3x3 matrix per image, matrix products
that are fast on every backend and device. Keras has no JPEG op: the recompression runs in the
input pipeline on the CPU, with Pillow (`recompress`, `train.data.pipeline`).
"""

from __future__ import annotations

import io
import math

import keras
import numpy as np
from keras import ops
from PIL import Image

JPEG_QUALITY = (40, 95)  # recompression artefacts, the range of phone cameras and messengers


def recompress(image: np.ndarray, quality: int) -> np.ndarray:
    """An image (uint8, H x W x 3) after a JPEG round trip at `quality` (Pillow, 4:2:0)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer).convert("RGB"))


def _box_blur_matrix(size: int, width: int) -> np.ndarray:
    """Along one axis, a width-wide box blur that averages the pixels inside the image only
    (an average pool with "same" padding): row i weights the input pixels of output pixel i."""
    near = np.abs(np.arange(size)[:, None] - np.arange(size)[None, :]) <= width // 2
    return (near / near.sum(axis=1, keepdims=True)).astype(np.float32)


def axis_weights(origin, extent, flip, blur, size: int):
    """Per image, the (size x size) weights that resample one axis: output pixel i reads the
    crop [origin, origin + extent] (fractions of the side) at i, bilinearly (a tent of width
    one), reversed where `flip` is 1, then box-blurred by `blur` (0: none, 1: 3 wide, 2: 5)."""
    out = ops.arange(size, dtype="float32")[None, :]
    out = ops.where(flip[:, None] > 0.5, (size - 1) - out, out)
    last = float(size - 1)
    source = ops.clip(origin[:, None] * last + out * extent[:, None], 0.0, last)
    pixels = ops.arange(size, dtype="float32")[None, None, :]
    tent = ops.relu(1.0 - ops.abs(source[:, :, None] - pixels))
    boxes = ops.convert_to_tensor(
        np.stack([np.eye(size, dtype=np.float32), *(_box_blur_matrix(size, k) for k in (3, 5))])
    )
    return ops.matmul(ops.take(boxes, blur, axis=0), tent)


def resample(images, rows, columns, transpose):
    """Each image (batch x size x size x channels) through its row and column weights
    (`axis_weights`), then transposed (rows and columns swapped) where `transpose` is 1."""
    images = ops.einsum("biy,byxc->bixc", rows, images)
    images = ops.einsum("bjx,bixc->bijc", columns, images)
    swap = ops.reshape(transpose > 0.5, (-1, 1, 1, 1))
    return ops.where(swap, ops.transpose(images, (0, 2, 1, 3)), images)


def geometry(images, seed):
    """Scale and framing: a crop of 50-100% of the area, aspect 3:4 to 4:3, stretched back to
    the full size; a lesion has no up: flipped and transposed at random (all 8 turns and
    mirror images alike); out-of-focus phone shots: a 3x3 or 5x5 box blur, each a sixth of the
    time. One resampling per axis (matrix products: fast on any device) does all of it."""
    batch, size = ops.shape(images)[0], images.shape[1]

    def uniform(low=0.0, high=1.0):
        return keras.random.uniform((batch,), low, high, seed=seed)

    area = uniform(0.5, 1.0)
    aspect = ops.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
    h = ops.minimum(ops.sqrt(area / aspect), 1.0)
    w = ops.minimum(ops.sqrt(area * aspect), 1.0)
    y0 = uniform() * (1.0 - h)
    x0 = uniform() * (1.0 - w)
    flip_y, flip_x, transpose = (ops.cast(uniform() < 0.5, "float32") for _ in range(3))
    blur = ops.cast(ops.floor(uniform(0.0, 6.0)), "int32")
    blur = ops.where(blur < 2, blur + 1, 0)  # 1 (3x3) or 2 (5x5) a sixth of the time each
    rows = axis_weights(y0, h, flip_y, blur, size)
    columns = axis_weights(x0, w, flip_x, blur, size)
    return resample(images, rows, columns, transpose)


# RGB to YIQ: luma and two chroma axes; a hue shift turns the chroma plane, saturation scales it.
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
)


def colour(images, seed):
    """White balance, exposure, contrast, saturation and hue of a batch (float, 0-255)."""
    batch = ops.shape(images)[0]

    def uniform(shape, low, high):
        return keras.random.uniform((batch, *shape), low, high, seed=seed)

    images = images * uniform((1, 1, 3), 0.85, 1.15)  # white balance, colour cast
    images = images + uniform((1, 1, 1), -25.0, 25.0)  # exposure
    mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
    images = (images - mean) * uniform((1, 1, 1), 0.75, 1.3) + mean  # contrast
    images = ops.clip(images, 0.0, 255.0)
    # Saturation 0.7-1.3 and a hue shift of up to 4% of the colour circle, as one 3x3 matrix
    # per image: to YIQ, scale and turn the chroma (I, Q) plane, back to RGB.
    saturation = uniform((), 0.7, 1.3)
    angle = uniform((), -0.04, 0.04) * (2.0 * math.pi)
    cos, sin = saturation * ops.cos(angle), saturation * ops.sin(angle)
    one, zero = ops.ones_like(cos), ops.zeros_like(cos)
    chroma = ops.stack(
        [
            ops.stack([one, zero, zero], -1),
            ops.stack([zero, cos, -sin], -1),
            ops.stack([zero, sin, cos], -1),
        ],
        axis=1,
    )
    to_yiq = ops.convert_to_tensor(_YIQ)
    matrix = ops.matmul(ops.matmul(ops.convert_to_tensor(np.linalg.inv(_YIQ)), chroma), to_yiq)
    images = ops.einsum("bhwc,bdc->bhwd", images, matrix)
    return ops.clip(images, 0.0, 255.0)


def augment(images, seed):
    """One random view of each image of a batch (float32, 0-255, batch x size x size x 3)."""
    return colour(geometry(images, seed), seed)


class Augment(keras.layers.Layer):
    """Raw pixels (uint8 or float, 0-255) to float32; in training, with `augment` applied.

    Not part of the saved classifier: it sits in the training model only
    (`train.model.network.training_model`), so model.keras and the export never contain it.
    """

    def __init__(self, enabled: bool = True, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.enabled = enabled
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        images = ops.cast(images, "float32")
        if self.enabled and training:
            images = augment(images, self.seed_generator)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, images, training=None):
        return keras.KerasTensor(images.shape, "float32")

    def get_config(self):
        return {**super().get_config(), "enabled": self.enabled, "seed": self.seed}
