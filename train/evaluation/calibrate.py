"""Temperature and triage threshold, fitted on the val split only (test stays untouched).

Training and `train.ensemble` both finish a model this way, so every model card's calibration
means the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.screening import calibrate, refer
from train.data.datasets import Record
from train.data.pipeline import label_indices
from train.evaluation import metrics
from train.evaluation.bootstrap import confident_threshold

THRESHOLD_RULE = (
    "per domain, the largest threshold on calibrated P(malignant) whose malignant sensitivity "
    "on val stays at the target in 95% of the draws of whole lesions / patients (a one-sided "
    "lower bound); the card's threshold is the lowest of these, so it holds in every domain"
)


@dataclass(frozen=True)
class ValCalibration:
    temperature: float
    threshold: float  # on calibrated P(malignant)
    report: dict  # calibrated val metrics at the threshold, overall and per domain
    by_domain: dict  # each domain's own confident threshold, its bound, and what to expect

    def triage(self, target: float) -> dict:
        """The model card's triage section for this calibration."""
        return {
            "malignant_threshold": self.threshold,
            "target_sensitivity": target,
            "chosen_on": "val",
            "threshold_rule": THRESHOLD_RULE,
            "by_domain": self.by_domain,
        }


def calibrate_on_val(
    val_records: list[Record],
    raw_val: np.ndarray,
    target_sensitivity: float,
    log_ratios: np.ndarray | None = None,
) -> ValCalibration:
    """Fit the temperature, then the threshold whose sensitivity holds with confidence in every
    domain (`THRESHOLD_RULE`); with the answers' log ratios, for photo plus answers."""
    y_val = label_indices(val_records)
    domains = np.array([r.domain for r in val_records])
    groups = np.array([r.group for r in val_records])
    temperature = metrics.fit_temperature(y_val, raw_val, log_ratios)
    probs = calibrate(raw_val, temperature, log_ratios)
    confident = {
        d: confident_threshold(
            y_val[domains == d], probs[domains == d], groups[domains == d], target_sensitivity
        )
        for d in sorted(set(domains.tolist()))
    }
    threshold = min(t for t, _ in confident.values())
    report = metrics.report_by_domain(y_val, probs, domains, threshold)
    by_domain = {
        d: {
            "own_threshold": t,
            "sensitivity_lower_bound_95": bound,
            "sensitivity_at_card_threshold": report[d]["malignant"]["sensitivity"],
            "referrals_per_malignant_found": referrals_per_malignant_found(
                y_val[domains == d], probs[domains == d], threshold
            ),
        }
        for d, (t, bound) in confident.items()
    }
    return ValCalibration(temperature, threshold, report, by_domain)


def referrals_per_malignant_found(y: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """How many "see a dermatologist" answers come per malignant lesion referred: what a person
    should expect of the triage."""
    flagged = refer(metrics.malignant_probability(probs), threshold)
    found = int((flagged & metrics.is_malignant(y)).sum())
    return float(flagged.sum() / found) if found else float("nan")
