"""EfficientNet-Lite0/1/2: the ported ImageNet weights are genuine and the freezing helper works."""

import keras
import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from train.model.efficientnet_lite import (
    VARIANTS,
    block_names,
    build_efficientnet_lite,
    load_pretrained_weights,
    set_trainable_top_blocks,
)

CHECKPOINT = VARIANTS["lite0"].checkpoint_path()


def _raw_pixels(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Stretch to size x size with bilinear interpolation, keeping 0-255 values."""
    resized = resize(image, (size, size), order=1, preserve_range=True, anti_aliasing=False)
    return resized.astype(np.float32)


@pytest.fixture(scope="module")
def backbone() -> keras.Model:
    return build_efficientnet_lite("lite0", image_size=192)


@pytest.mark.slow  # builds each variant with its weights: seconds
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pretrained_weights_recognise_imagenet_photos(variant: str) -> None:
    classifier = build_efficientnet_lite(variant, include_top=True)
    images = np.stack([_raw_pixels(data.chelsea()), _raw_pixels(data.coffee())])
    top1 = classifier.predict(images, verbose=0).argmax(axis=1)
    assert 281 <= top1[0] <= 285, f"chelsea is a cat, got class {top1[0]}"
    assert top1[1] in {967, 968, 504}, f"coffee is espresso/cup, got class {top1[1]}"


def test_backbone_outputs_pooled_features(backbone: keras.Model) -> None:
    assert backbone.output_shape == (None, 1280)
    assert backbone.count_params() == 3_413_024
    features = backbone.predict(_raw_pixels(data.chelsea(), 192)[None], verbose=0)
    assert features.shape == (1, 1280)
    assert (features >= 0).all() and (features <= 6).all()  # pooled ReLU6


# Published sizes with the 1000-class top: Lite0 4.7 M, Lite1 5.4 M, Lite2 6.1 M parameters.
@pytest.mark.parametrize(
    ("variant", "blocks", "last_stage", "parameters"),
    [("lite0", 16, 320, 4_694_024), ("lite1", 21, 320, 5_470_344), ("lite2", 21, 352, 6_150_168)],
)
def test_variants_scale_the_b0_table(
    variant: str, blocks: int, last_stage: int, parameters: int
) -> None:
    lite = VARIANTS[variant]
    assert len(lite.block_names) == blocks
    assert lite.block_names[:2] == ("block1a", "block2a")
    assert lite.block_names[-1] == "block7a"  # the last stage keeps its single block
    assert lite.stages[-1].channels == last_stage
    model = build_efficientnet_lite(variant, pretrained=False, include_top=True)
    assert block_names(model) == lite.block_names
    assert model.count_params() == parameters


def test_loader_rejects_a_model_that_does_not_match_the_checkpoint() -> None:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(32, 3, strides=2, use_bias=False, name="stem_conv")(inputs)
    stem_only = keras.Model(inputs, x)
    with pytest.raises(ValueError, match="not loaded into the model"):
        load_pretrained_weights(stem_only, CHECKPOINT)

    unknown = keras.Model(inputs, keras.layers.Dense(4, name="mystery")(inputs))
    with pytest.raises(ValueError, match="no checkpoint tensor for Keras layer 'mystery'"):
        load_pretrained_weights(unknown, CHECKPOINT)


def _trainable_layer_names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


def test_set_trainable_top_blocks_unfreezes_only_top_blocks_and_head(backbone: keras.Model):
    set_trainable_top_blocks(backbone, 2)
    trainable = _trainable_layer_names(backbone)
    assert trainable
    assert all(name.startswith(("block7a_", "block6d_", "head_")) for name in trainable)
    assert {"block7a_dwconv", "block6d_expand_conv", "head_conv", "head_bn"} <= trainable
    assert not backbone.get_layer("block6c_bn").trainable
    assert not backbone.get_layer("stem_conv").trainable

    set_trainable_top_blocks(backbone, 0)
    assert _trainable_layer_names(backbone) == {"head_conv", "head_bn"}

    set_trainable_top_blocks(backbone, len(block_names(backbone)))
    assert all("moving_" in w.path for w in backbone.non_trainable_weights)

    with pytest.raises(ValueError, match="n_blocks"):
        set_trainable_top_blocks(backbone, len(block_names(backbone)) + 1)


def test_frozen_batchnorm_keeps_imagenet_statistics(backbone: keras.Model) -> None:
    set_trainable_top_blocks(backbone, 1)
    frozen_bn, trained_bn = backbone.get_layer("block6d_bn"), backbone.get_layer("block7a_bn")
    before = [bn.moving_mean.numpy() for bn in (frozen_bn, trained_bn)]
    backbone(np.random.default_rng(0).uniform(0, 255, (2, 192, 192, 3)), training=True)
    np.testing.assert_array_equal(frozen_bn.moving_mean.numpy(), before[0])
    assert not np.allclose(trained_bn.moving_mean.numpy(), before[1])

    set_trainable_top_blocks(backbone, 1, freeze_batchnorm=True)
    assert not backbone.get_layer("block7a_bn").trainable
    assert backbone.get_layer("block7a_dwconv").trainable
    assert not backbone.get_layer("head_bn").trainable
