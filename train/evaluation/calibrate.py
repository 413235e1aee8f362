"""Temperature and triage threshold, fitted on the val split only (test stays untouched).

Training and `train.ensemble` both finish a model this way, so every model card's calibration
means the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.screening import calibrate
from train.data.datasets import Record
from train.data.pipeline import label_indices
from train.evaluation import metrics


@dataclass(frozen=True)
class ValCalibration:
    temperature: float
    threshold: float  # on calibrated P(malignant)
    report: dict  # calibrated val metrics at the threshold, overall and per domain


def calibrate_on_val(
    val_records: list[Record],
    raw_val: np.ndarray,
    target_sensitivity: float,
    log_ratios: np.ndarray | None = None,
) -> ValCalibration:
    """Fit the temperature, then the threshold that reaches the target malignant sensitivity
    in every domain (the strictest of the per-domain thresholds); with the answers' log ratios,
    for photo plus answers."""
    y_val = label_indices(val_records)
    domains = np.array([r.domain for r in val_records])
    temperature = metrics.fit_temperature(y_val, raw_val, log_ratios)
    probs = calibrate(raw_val, temperature, log_ratios)
    threshold = min(
        metrics.threshold_for_sensitivity(
            y_val[domains == d], probs[domains == d], target_sensitivity
        )
        for d in sorted(set(domains.tolist()))
    )
    report = metrics.report_by_domain(y_val, probs, domains, threshold)
    return ValCalibration(temperature, threshold, report)
