"""Backbone registry, in the spirit of MediaPipe Model Maker's `ModelSpec`.

A backbone maps raw RGB pixels (0-255, float) to a feature vector and does its own
normalisation, so the exported model needs no constants outside it. Adding a backbone
(MobileNetV3, say) is one builder function and one entry in `BACKBONES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import keras

from train.model.efficientnet_lite import (
    VARIANTS,
    build_efficientnet_lite,
    set_trainable_top_blocks,
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    default_image_size: int
    build: Callable[[int], keras.Model]  # image size -> backbone (raw pixels in, features out)
    pretrained: bool
    # Makes only the top n blocks (plus the head) trainable; None: everything always trains.
    set_trainable_top_blocks: Callable[[keras.Model, int], None] | None = None
    blocks: int = 0  # how many blocks set_trainable_top_blocks can unfreeze
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


def _efficientnet_lite_spec(variant: str) -> ModelSpec:
    return ModelSpec(
        name=f"efficientnet_{variant}",
        default_image_size=224,
        build=partial(build_efficientnet_lite, variant),
        pretrained=True,
        set_trainable_top_blocks=set_trainable_top_blocks,
        blocks=len(VARIANTS[variant].block_names),
        normalisation="(x - 127) / 128",
    )


BACKBONES: dict[str, ModelSpec] = {
    "tiny_cnn": ModelSpec(
        name="tiny_cnn",
        default_image_size=96,
        build=tiny_cnn,
        pretrained=False,
        normalisation="x / 255",
    ),
    # Lite1 and Lite2 are deeper (21 blocks) and Lite2 wider; all take 224 px here because
    # the dermoscopic images are 200x150 (larger inputs measured no gain for Lite0).
    **{f"efficientnet_{v}": _efficientnet_lite_spec(v) for v in VARIANTS},
}


def get_spec(name: str) -> ModelSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}") from None
