"""From a model's raw probabilities to a screening answer: calibration, P(malignant), triage.

Training fits the temperature and threshold with these functions, evaluation scores with them,
and the server answers with them, so a threshold means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.answers import PHOTO_AND_ANSWERS, PHOTO_ONLY
from contract.triage import TriageThresholds

PROBABILITY_FLOOR = 1e-6
REFER = "see_dermatologist"
WATCH = "low_concern"


def apply_temperature(
    probabilities: np.ndarray,
    temperature: float,
    log_ratios: np.ndarray | None = None,
    floor: float = PROBABILITY_FLOOR,
) -> np.ndarray:
    """softmax((log max(p, 1e-6) + log_ratios) / T), row by row, in float64.

    `log_ratios` is the answers' strength * r (`contract.answers`); None is the photo-only result.
    Only distillation, which softens a teacher rather than answering, asks for another floor.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), floor, None)
    logits = np.log(p)
    if log_ratios is not None:
        logits = logits + log_ratios
    logits = logits / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def malignant_columns(labels: Sequence[str], malignant: Sequence[str]) -> list[int]:
    return [i for i, code in enumerate(labels) if code in malignant]


def malignant_probability(
    probabilities: np.ndarray, labels: Sequence[str], malignant: Sequence[str]
) -> np.ndarray:
    """P(malignant): the sum over the malignant or pre-malignant classes (last axis)."""
    return np.asarray(probabilities)[..., malignant_columns(labels, malignant)].sum(axis=-1)


def refer(p_malignant: np.ndarray | float, threshold: float | np.ndarray) -> np.ndarray | bool:
    """The triage rule: at or above the threshold, have a dermatologist look at it (one
    threshold, or one per image)."""
    return np.asarray(p_malignant) >= threshold


def standing_thresholds(thresholds: np.ndarray, photo_refers: np.ndarray) -> np.ndarray:
    """Each image's threshold on P(malignant | photo, answers) when the photo's own referral
    stands: 0 (always referred) where the photo alone refers at its photo-only calibration.

    Answers learnt from clinicians' records cost sensitivity on new patients (11 of 120
    malignant phone lesions missed with answers against 5 photo only), so a card may say that
    answers can add a referral but never cancel one (`AnswerSpec.photo_referral_stands`)."""
    return np.where(photo_refers, 0.0, thresholds)


@dataclass(frozen=True)
class Screening:
    """The answer for one image, in the model's label order."""

    probabilities: tuple[float, ...]
    top_index: int
    p_malignant: float
    triage: str
    unsure: bool
    temperature: float
    threshold: float
    source: str = PHOTO_ONLY  # which calibration: photo only, or photo plus answers
    threshold_domain: str | None = None  # whose own threshold; None: the one for any kind
    referred_by_photo: bool = False  # referred only because the photo alone refers


def screen(
    raw: np.ndarray,
    labels: Sequence[str],
    malignant: Sequence[str],
    temperature: float,
    thresholds: TriageThresholds,
    unsure_below: float,
    log_ratios: np.ndarray | None = None,
    domain: str | None = None,
    photo_refers: bool = False,
) -> Screening:
    """Calibrate one image's raw probabilities, then triage at the threshold for the stated kind
    of photo (`domain`, None: not stated); `unsure` when no class reaches `unsure_below`. With
    log ratios, pass the answers' own temperature and thresholds, and `photo_refers` when the
    photo-only screening refers and the card says that referral stands (`standing_thresholds`)."""
    calibrated = apply_temperature(raw, temperature, log_ratios)
    p_malignant = float(malignant_probability(calibrated, labels, malignant))
    top = int(np.argmax(calibrated))
    threshold = thresholds.for_domain(domain)
    referred = bool(refer(p_malignant, standing_thresholds(threshold, photo_refers)))
    return Screening(
        probabilities=tuple(float(p) for p in calibrated),
        top_index=top,
        p_malignant=p_malignant,
        triage=REFER if referred else WATCH,
        unsure=bool(calibrated[top] < unsure_below),
        temperature=temperature,
        threshold=threshold,
        source=PHOTO_ONLY if log_ratios is None else PHOTO_AND_ANSWERS,
        threshold_domain=thresholds.own_domain(domain),
        referred_by_photo=referred and not refer(p_malignant, threshold),
    )
