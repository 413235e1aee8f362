"""train.model.calibration: each kind of photo gets its own confident threshold on val."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract import metrics
from contract.records import Record
from contract.screening import apply_temperature
from contract.taxonomy import LABELS
from train.model.calibration import THRESHOLD_RULE, calibrate_on_val


def val_split(seed: int = 0) -> tuple[list[Record], np.ndarray]:
    """Dermoscopic photos whose malignant spots score high, phone photos whose score low: one
    threshold for both would have to be the phone's."""
    rng = np.random.default_rng(seed)
    records, rows = [], []
    for i in range(600):
        domain = "dermoscopic" if i % 2 else "phone"
        label = ("mel", "bcc", "nv", "bkl")[i % 8 // 2]
        records.append(Record(Path(f"img{i}.jpg"), label, f"lesion{i}", domain, "set"))
        malignant = label in ("mel", "bcc")
        high, low = (0.75, 0.2) if domain == "dermoscopic" else (0.3, 0.08)
        centre = high if malignant else low
        p_malignant = float(np.clip(rng.normal(centre, 0.08), 0.01, 0.97))
        row = np.full(len(LABELS), (1 - p_malignant) / (len(LABELS) - 3))
        row[[LABELS.index(c) for c in ("akiec", "bcc", "mel")]] = p_malignant / 3
        rows.append(row)
    return records, np.array(rows)


def test_each_domain_reports_at_its_own_threshold_and_the_card_keeps_the_lowest():
    records, raw = val_split()
    calibration = calibrate_on_val(records, raw, target_sensitivity=0.95)
    own = {d: f["own_threshold"] for d, f in calibration.by_domain.items()}
    assert own["dermoscopic"] > own["phone"]
    assert calibration.threshold == own["phone"]
    for domain, figures in calibration.by_domain.items():
        report = calibration.report[domain]["malignant"]
        assert report["threshold"] == figures["own_threshold"]
        assert figures["sensitivity_at_own_threshold"] == report["sensitivity"]
        assert figures["sensitivity_lower_bound_95"] >= 0.95
    assert calibration.report["overall"]["malignant"]["threshold"] is None  # two in use
    # The dermoscopic photos' own threshold costs fewer referrals than the phone's would.
    derm = np.array([r.domain == "dermoscopic" for r in records])
    y = np.array([LABELS.index(r.label) for r in records])[derm]
    calibrated = apply_temperature(raw[derm], calibration.temperature)
    at_lowest = metrics.sensitivity_specificity(y, calibrated, calibration.threshold)
    assert calibration.report["dermoscopic"]["malignant"]["specificity"] > at_lowest["specificity"]
    triage = calibration.triage(0.95)
    assert triage.malignant_threshold == calibration.threshold
    assert triage.threshold_rule == THRESHOLD_RULE and "own threshold" in THRESHOLD_RULE


def test_cutouts_fit_no_threshold_and_are_reported_apart():
    """A phone threshold fitted on photos people send: cut-outs whose malignant spots score
    lower must not pull it down, and the report keeps them out of the phone row."""
    records, raw = val_split()
    phone = np.array([r.domain == "phone" for r in records])
    cut = phone & np.isin(np.arange(len(records)) % 16, (0, 2))  # a quarter of the phone images
    raw[cut] = raw[cut] ** 3  # cut-outs: lower scores all round, malignant included
    raw[cut] /= raw[cut].sum(axis=1, keepdims=True)
    with_cutouts = calibrate_on_val(records, raw, target_sensitivity=0.95)
    photos_only = calibrate_on_val(records, raw, target_sensitivity=0.95, cutouts=cut)
    fitted = photos_only.by_domain["phone"]
    assert fitted["own_threshold"] > with_cutouts.by_domain["phone"]["own_threshold"]
    assert fitted["fitted_on"]["images"] == int((phone & ~cut).sum())
    assert photos_only.report["phone"]["n"] == int((phone & ~cut).sum())
    assert photos_only.report["phone cut-outs"]["n"] == int(cut.sum())
    assert photos_only.report["overall"]["n"] == len(records) - int(cut.sum())
    # The temperature is still fitted on every val image.
    assert photos_only.temperature == with_cutouts.temperature


def test_too_few_malignant_patients_refer_every_malignant_val_photo():
    """n malignant patients, all caught, bound sensitivity at 0.05 ** (1/n) (0.936 for 45):
    the rule then refers everything val shows as malignant and records the bound it reached."""
    records, raw = val_split()
    small = [i for i, r in enumerate(records) if r.domain == "phone"][:90]
    chosen = [records[i] for i in small]
    calibration = calibrate_on_val(chosen, raw[small], 0.95)
    fitted = calibration.by_domain["phone"]
    malignant = sum(r.label in ("mel", "bcc") for r in chosen)
    assert fitted["fitted_on"]["malignant_groups"] == malignant < 59  # 0.05 ** (1/59) > 0.95
    assert fitted["sensitivity_lower_bound_95"] < 0.95
    assert fitted["sensitivity_at_own_threshold"] == 1.0
