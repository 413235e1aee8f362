"""Backbone registry, in the spirit of MediaPipe Model Maker's `ModelSpec`.

A backbone maps raw RGB pixels (0-255, float) to a feature vector and does its own
normalisation, so the exported model needs no constants outside it. Adding a backbone
(MobileNetV3, say) is one builder function and one entry in `BACKBONES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class ModelSpec:
    name: str
    default_image_size: int
    build: Callable[[int], keras.Model]  # image size -> backbone (raw pixels in, features out)
    pretrained: bool
    # Makes only the top n blocks (plus the head) trainable; None: everything always trains.
    set_trainable_top_blocks: Callable[[keras.Model, int], None] | None = None
    normalisation: str = ""


def tiny_cnn(image_size: int) -> keras.Model:
    """A small from-scratch CNN: trains in seconds, for tests and smoke runs."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="normalise")(inputs)
    for i, filters in enumerate((16, 32, 64, 96)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(6.0, name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def _efficientnet_lite0(image_size: int) -> keras.Model:
    from train.efficientnet_lite0 import build_efficientnet_lite0

    return build_efficientnet_lite0(image_size, pretrained=True)


def _efficientnet_lite0_top_blocks(model: keras.Model, n_blocks: int) -> None:
    from train.efficientnet_lite0 import set_trainable_top_blocks

    set_trainable_top_blocks(model, n_blocks)


BACKBONES: dict[str, ModelSpec] = {
    "tiny_cnn": ModelSpec(
        name="tiny_cnn",
        default_image_size=96,
        build=tiny_cnn,
        pretrained=False,
        normalisation="x / 255",
    ),
    "efficientnet_lite0": ModelSpec(
        name="efficientnet_lite0",
        default_image_size=224,
        build=_efficientnet_lite0,
        pretrained=True,
        set_trainable_top_blocks=_efficientnet_lite0_top_blocks,
        normalisation="(x - 127) / 128",
    ),
}


def get_spec(name: str) -> ModelSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}") from None
