"""The classifier: a registered backbone plus a dropout + softmax head.

Input: raw RGB pixels (0-255) at a fixed size, float32. Output: softmax probabilities in the
order of `contract.taxonomy.LABELS`. Everything in between, normalisation included, is inside
the model, so the exported .tflite is self-contained.
"""

from __future__ import annotations

import keras

from contract.taxonomy import LABELS
from train.model.backbones import ModelSpec


def build_classifier(spec: ModelSpec, image_size: int, dropout: float) -> keras.Model:
    inputs = keras.Input((image_size, image_size, 3), name="image")
    backbone = spec.build(image_size)
    features = backbone(inputs)
    x = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="probability")(x)
    return keras.Model(inputs, outputs, name=f"skin_lesion_{spec.name}")


def training_model(classifier: keras.Model, augmented: bool, seed: int) -> keras.Model:
    """What `fit` trains: uint8 pixels, augmented on the device (`train.data.augment.Augment`),
    into the classifier. The classifier's weights are this model's weights; only the classifier
    is saved, so model.keras and the export hold no augmentation."""
    from train.data.augment import Augment

    inputs = keras.Input(classifier.input_shape[1:], dtype="uint8", name="pixels")
    images = Augment(augmented, seed, name="augment")(inputs)
    return keras.Model(inputs, classifier(images), name=f"training_{classifier.name}")


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone sub-model (the only nested model in the classifier)."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def set_trainable_stage(model: keras.Model, spec: ModelSpec, top_blocks: int | None) -> None:
    """Stage of fine-tuning: None trains everything; 0 only the head; n the top n blocks too."""
    backbone = backbone_of(model)
    if top_blocks is None or spec.set_trainable_top_blocks is None:
        backbone.trainable = True
    elif top_blocks == 0:
        backbone.trainable = False
    else:
        backbone.trainable = True
        spec.set_trainable_top_blocks(backbone, top_blocks)
