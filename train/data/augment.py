"""Augmentation that bridges dermoscopic and smartphone photos.

Phone photos differ from dermoscopy in white balance, exposure, focus, compression, scale and
framing; each transform below imitates one of those, on raw 0-255 pixels, inside tf.data.
"""

from __future__ import annotations

import tensorflow as tf


def _random_resized_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Scale and framing: a crop of 50-100% of the area, aspect 3:4 to 4:3, resized back."""
    area = tf.random.uniform((), 0.5, 1.0)
    aspect = tf.exp(tf.random.uniform((), tf.math.log(3 / 4), tf.math.log(4 / 3)))
    h = tf.minimum(tf.sqrt(area / aspect), 1.0)
    w = tf.minimum(tf.sqrt(area * aspect), 1.0)
    y0 = tf.random.uniform((), 0.0, 1.0 - h + 1e-6)
    x0 = tf.random.uniform((), 0.0, 1.0 - w + 1e-6)
    box = tf.stack([y0, x0, y0 + h, x0 + w])[None]
    return tf.image.crop_and_resize(image[None], box, [0], [size, size])[0]


def _random_blur(image: tf.Tensor) -> tf.Tensor:
    """Out-of-focus phone shots: a 3x3 or 5x5 box blur, a third of the time."""
    choice = tf.random.uniform((), 0, 6, dtype=tf.int32)

    def blur(k: int):
        return lambda: tf.nn.avg_pool2d(image[None], ksize=k, strides=1, padding="SAME")[0]

    return tf.case([(choice == 0, blur(3)), (choice == 1, blur(5))], default=lambda: image)


def augment(image: tf.Tensor, size: int) -> tf.Tensor:
    """One random view of an image (float32, 0-255, size x size x 3)."""
    image = _random_resized_crop(image, size)
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_flip_up_down(image)
    image = tf.image.rot90(image, tf.random.uniform((), 0, 4, dtype=tf.int32))
    # White balance and colour cast: a gain per channel.
    image = image * tf.random.uniform((1, 1, 3), 0.85, 1.15)
    image = tf.image.random_brightness(image, 25.0)
    mean = tf.reduce_mean(image)
    image = (image - mean) * tf.random.uniform((), 0.75, 1.3) + mean
    image = tf.clip_by_value(image, 0.0, 255.0) / 255.0
    image = tf.image.random_saturation(image, 0.7, 1.3)
    image = tf.image.random_hue(image, 0.04)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image = tf.image.random_jpeg_quality(image, 40, 95)  # recompression artefacts
    image = _random_blur(image * 255.0)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), (size, size, 3))
