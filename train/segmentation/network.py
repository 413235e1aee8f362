"""The lesion segmenter: the EfficientNet-Lite0 encoder we already load, cut at stride 16, and a
light U-Net-style decoder with an LR-ASPP context head (MobileNetV3's segmentation head).

    pixels 0-255 (S x S x 3) -> Lite0 stem .. block5c (stride 16, 112 ch, ImageNet weights)
      -> LR-ASPP: 1x1 conv (64) gated by a global-average-pooled sigmoid branch
      -> up x2, + block3b (stride 8)  -> separable 3x3 conv (48)
      -> up x2, + block2b (stride 4)  -> separable 3x3 conv (32)
      -> up x2, + block1a (stride 2)  -> separable 3x3 conv (16)
      -> 1x1 conv -> up x2 (bilinear) -> sigmoid: P(lesion) per pixel, S x S x 1

About 0.8 M parameters (0.7 M of them the encoder's), so the int8 file stays near 1 MB. Every
operator is a TFLite builtin that int8 supports (conv, depthwise conv, mean, mul, add, concat,
bilinear resize, logistic). The encoder's BatchNorm layers stay frozen (ImageNet statistics):
batches of a dozen photos are too small to re-estimate them. The decoder's BatchNorm layers
train, with momentum 0.9 (`BN_MOMENTUM`).
"""

from __future__ import annotations

import keras

from train.model.efficientnet_lite import build_efficientnet_lite

ENCODER_OUTPUT = "block5c_add"
SKIPS = ("block3b_add", "block2b_add", "block1a_project_bn")
DECODER_CHANNELS = (48, 32, 16)
CONTEXT_CHANNELS = 64
OUTPUT_NAME = "mask"
# The decoder's BatchNorm: with ~20 steps an epoch, Keras's default momentum (0.99) left the
# moving statistics far behind the weights for ten epochs (val Dice 0.34 in inference mode
# against 0.78 with batch statistics, measured at epoch 6); 0.9 follows them within an epoch.
BN_MOMENTUM = 0.9


def _conv_bn_relu(x, filters: int, name: str, separable: bool = True):
    if separable:
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def build_segmenter(image_size: int = 224, pretrained: bool = True) -> keras.Model:
    """Raw RGB pixels (float 0-255) in, P(lesion) per pixel out (same height and width)."""
    if image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
    backbone = build_efficientnet_lite("lite0", image_size, pretrained=pretrained)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    taps = [backbone.get_layer(name).output for name in (ENCODER_OUTPUT, *SKIPS)]
    encoder = keras.Model(backbone.input, taps, name="encoder")

    inputs = keras.Input((image_size, image_size, 3), name="image")
    deep, *skips = encoder(inputs)
    x = _conv_bn_relu(deep, CONTEXT_CHANNELS, "context", separable=False)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="context_pool")(deep)
    gate = keras.layers.Conv2D(CONTEXT_CHANNELS, 1, activation="sigmoid", name="context_gate")(gate)
    x = keras.layers.Multiply(name="context_mul")([x, gate])
    for i, (skip, filters) in enumerate(zip(skips, DECODER_CHANNELS, strict=True)):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{i}")(x)
        x = keras.layers.Concatenate(name=f"skip{i}")([x, skip])
        x = _conv_bn_relu(x, filters, f"decoder{i}")
    x = keras.layers.Conv2D(1, 1, name="logit")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up_out")(x)
    outputs = keras.layers.Activation("sigmoid", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="lesion_segmenter")
