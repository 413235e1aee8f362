"""How predictions are scored, in plain numpy: the formulas every stage reports and compares.

Training and evaluation report them in the model card and metrics.json; export verification
compares an exported file with its Keras model by them. Plain accuracy hides a model that calls
everything a mole, so everything here is per class: balanced accuracy (mean recall over the
classes present), per-class recall, macro one-vs-rest AUC, malignant sensitivity/specificity at a
threshold on P(malignant), and calibration error; and, for the segmenter, per-image Dice and
Jaccard of two masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contract import screening
from contract.taxonomy import LABELS, MALIGNANT


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(LABELS)) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Recall of each class that has at least one true example."""
    matrix = confusion_matrix(y_true, y_pred)
    support = matrix.sum(axis=1)
    return {LABELS[i]: float(matrix[i, i] / support[i]) for i in range(len(LABELS)) if support[i]}


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    recalls = per_class_recall(y_true, y_pred)
    return float(np.mean(list(recalls.values()))) if recalls else float("nan")


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic, ties averaged."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_ovr_auc(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """One-vs-rest AUC per class present, plus their mean under "macro"."""
    per_class = {
        LABELS[i]: binary_auc(probs[:, i], y_true == i)
        for i in range(len(LABELS))
        if 0 < (y_true == i).sum() < len(y_true)
    }
    values = [v for v in per_class.values() if not np.isnan(v)]
    return {"macro": float(np.mean(values)) if values else float("nan"), **per_class}


def malignant_probability(probs: np.ndarray) -> np.ndarray:
    """P(malignant) = P(mel) + P(bcc) + P(akiec), as `contract.screening` computes it."""
    return screening.malignant_probability(probs, LABELS, MALIGNANT)


def is_malignant(y_true: np.ndarray) -> np.ndarray:
    return np.isin(y_true, [LABELS.index(c) for c in MALIGNANT])


def malignant_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """How well P(malignant) ranks malignant above benign, whatever the threshold: what limits
    the triage's specificity at a given sensitivity."""
    return binary_auc(malignant_probability(probs), is_malignant(y_true))


def sensitivity_specificity(
    y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray
) -> dict[str, float | None]:
    """Triage at one threshold, or one per image (each photo its kind's own, `contract.triage`);
    the threshold is reported when all images share it, else None."""
    flagged = screening.refer(malignant_probability(probs), threshold)
    truth = is_malignant(y_true)
    sens = flagged[truth].mean() if truth.any() else float("nan")
    spec = (~flagged[~truth]).mean() if (~truth).any() else float("nan")
    shared = np.unique(np.asarray(threshold, dtype=np.float64))
    return {
        "threshold": float(shared[0]) if len(shared) == 1 else None,
        "sensitivity": float(sens),
        "specificity": float(spec),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray
) -> dict[str, object]:
    """Everything the model card reports for one set of predictions."""
    y_pred = probs.argmax(axis=1)
    return {
        "n": int(len(y_true)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "per_class_recall": per_class_recall(y_true, y_pred),
        "auc_ovr": macro_ovr_auc(y_true, probs),
        "malignant_auc": malignant_auc(y_true, probs),
        "malignant": sensitivity_specificity(y_true, probs, threshold),
        "ece": expected_calibration_error(y_true, probs),
        "confusion_matrix": {
            "labels": list(LABELS),
            "rows_true_cols_pred": confusion_matrix(y_true, y_pred).tolist(),
        },
    }


CUTOUTS = "cut-outs"


def domain_scopes(
    domains: Sequence[str], cutouts: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """What every report is broken down by, as boolean masks: "overall", then each domain, over
    the photos people send; cut-outs (background blacked out, `contract.lesion_gate.is_cutout`),
    which no camera sends, only in a scope of their own ("phone cut-outs")."""
    domains = np.asarray(domains)
    cut = np.zeros(len(domains), bool) if cutouts is None else np.asarray(cutouts, bool)
    scopes = {"overall": ~cut}
    scopes.update({d: (domains == d) & ~cut for d in sorted(set(domains[~cut].tolist()))})
    cut_domains = sorted(set(domains[cut].tolist()))
    scopes.update({f"{d} {CUTOUTS}": (domains == d) & cut for d in cut_domains})
    return scopes


def report_by_domain(
    y_true: np.ndarray,
    probs: np.ndarray,
    domains: Sequence[str],
    threshold: float | np.ndarray,
    cutouts: np.ndarray | None = None,
) -> dict[str, dict[str, object]]:
    """The report for each of `domain_scopes`; `threshold` is one for all images or one per
    image."""
    per_image = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(y_true),))
    return {
        scope: classification_report(y_true[mask], probs[mask], per_image[mask])
        for scope, mask in domain_scopes(domains, cutouts).items()
    }


def summary_line(report: dict) -> str:
    """One human-readable line of a `classification_report`, for logs."""
    return (
        f"n={report['n']} balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"AUC {report['auc_ovr']['macro']:.4f}, malignant sensitivity "
        f"{report['malignant']['sensitivity']:.3f} specificity "
        f"{report['malignant']['specificity']:.3f}, ECE {report['ece']:.4f}"
    )


def dice_jaccard(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and Jaccard of boolean masks (N, H, W); both empty scores 1."""
    truth = truth.reshape(len(truth), -1).astype(bool)
    predicted = predicted.reshape(len(predicted), -1).astype(bool)
    overlap = (truth & predicted).sum(axis=1).astype(np.float64)
    union = (truth | predicted).sum(axis=1).astype(np.float64)
    total = truth.sum(axis=1) + predicted.sum(axis=1).astype(np.float64)
    dice = np.where(total > 0, 2 * overlap / np.maximum(total, 1), 1.0)
    jaccard = np.where(union > 0, overlap / np.maximum(union, 1), 1.0)
    return dice, jaccard
