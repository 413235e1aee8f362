"""Bias correction before int8 conversion: weights on TFLite's grid, channel means restored."""

from __future__ import annotations

import numpy as np
import pytest

from export.bias_correction import bias_corrected, conv_batchnorm_pairs, round_to_int8_grid

SIZE = 32


def test_rounding_uses_127_steps_per_output_channel():
    kernel = np.array([[0.5, -2.0], [0.25, 1.0], [-0.126, 0.0]], np.float32)  # (in, out)
    rounded = round_to_int8_grid(kernel, channel_axis=1)
    steps = rounded / (np.abs(kernel).max(axis=0) / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    assert steps[0, 0] == pytest.approx(127) and steps[0, 1] == pytest.approx(-127)
    np.testing.assert_array_equal(round_to_int8_grid(rounded, 1), rounded)  # idempotent


def test_rounding_goes_half_away_from_zero_as_tflite_does():
    kernel = np.array([[127.0], [2.5], [-2.5], [0.0]], np.float32)  # step 1.0
    assert round_to_int8_grid(kernel, 1).ravel().tolist() == [127.0, 3.0, -3.0, 0.0]


def images(count: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3)).astype(np.uint8)


def classifier(seed: int):
    import keras

    from train.model.backbones import BACKBONES
    from train.model.network import build_classifier

    keras.utils.set_random_seed(seed)
    return build_classifier(BACKBONES["tiny_cnn"], SIZE, 0.1)


def test_pairs_are_found_inside_nested_networks_and_ensembles():
    from train.model.averaging import build_ensemble

    single = classifier(0)
    assert [(c.name, b.name) for _, c, b in conv_batchnorm_pairs(single)] == [
        (f"conv{i}", f"bn{i}") for i in range(len(conv_batchnorm_pairs(single)))
    ]
    ensemble = build_ensemble([single, classifier(1)], SIZE)
    assert len(conv_batchnorm_pairs(ensemble)) == 2 * len(conv_batchnorm_pairs(single))


def bn_input_means(model, x: np.ndarray) -> list[np.ndarray]:
    import keras

    means = []
    for graph, conv, _ in conv_batchnorm_pairs(model):
        out = keras.Model(graph.input, conv.output).predict(x, verbose=0)
        means.append(out.reshape(-1, out.shape[-1]).mean(0))
    return means


def bn_moving_means(model) -> list[np.ndarray]:
    return [bn.moving_mean.numpy() for _, _, bn in conv_batchnorm_pairs(model)]


@pytest.mark.slow  # builds networks and an ensemble: seconds
@pytest.mark.parametrize("members", [1, 2], ids=["network", "ensemble"])
def test_correction_moves_the_rounding_shift_into_the_batchnorm_means(members: int):
    """In an ensemble each member's backbone has the same name; each keeps its own shifts."""
    from train.model.averaging import build_ensemble

    networks = [classifier(2 + i) for i in range(members)]
    model = networks[0] if members == 1 else build_ensemble(networks, SIZE)
    x = images()
    before = [w.copy() for w in model.get_weights()]
    corrected = bias_corrected(model, x)

    for _, conv, _ in conv_batchnorm_pairs(corrected):
        kernel = conv.get_weights()[0]
        np.testing.assert_array_equal(round_to_int8_grid(kernel, 3), kernel)
    # Each BatchNormalization's mean moved by exactly the shift its input shows on the images.
    pairs = zip(bn_input_means(corrected, x), bn_input_means(model, x), strict=True)
    shifts = [rounded - exact for rounded, exact in pairs]
    means = zip(bn_moving_means(corrected), bn_moving_means(model), strict=True)
    moved = [new - old for new, old in means]
    assert any(np.abs(s).max() > 1e-6 for s in shifts)
    for shift, move in zip(shifts, moved, strict=True):
        np.testing.assert_allclose(move, shift, atol=1e-5)
    # The original model is untouched.
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.slow  # builds a network: seconds
def test_correction_brings_rounded_outputs_closer_to_float():
    """Against rounding alone, on the images it was measured on."""
    import keras

    model = classifier(3)
    x = images(48, seed=1)
    corrected = bias_corrected(model, x)
    rounded = keras.models.clone_model(model)
    rounded.set_weights(model.get_weights())
    for _, conv, _ in conv_batchnorm_pairs(rounded):
        kernel, *rest = conv.get_weights()
        conv.set_weights([round_to_int8_grid(kernel, 3), *rest])
    reference = model.predict(x, verbose=0)
    error_rounded = np.abs(rounded.predict(x, verbose=0) - reference).mean()
    error_corrected = np.abs(corrected.predict(x, verbose=0) - reference).mean()
    assert error_corrected < error_rounded


def test_a_network_that_does_not_take_the_image_is_refused():
    import keras

    inner_in = keras.Input((SIZE // 2, SIZE // 2, 4))
    y = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inner_in)
    inner = keras.Model(inner_in, keras.layers.BatchNormalization()(y), name="inner")
    outer_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(outer_in)
    model = keras.Model(outer_in, inner(x))
    with pytest.raises(ValueError, match="needs inner to take the image"):
        bias_corrected(model, images(4))


def test_a_network_nested_in_one_with_convolutions_is_refused():
    """Its corrections would come after the outer network's convolutions that follow it."""
    import keras

    inner_in = keras.Input((SIZE, SIZE, 3))
    y = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)(inner_in)
    inner = keras.Model(inner_in, keras.layers.BatchNormalization()(y), name="inner")
    outer_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inner(outer_in))
    model = keras.Model(outer_in, keras.layers.BatchNormalization()(x), name="outer")
    with pytest.raises(ValueError, match="outer to hold no network with convolutions"):
        bias_corrected(model, images(4))


def test_depthwise_kernels_get_one_scale_per_output_channel():
    """With a depth multiplier, each input channel makes several output channels, each with
    its own scale in TFLite."""
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(x))
    corrected = bias_corrected(model, images(8))
    kernel = corrected.get_layer("dw").get_weights()[0]  # (3, 3, 3 channels, 2)
    outputs = kernel.reshape(3, 3, 6)
    steps = outputs / (np.abs(outputs).max(axis=(0, 1)) / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.abs(steps).max(axis=(0, 1)) == pytest.approx([127] * 6)
