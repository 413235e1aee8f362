"""PNG plots for an evaluation: confusion matrix, ROC per class, reliability diagram."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from contract import metrics  # noqa: E402
from contract.taxonomy import LABELS  # noqa: E402


def plot_confusion(y: np.ndarray, probs: np.ndarray, title: str, path: Path) -> None:
    matrix = metrics.confusion_matrix(y, probs.argmax(1))
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if normalised[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (colour: row-normalised recall)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="mergesort")
    hits = positive[order]
    tpr = np.concatenate([[0], np.cumsum(hits) / max(hits.sum(), 1)])
    fpr = np.concatenate([[0], np.cumsum(~hits) / max((~hits).sum(), 1)])
    return fpr, tpr


def plot_roc(y: np.ndarray, probs: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for i, code in enumerate(LABELS):
        positive = y == i
        if 0 < positive.sum() < len(y):
            fpr, tpr = _roc_curve(probs[:, i], positive)
            ax.plot(fpr, tpr, label=f"{code} (AUC {metrics.binary_auc(probs[:, i], positive):.3f})")
    malignant = metrics.is_malignant(y)
    if 0 < malignant.sum() < len(y):
        p_mal = metrics.malignant_probability(probs)
        fpr, tpr = _roc_curve(p_mal, malignant)
        ax.plot(
            fpr, tpr, "k--", label=f"malignant (AUC {metrics.binary_auc(p_mal, malignant):.3f})"
        )
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(
    y: np.ndarray, probs: np.ndarray, title: str, path: Path, bins: int = 15
) -> None:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    centres, accuracy, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            centres.append(confidence[in_bin].mean())
            accuracy.append(correct[in_bin].mean())
            counts.append(in_bin.sum())
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, label="perfect calibration")
    ax.scatter(centres, accuracy, s=np.sqrt(counts) * 6, label="bins (area ~ count)")
    ax.plot(centres, accuracy)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {metrics.expected_calibration_error(y, probs):.4f}")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
