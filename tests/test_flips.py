"""contract.flips: the test-time flips and rotations, outside a file (train --flips N) and
folded into its graph (export --flips N)."""

from __future__ import annotations

import numpy as np
import pytest

from contract.flips import FLIPS, flipped_views


def test_the_eight_views_are_the_eight_symmetries_of_the_square():
    image = np.arange(2 * 5 * 5 * 3).reshape(2, 5, 5, 3)
    views = flipped_views(image, 8)
    assert len({v.tobytes() for v in views}) == 8  # all different
    assert all(sorted(v.ravel()) == sorted(image.ravel()) for v in views)  # the same pixels
    assert np.array_equal(views[0], image)
    assert np.array_equal(views[1], image[:, :, ::-1])  # mirrored left to right
    assert np.array_equal(views[4], image.transpose(0, 2, 1, 3))
    # Each view is one of the 8 rotations of the image or of its mirror image.
    rotations = [np.rot90(m, k, axes=(1, 2)) for m in (image, image[:, :, ::-1]) for k in range(4)]
    assert {v.tobytes() for v in views} == {np.ascontiguousarray(r).tobytes() for r in rotations}


@pytest.mark.parametrize("flips", FLIPS)
def test_fewer_flips_are_the_first_of_the_eight(flips: int):
    image = np.random.default_rng(0).integers(0, 255, (1, 4, 4, 3), dtype=np.uint8)
    views = flipped_views(image, flips)
    assert len(views) == flips
    assert all(np.array_equal(a, b) for a, b in zip(views, flipped_views(image, 8), strict=False))


def test_other_counts_are_refused():
    with pytest.raises(ValueError, match="flips must be one of"):
        flipped_views(np.zeros((1, 4, 4, 3)), 3)


# --- folded into the file's graph (export.flips, python -m export --flips N) -----------------


@pytest.fixture(scope="module")
def tiny_network():
    import sys

    from conftest import FIXTURES

    sys.path.insert(0, str(FIXTURES))
    from make_demo_models import tiny_keras_model

    return tiny_keras_model(32)


@pytest.mark.parametrize("flips", [2, 4, 8])
def test_flips_in_the_graph_equal_averaging_outside_it(tiny_network, tiny_converter, flips: int):
    from contract.interpreter import predict_tflite
    from export.flips import averaged_over_views

    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    plain = tiny_converter(tiny_network, "float32", 32)
    outside = [predict_tflite(plain, view) for view in flipped_views(images, flips)]
    assert not np.allclose(outside[0], outside[-1], atol=1e-4)  # the views do differ
    folded = tiny_converter(averaged_over_views(tiny_network, flips), "float32", 32)
    inside = predict_tflite(folded, images)
    np.testing.assert_allclose(inside, np.mean(outside, axis=0), atol=1e-6)


def test_a_folded_int8_file_looks_like_the_plain_one_to_a_client(tiny_network, tiny_converter):
    """One uint8 image in, one row of probabilities out: a phone or the page runs it unchanged."""
    from ai_edge_litert.interpreter import Interpreter

    from export.flips import averaged_over_views

    shapes = []
    for network in (tiny_network, averaged_over_views(tiny_network, 8)):
        interpreter = Interpreter(model_content=tiny_converter(network, "uint8", 32))
        (given,), (answered,) = interpreter.get_input_details(), interpreter.get_output_details()
        shapes.append((list(given["shape"]), given["dtype"], list(answered["shape"])))
    assert shapes[0] == shapes[1] == ([1, 32, 32, 3], np.uint8, [1, 7])


def test_one_view_is_the_network_itself_and_a_non_square_input_is_refused(tiny_network):
    import keras

    from export.flips import averaged_over_views

    assert averaged_over_views(tiny_network, 1) is tiny_network
    wide = keras.Sequential([keras.Input((16, 32, 3)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="square input"):
        averaged_over_views(wide, 2)
    with pytest.raises(ValueError, match="flips must be one of"):
        averaged_over_views(tiny_network, 3)
