"""Confidence intervals for the headline metrics, by resampling whole lesions / patients.

A test split of 273 phone images holds 7 melanomas: a point estimate alone overstates what we
know. Images of one lesion (or one patient, or a PAD photo and its cut-out) are not independent,
so the bootstrap draws groups, the unit the split keeps apart, not images.
"""

from __future__ import annotations

import numpy as np

from contract.metrics import is_malignant, malignant_probability
from contract.taxonomy import LABELS

RESAMPLES = 2000


def grouped_bootstrap_intervals(
    y_true: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    threshold: float | np.ndarray,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of balanced accuracy, malignant AUC and malignant sensitivity /
    specificity (at `threshold`, one or one per image) over `resamples` draws of the groups with
    replacement."""
    weights = _group_weights(y_true, groups, resamples, seed)
    tail = (1 - level) / 2
    draws = _metric_draws(weights, y_true, probs, threshold)
    return {name: _interval(values, tail) for name, values in draws.items()}


def paired_difference_intervals(
    y_true: np.ndarray,
    groups: np.ndarray,
    a: tuple[np.ndarray, float | np.ndarray],
    b: tuple[np.ndarray, float | np.ndarray],
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float | list[float]]]:
    """Each metric of two models' (probabilities, threshold) on the same images, and B minus A
    with a percentile interval from the same group draws for both: is B's lead more than noise?"""
    resampled = _group_weights(y_true, groups, resamples, seed)
    weights = np.vstack([np.ones(len(y_true)), resampled])  # row 0: the images as they are
    draws_a, draws_b = _metric_draws(weights, y_true, *a), _metric_draws(weights, y_true, *b)
    tail = (1 - level) / 2
    result = {}
    for name in draws_a:
        differences = draws_b[name][1:] - draws_a[name][1:]
        result[name] = {
            "a": float(draws_a[name][0]),
            "b": float(draws_b[name][0]),
            "difference": float(draws_b[name][0] - draws_a[name][0]),
            "interval": _interval(differences, tail),
            "b_ahead": float(np.mean(differences[np.isfinite(differences)] > 0)),
        }
    return result


def confident_threshold(
    y_true: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    target: float,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """The largest threshold on P(malignant) whose sensitivity has a one-sided `level` lower
    bound at `target` or above, and that bound.

    On average over val is not enough for a screening aid: the threshold must hold on patients
    the model has not seen, and val is one small draw of them. The bound is the lower of two:
    the bootstrap over whole lesions / patients (images of one patient are not independent),
    and the exact binomial (Clopper-Pearson) bound with one trial per malignant lesion or
    patient, which stays honest where the bootstrap cannot, e.g. 5 of 5 caught. When no
    threshold reaches the target that way (a small val split), the lowest malignant score is
    returned: everything val shows as malignant is referred.
    """
    from scipy.stats import beta

    truth = is_malignant(y_true)
    scores = malignant_probability(probs)
    candidates = np.unique(scores[truth])[::-1]  # high to low: the first that holds wins
    if len(candidates) == 0:
        return 0.5, float("nan")
    weights = _group_weights(y_true, groups, resamples, seed)[:, truth]
    caught = scores[truth][:, None] >= candidates[None, :]  # malignant images x thresholds
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (weights @ caught) / weights.sum(axis=1, keepdims=True)
    bootstrap = np.array([_interval(column, 1 - level)[0] for column in sensitivity.T])
    trials = len(np.unique(np.asarray(groups)[truth]))
    successes = np.floor(caught.mean(axis=0) * trials + 1e-9)
    exact = np.where(successes > 0, beta.ppf(1 - level, successes, trials - successes + 1), 0.0)
    lower = np.minimum(bootstrap, exact)
    holding = np.flatnonzero(lower >= target)
    index = int(holding[0]) if len(holding) else len(candidates) - 1
    return float(candidates[index]), float(lower[index])


def _group_weights(y_true: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """How often each image is drawn (resamples x images) when whole groups are drawn."""
    if len(y_true) == 0:
        raise ValueError("no predictions to resample")
    _, group_of_image = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_of_image.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    group_counts = np.stack([np.bincount(row, minlength=n_groups) for row in draws])
    return group_counts[:, group_of_image].astype(np.float64)


def _metric_draws(
    weights: np.ndarray, y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray
) -> dict[str, np.ndarray]:
    """Balanced accuracy, malignant AUC and malignant sensitivity / specificity under each row
    of weights."""
    n = len(LABELS)
    cells = np.zeros((len(y_true), n * n))
    cells[np.arange(len(y_true)), y_true * n + probs.argmax(axis=1)] = 1
    matrices = (weights @ cells).reshape(len(weights), n, n)
    support = matrices.sum(axis=2)
    hits = np.diagonal(matrices, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
        balanced = np.nanmean(recall, axis=1)
        flagged = malignant_probability(probs) >= threshold
        truth = is_malignant(y_true)
        sensitivity = weights[:, truth & flagged].sum(1) / weights[:, truth].sum(1)
        specificity = weights[:, ~truth & ~flagged].sum(1) / weights[:, ~truth].sum(1)
    return {
        "balanced_accuracy": balanced,
        "malignant_auc": _weighted_auc(weights, malignant_probability(probs), truth),
        "malignant_sensitivity": sensitivity,
        "malignant_specificity": specificity,
    }


def _weighted_auc(weights: np.ndarray, scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """The rank-sum AUC (ties counted half, as `contract.metrics.binary_auc`) under each row of
    weights: each image counts as often as its group was drawn."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # blocks of tied scores
    drawn = weights[:, order]
    pos = np.add.reduceat(drawn * positive[order], starts, axis=1)
    neg = np.add.reduceat(drawn * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _interval(values: np.ndarray, tail: float) -> list[float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return [float("nan"), float("nan")]
    return [float(np.quantile(finite, tail)), float(np.quantile(finite, 1 - tail))]
