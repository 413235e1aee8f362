"""Grouped bootstrap intervals: against a slow reference, and what makes them honest."""

from __future__ import annotations

import numpy as np
import pytest

from train import metrics
from train.bootstrap import grouped_bootstrap_intervals
from train.taxonomy import LABELS


def noisy_predictions(n_images: int, accuracy: float, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(LABELS), n_images)
    predicted = np.where(rng.random(n_images) < accuracy, y, rng.integers(0, len(LABELS), n_images))
    probs = np.full((n_images, len(LABELS)), 0.02)
    probs[np.arange(n_images), predicted] = 1 - 0.02 * (len(LABELS) - 1)
    return y, probs


def width(interval: list[float]) -> float:
    return interval[1] - interval[0]


def test_matches_resampling_groups_one_by_one():
    y, probs = noisy_predictions(120, 0.6, seed=1)
    groups = np.arange(120) // 3  # three images per lesion
    got = grouped_bootstrap_intervals(y, probs, groups, threshold=0.5, resamples=300, seed=7)

    # The same draws, done slowly: gather each drawn group's images and score them.
    rng = np.random.default_rng(7)
    draws = rng.integers(0, 40, size=(300, 40))
    balanced, sensitivity = [], []
    for row in draws:
        rows = np.concatenate([np.flatnonzero(groups == g) for g in row])
        balanced.append(metrics.balanced_accuracy(y[rows], probs[rows].argmax(1)))
        sensitivity.append(
            metrics.sensitivity_specificity(y[rows], probs[rows], 0.5)["sensitivity"]
        )
    assert got["balanced_accuracy"] == pytest.approx(np.quantile(balanced, [0.025, 0.975]))
    assert got["malignant_sensitivity"] == pytest.approx(np.quantile(sensitivity, [0.025, 0.975]))


def test_interval_holds_the_estimate_and_narrows_with_more_groups():
    small_y, small_probs = noisy_predictions(100, 0.7, seed=2)
    large_y, large_probs = noisy_predictions(3000, 0.7, seed=2)
    small = grouped_bootstrap_intervals(small_y, small_probs, np.arange(100), 0.5)
    large = grouped_bootstrap_intervals(large_y, large_probs, np.arange(3000), 0.5)
    estimate = metrics.balanced_accuracy(large_y, large_probs.argmax(1))
    assert large["balanced_accuracy"][0] < estimate < large["balanced_accuracy"][1]
    assert width(large["balanced_accuracy"]) < width(small["balanced_accuracy"]) / 3


def test_copies_of_one_lesion_do_not_count_as_evidence():
    y, probs = noisy_predictions(100, 0.7, seed=3)
    copies = 5
    y5, probs5 = np.repeat(y, copies), np.repeat(probs, copies, axis=0)
    as_groups = grouped_bootstrap_intervals(y5, probs5, np.repeat(np.arange(100), copies), 0.5)
    as_images = grouped_bootstrap_intervals(y5, probs5, np.arange(100 * copies), 0.5)
    assert width(as_groups["balanced_accuracy"]) > 1.8 * width(as_images["balanced_accuracy"])


def test_perfect_predictions_have_a_point_interval_and_the_seed_fixes_the_result():
    y = np.tile(np.arange(len(LABELS)), 10)
    probs = np.eye(len(LABELS))[y]
    perfect = grouped_bootstrap_intervals(y, probs, np.arange(len(y)), 0.5)
    assert perfect == {
        "balanced_accuracy": [1.0, 1.0],
        "malignant_sensitivity": [1.0, 1.0],
        "malignant_specificity": [1.0, 1.0],
    }
    y, probs = noisy_predictions(200, 0.5, seed=4)
    groups = np.arange(200) // 2
    assert grouped_bootstrap_intervals(y, probs, groups, 0.3, seed=5) == (
        grouped_bootstrap_intervals(y, probs, groups, 0.3, seed=5)
    )


def test_no_predictions_is_an_error():
    with pytest.raises(ValueError, match="no predictions"):
        grouped_bootstrap_intervals(
            np.array([], int), np.zeros((0, len(LABELS))), np.array([]), 0.5
        )
