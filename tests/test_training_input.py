"""The training input pipeline (a keras.utils.PyDataset, no TensorFlow): balancing by loss
weights or by resampling, batches fixed by (seed, epoch, batch number)."""

from __future__ import annotations

import numpy as np
import pytest

from train.data.pipeline import TrainingBatches, one_hot

N_COMMON, N_RARE = 90, 10


@pytest.fixture()
def imbalanced():
    """Image i is filled with the value i, so a batch tells which images were drawn."""
    pixels = np.arange(N_COMMON + N_RARE, dtype=np.uint8)[:, None, None, None]
    pixels = pixels * np.ones((1, 4, 4, 3), np.uint8)
    labels = np.array([0] * N_COMMON + [1] * N_RARE, np.int32)
    weights = np.where(labels == 0, 1 / N_COMMON, 1 / N_RARE).astype(np.float32)
    return pixels, labels, weights / weights.mean()


def epoch(dataset) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch's batches, as `fit` reads them (the epoch advances at its end)."""
    batches = [dataset[i] for i in range(len(dataset))]
    dataset.on_epoch_end()
    return batches


def drawn(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = epoch(dataset)
    ids = np.concatenate([x for x, _, _ in batches])[:, 0, 0, 0].astype(int)
    classes = np.concatenate([y for _, y, _ in batches]).argmax(1)
    return ids, classes, np.concatenate([w for _, _, w in batches])


def test_loss_weighting_shows_each_image_once_with_its_weight(imbalanced):
    pixels, labels, weights = imbalanced
    ids, classes, loss_weights = drawn(
        TrainingBatches(pixels, one_hot(labels), weights, 16, False, 0)
    )
    assert sorted(ids) == list(range(len(labels)))
    np.testing.assert_array_equal(classes, labels[ids])
    np.testing.assert_allclose(loss_weights, weights[ids])


def test_resampling_draws_strata_equally_and_anew_each_epoch(imbalanced):
    pixels, labels, weights = imbalanced
    dataset = TrainingBatches(pixels, one_hot(labels), weights, 16, False, 0, resample=True)
    epochs = [drawn(dataset) for _ in range(4)]
    for ids, classes, loss_weights in epochs:
        assert len(ids) == len(labels)
        np.testing.assert_array_equal(classes, labels[ids])
        np.testing.assert_array_equal(loss_weights, 1.0)
    rare_share = np.mean([classes.mean() for _, classes, _ in epochs])
    assert 0.35 < rare_share < 0.65  # 0.1 without resampling
    assert not np.array_equal(epochs[0][0], epochs[1][0])


@pytest.mark.parametrize("resample", [False, True])
def test_soft_targets_travel_with_their_image(imbalanced, resample):
    """Distillation targets (label mixed with a teacher) must stay with the image they describe."""
    pixels, labels, weights = imbalanced
    targets = np.random.default_rng(0).dirichlet(np.ones(7), size=len(labels)).astype(np.float32)
    dataset = TrainingBatches(pixels, targets, weights, 16, False, 0, resample=resample)
    batches = epoch(dataset)
    ids = np.concatenate([x for x, _, _ in batches])[:, 0, 0, 0].astype(int)
    np.testing.assert_allclose(np.concatenate([y for _, y, _ in batches]), targets[ids], atol=1e-6)


@pytest.mark.parametrize("resample", [False, True])
def test_batches_depend_on_seed_epoch_and_number_only(imbalanced, resample):
    """What a batch holds (images, JPEG recompression included) does not depend on the order
    the worker threads fetch it in, and a resumed run (set_epoch) draws what an uninterrupted
    one would have."""
    pixels, labels, weights = imbalanced
    pixels = np.random.default_rng(1).integers(0, 256, (len(labels), 16, 16, 3), np.uint8)

    def dataset():
        return TrainingBatches(pixels, one_hot(labels), weights, 16, True, 5, resample=resample)

    first, second = dataset(), dataset()
    uninterrupted = [epoch(first) for _ in range(3)]
    second.set_epoch(2)
    backwards = [second[i] for i in reversed(range(len(second)))][::-1]
    for got, expected in zip(backwards, uninterrupted[2], strict=True):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(uninterrupted[0][0][0], uninterrupted[1][0][0])
    # augmented: every image went through a JPEG round trip
    assert not np.array_equal(uninterrupted[0][0][0], pixels[: len(uninterrupted[0][0][0])])


def test_data_parallel_batches_share_evenly(imbalanced):
    """With n devices, the last partial batch is cut to a multiple of n (100 = 6 x 16 + 4)."""
    pixels, labels, weights = imbalanced
    for devices, last in ((1, 4), (3, 3), (8, None)):
        dataset = TrainingBatches(
            pixels, one_hot(labels), weights, 16, False, 0, multiple_of=devices
        )
        sizes = [len(x) for x, _, _ in epoch(dataset)]
        assert sizes == [16] * 6 + ([last] if last else [])


@pytest.mark.parametrize("resample", [False, True])
def test_processes_feed_their_slices_of_the_whole_batch(imbalanced, resample):
    """Several hosts (`part`): each process's batch is its slice of the one-process batch, JPEG
    recompression and weights included, so together they train on what one process would."""
    pixels, labels, weights = imbalanced
    pixels = np.random.default_rng(2).integers(0, 256, (len(labels), 16, 16, 3), np.uint8)

    def batches(part):
        dataset = TrainingBatches(
            pixels, one_hot(labels), weights, 16, True, 7, resample, 4, part=part
        )
        return epoch(dataset)

    whole = batches((0, 1))
    parts = [batches((i, 2)) for i in range(2)]
    assert [len(x) for x, _, _ in whole] == [16] * 6 + [4]
    for got, expected in zip(zip(*parts, strict=True), whole, strict=True):
        for first, second, full in zip(*got, expected, strict=True):
            assert len(first) == len(second) == len(full) // 2
            np.testing.assert_array_equal(np.concatenate([first, second]), full)


def test_a_batch_that_does_not_split_between_the_processes_is_refused(imbalanced):
    pixels, labels, weights = imbalanced
    dataset = TrainingBatches(pixels, one_hot(labels), weights, 15, False, 0, part=(0, 2))
    with pytest.raises(ValueError, match="does not split between 2"):
        dataset[0]
