"""Folding the test-time flips and rotations into an exported file's graph (`--flips N`).

The file takes one image as before; inside, it stacks the first N of `contract.flips.VIEWS`
into one batch, runs the network once over it and averages the outputs. Every client (the
server, the page, MediaPipe on a phone) then gets the average without code of its own, at about
N times the inference. The views are `contract.flips.flipped_views`'s, in its order and by the same
`view_of`, so the file equals averaging outside it (tests/test_flips.py).
"""

from __future__ import annotations

from contract.flips import VIEWS, check_flips, view_of


def averaged_over_views(model, flips: int):
    """A Keras model: `model`'s outputs averaged over the first `flips` views of its square
    input; `model` itself when `flips` is 1."""
    import keras
    from keras import ops

    check_flips(flips)
    if flips == 1:
        return model
    height, width = model.input_shape[1:3]
    if height != width:
        raise ValueError(f"flips need a square input, not {height}x{width}")
    image = keras.Input(shape=model.input_shape[1:], name="image")
    views = [view_of(image, view, ops.flip, ops.transpose) for view in VIEWS[:flips]]
    outputs = model(ops.concatenate(views, axis=0))  # one batch: the weights once in the file
    averaged = ops.mean(ops.reshape(outputs, (flips, -1, outputs.shape[-1])), axis=0)
    return keras.Model(image, averaged, name=f"{model.name}_flips{flips}")
