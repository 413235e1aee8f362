"""Grouped bootstrap intervals: against a slow reference, and what makes them honest."""

from __future__ import annotations

import numpy as np
import pytest

from contract import metrics
from contract.bootstrap import grouped_bootstrap_intervals, paired_difference_intervals
from contract.taxonomy import LABELS


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
        "malignant_auc": [1.0, 1.0],
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


def test_a_model_compared_with_itself_differs_by_exactly_nothing():
    y, probs = noisy_predictions(200, 0.6, seed=4)
    result = paired_difference_intervals(y, np.arange(200) // 2, (probs, 0.5), (probs, 0.5))
    for metric in result.values():
        assert metric["difference"] == 0 and metric["interval"] == [0, 0]
        assert metric["b_ahead"] == 0


def test_a_model_that_fixes_some_errors_leads_beyond_noise():
    y, probs_a = noisy_predictions(400, 0.5, seed=5)
    probs_b = probs_a.copy()
    wrong = np.flatnonzero(probs_a.argmax(1) != y)[:12]  # B gets 12 of A's errors right
    probs_b[wrong] = probs_a[wrong][:, ::-1]  # move the mass off the wrong class ...
    probs_b[wrong, y[wrong]] = 1.0  # ... and onto the true one
    groups = np.arange(400) // 2
    result = paired_difference_intervals(y, groups, (probs_a, 0.5), (probs_b, 0.5))
    bacc = result["balanced_accuracy"]
    expected = metrics.balanced_accuracy(y, probs_b.argmax(1)) - metrics.balanced_accuracy(
        y, probs_a.argmax(1)
    )
    assert bacc["difference"] == pytest.approx(expected) and expected > 0
    assert 0 < bacc["interval"][0] < expected < bacc["interval"][1]
    assert bacc["b_ahead"] == 1.0
    # Pairing is the point: each model's own interval is far wider than their difference's.
    alone = grouped_bootstrap_intervals(y, probs_b, groups, 0.5)
    assert width(bacc["interval"]) < width(alone["balanced_accuracy"]) / 2


def _malignant_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n melanomas whose P(malignant) is spread over 0-1, and n moles near 0."""
    rng = np.random.default_rng(seed)
    mel, nv = LABELS.index("mel"), LABELS.index("nv")
    y = np.array([mel] * n + [nv] * n)
    p_mal = np.concatenate([rng.uniform(0, 1, n), rng.uniform(0, 0.05, n)])
    probs = np.zeros((2 * n, len(LABELS)))
    probs[:, mel], probs[:, nv] = p_mal, 1 - p_mal
    return y, probs


def test_the_confident_threshold_is_below_the_point_estimate_and_its_bound_holds():
    from contract.bootstrap import confident_threshold
    from train.model.calibration import threshold_for_sensitivity

    y, probs = _malignant_scores(400, seed=1)
    groups = np.arange(len(y))
    point = threshold_for_sensitivity(y, probs, 0.9)
    confident, bound = confident_threshold(y, probs, groups, 0.9, resamples=500)
    assert confident < point and bound >= 0.9
    sensitivity = (probs[y == LABELS.index("mel"), LABELS.index("mel")] >= confident).mean()
    assert sensitivity > 0.9  # on these images it over-reaches, as a lower bound must


def test_images_of_one_patient_count_once_for_the_confident_threshold():
    from contract.bootstrap import confident_threshold

    # 60 patients with four photos each that score alike (a photo and its cut-out, say).
    y, probs = _malignant_scores(60, seed=2)
    y, probs = np.repeat(y, 4), np.repeat(probs, 4, axis=0)
    as_if_independent, _ = confident_threshold(y, probs, np.arange(len(y)), 0.9, resamples=500)
    by_patient, _ = confident_threshold(y, probs, np.arange(len(y)) // 4, 0.9, resamples=500)
    assert by_patient < as_if_independent


def test_a_val_split_too_small_for_the_bound_refers_every_malignant_score_it_saw():
    from contract.bootstrap import confident_threshold

    y, probs = _malignant_scores(5, seed=3)
    threshold, bound = confident_threshold(y, probs, np.arange(len(y)), 0.95, resamples=500)
    assert threshold == probs[y == LABELS.index("mel"), LABELS.index("mel")].min()
    assert bound < 0.95


def test_the_resampled_auc_is_the_rank_sum_auc_of_the_drawn_images():
    """Each row of group draws scores as if its images were repeated that often (ties half)."""
    from contract.bootstrap import _group_weights, _weighted_auc
    from contract.metrics import binary_auc

    rng = np.random.default_rng(3)
    scores = np.round(rng.random(120), 1)  # many ties
    positive = rng.random(120) < 0.3
    weights = _group_weights(positive.astype(int), np.arange(120) // 3, 20, seed=1)
    got = _weighted_auc(weights, scores, positive)
    for row, auc in zip(weights, got, strict=True):
        drawn = np.repeat(np.arange(120), row.astype(int))
        assert auc == pytest.approx(binary_auc(scores[drawn], positive[drawn]))
