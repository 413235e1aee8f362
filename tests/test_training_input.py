"""The training input pipeline: balancing by loss weights or by resampling."""

from __future__ import annotations

import numpy as np
import pytest

from train.data.pipeline import one_hot, training_dataset

N_COMMON, N_RARE = 90, 10


@pytest.fixture()
def imbalanced():
    """Image i is filled with the value i, so a batch tells which images were drawn."""
    pixels = np.arange(N_COMMON + N_RARE, dtype=np.uint8)[:, None, None, None]
    pixels = pixels * np.ones((1, 4, 4, 3), np.uint8)
    labels = np.array([0] * N_COMMON + [1] * N_RARE, np.int32)
    weights = np.where(labels == 0, 1 / N_COMMON, 1 / N_RARE).astype(np.float32)
    return pixels, labels, weights / weights.mean()


def drawn(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = [(x.numpy(), y.numpy(), w.numpy()) for x, y, w in dataset]
    ids = np.concatenate([x for x, _, _ in batches])[:, 0, 0, 0].astype(int)
    classes = np.concatenate([y for _, y, _ in batches]).argmax(1)
    return ids, classes, np.concatenate([w for _, _, w in batches])


def test_loss_weighting_shows_each_image_once_with_its_weight(imbalanced):
    pixels, labels, weights = imbalanced
    ids, classes, loss_weights = drawn(
        training_dataset(pixels, one_hot(labels), weights, 16, False, 0)
    )
    assert sorted(ids) == list(range(len(labels)))
    np.testing.assert_array_equal(classes, labels[ids])
    np.testing.assert_allclose(loss_weights, weights[ids])


def test_resampling_draws_strata_equally_and_anew_each_epoch(imbalanced):
    pixels, labels, weights = imbalanced
    dataset = training_dataset(pixels, one_hot(labels), weights, 16, False, 0, resample=True)
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
    dataset = training_dataset(pixels, targets, weights, 16, False, 0, resample=resample)
    batches = [(x.numpy(), y.numpy()) for x, y, _ in dataset]
    ids = np.concatenate([x for x, _ in batches])[:, 0, 0, 0].astype(int)
    np.testing.assert_allclose(np.concatenate([y for _, y in batches]), targets[ids], atol=1e-6)
