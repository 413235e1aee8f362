"""Temperature and triage threshold, fitted on the val split only (test stays untouched).

Training and `train.ensemble` both finish a model this way, so every model card's calibration
means the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract import metrics
from contract.bootstrap import confident_threshold
from contract.card import DomainTriage, Triage
from contract.records import Record, label_indices
from contract.screening import apply_temperature, refer
from contract.triage import TriageThresholds

THRESHOLD_RULE = (
    "per domain, the largest threshold on calibrated P(malignant) whose malignant sensitivity "
    "on val stays at the target in 95% of the draws of whole lesions / patients (a one-sided "
    "lower bound), fitted on the photos people send (cut-outs left out); when no threshold "
    "reaches that bound (too few malignant lesions or patients), the lowest malignant score on "
    "val, so that every malignant val photo is referred; a photo of a stated domain gets its "
    "domain's own threshold (by_domain), any other photo the card's threshold, the lowest of "
    "these, which holds in every domain"
)


@dataclass(frozen=True)
class ValCalibration:
    temperature: float
    threshold: float  # on calibrated P(malignant)
    report: dict  # calibrated val metrics, each domain at its own threshold
    by_domain: dict  # each domain's own confident threshold, its bound, and what to expect

    def triage(self, target: float) -> Triage:
        """The model card's triage section for this calibration."""
        by_domain = {d: DomainTriage.from_json(f) for d, f in self.by_domain.items()}
        return Triage(
            malignant_threshold=self.threshold,
            target_sensitivity=target,
            chosen_on="val",
            threshold_rule=THRESHOLD_RULE,
            by_domain=by_domain,
        )


def threshold_for_sensitivity(y_true: np.ndarray, probs: np.ndarray, target: float) -> float:
    """Highest threshold on P(malignant) whose sensitivity reaches `target` on these data."""
    p_malignant = np.sort(metrics.malignant_probability(probs)[metrics.is_malignant(y_true)])
    if len(p_malignant) == 0:
        return 0.5
    allowed_misses = int(np.floor((1 - target) * len(p_malignant) + 1e-9))
    return float(p_malignant[allowed_misses])


def fit_temperature(
    y_true: np.ndarray, probs: np.ndarray, log_ratios: np.ndarray | None = None
) -> float:
    """Temperature minimising the negative log-likelihood of `contract.screening.apply_temperature`
    (with the answers' log ratios, if given), by a fine grid over log T."""
    candidates = np.exp(np.linspace(np.log(0.25), np.log(8.0), 400))
    rows = np.arange(len(y_true))

    def nll(t: float) -> float:
        calibrated = apply_temperature(probs, t, log_ratios)
        return float(-np.log(calibrated[rows, y_true] + 1e-12).mean())

    return float(min(candidates, key=nll))


def calibrate_on_val(
    val_records: list[Record],
    raw_val: np.ndarray,
    target_sensitivity: float,
    log_ratios: np.ndarray | None = None,
    cutouts: np.ndarray | None = None,
) -> ValCalibration:
    """Fit the temperature on every val image, then each domain's threshold whose sensitivity
    holds with confidence on the photos people send (`THRESHOLD_RULE`; `cutouts` marks the
    background-removed images, `contract.lesion_gate.is_cutout`); with the answers' log ratios,
    for photo plus answers."""
    y_val = label_indices(val_records)
    domains = np.array([r.domain for r in val_records])
    groups = np.array([r.group for r in val_records])
    temperature = fit_temperature(y_val, raw_val, log_ratios)
    probs = apply_temperature(raw_val, temperature, log_ratios)
    scopes = metrics.domain_scopes(domains, cutouts)
    fitted = {d: scopes[d] for d in sorted(set(domains.tolist())) if d in scopes}
    by_domain = {
        d: confident_domain(y_val[m], probs[m], groups[m], target_sensitivity)
        for d, m in fitted.items()
    }
    own_thresholds = {d: f["own_threshold"] for d, f in by_domain.items()}
    threshold = min(own_thresholds.values())
    own = TriageThresholds(threshold, own_thresholds)
    report = metrics.report_by_domain(y_val, probs, domains, own.for_images(domains), cutouts)
    return ValCalibration(temperature, threshold, report, by_domain)


def confident_domain(y: np.ndarray, probs: np.ndarray, groups: np.ndarray, target: float) -> dict:
    """One kind of photo's own threshold by `THRESHOLD_RULE` on these photos (calibrated
    probabilities, whole lesions / patients drawn), its bound, and what it keeps and costs
    there: the card's `DomainTriage` fields, whether the photos are val or out of fold."""
    threshold, bound = confident_threshold(y, probs, groups, target)
    return {
        "own_threshold": threshold,
        "sensitivity_lower_bound_95": bound,
        "sensitivity_at_own_threshold": metrics.sensitivity_specificity(y, probs, threshold)[
            "sensitivity"
        ],
        "referrals_per_malignant_found": referrals_per_malignant_found(y, probs, threshold),
        "fitted_on": fitted_on(y, groups),
    }


def fitted_on(y: np.ndarray, groups: np.ndarray) -> dict:
    """What a threshold stands on: its images, and the malignant lesions or patients that are
    the trials of its bound (n of them all caught bound it at 0.05 ** (1 / n) at best)."""
    malignant = metrics.is_malignant(y)
    return {
        "images": int(len(y)),
        "malignant_images": int(malignant.sum()),
        "malignant_groups": int(len(np.unique(groups[malignant]))),
    }


def referrals_per_malignant_found(y: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """How many "see a dermatologist" answers come per malignant lesion referred: what a person
    should expect of the triage."""
    flagged = refer(metrics.malignant_probability(probs), threshold)
    found = int((flagged & metrics.is_malignant(y)).sum())
    return float(flagged.sum() / found) if found else float("nan")
