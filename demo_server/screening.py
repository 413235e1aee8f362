"""The screening answer as the API and page word it (the formulas are `contract.screening`).

This is a screening aid, not a diagnosis; the wording here is what the API and page show.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from contract import screening
from contract.model_file import ModelMetadata
from demo_server.lesion_gate import GateResult

DEFAULT_DISCLAIMER = (
    "This is a screening aid, not a diagnosis. It can be wrong, and it has not been cleared as a "
    "medical device. If a spot is new, changing, bleeding, itchy or worries you, see a "
    "dermatologist or your doctor, whatever this tool says."
)
TRIAGE_MESSAGES = {
    screening.REFER: "Have a dermatologist look at this.",
    screening.WATCH: "Low concern: watch it for changes, and see a doctor if it changes or worries "
    "you.",
}
UNSURE_MESSAGE = (
    "The model is unsure about this photo: no class stands out. Try a sharper, closer, "
    "well-lit photo, and if in doubt have a dermatologist look at it."
)
CLASSIFIED = "classified"
NOT_A_LESION = "not_a_lesion"
NOT_A_LESION_MESSAGE = (
    "This does not look like a skin-lesion photo. "
    "Take a sharp, close, well-lit photo of one skin spot."
)


def screen(
    raw: np.ndarray,
    meta: ModelMetadata,
    unsure_below: float,
    log_ratios: np.ndarray | None = None,
    domain: str | None = None,
) -> screening.Screening:
    """The contract's screening with the card's calibration: for photo plus answers when the
    answers' log ratios are given, photo only otherwise; at the threshold of the kind of photo
    the request states (`domain`), or at the one for any kind when it states none. With answers,
    a card may say the photo's own referral stands: the answers cannot cancel it."""
    photo_refers = False
    if log_ratios is None:
        temperature, thresholds = meta.temperature, meta.triage
    elif meta.answers is None:
        raise ValueError("log ratios given for a model whose card has no answers section")
    else:
        temperature, thresholds = meta.answers.temperature, meta.answers.triage
        if meta.answers.photo_referral_stands:
            photo = screen(raw, meta, unsure_below, domain=domain)
            photo_refers = photo.triage == screening.REFER
    return screening.screen(
        raw,
        meta.labels,
        meta.malignant_labels,
        temperature,
        thresholds,
        unsure_below,
        log_ratios,
        domain,
        photo_refers,
    )


def screening_json(
    result: screening.Screening, meta: ModelMetadata, unsure_below: float
) -> dict[str, Any]:
    """The response fields of one screening: sorted scores, top, P(malignant), triage, unsure."""
    scores = [
        {
            "code": code,
            "display_name": name,
            "probability": round(p, 6),
            "malignant": code in meta.malignant_labels,
        }
        for code, name, p in zip(meta.labels, meta.display_names, result.probabilities, strict=True)
    ]
    calibration: dict[str, Any] = {"temperature": result.temperature}
    if meta.answers is not None:  # models without answers keep the old shape
        calibration.update(threshold=result.threshold, source=result.source)
    return {
        "scores": sorted(scores, key=lambda s: -s["probability"]),
        "top": scores[result.top_index],
        "p_malignant": round(result.p_malignant, 6),
        "triage": {
            "level": result.triage,
            "message": TRIAGE_MESSAGES[result.triage],
            "threshold": result.threshold,
            "threshold_domain": result.threshold_domain,
            "referred_by_photo": result.referred_by_photo,
        },
        "unsure": result.unsure,
        "unsure_below": unsure_below,
        "unsure_message": UNSURE_MESSAGE if result.unsure else None,
        "calibration": calibration,
    }


def lesion_check_json(result: GateResult | None) -> dict[str, Any] | None:
    """The gate's verdict for the response (None when the server runs without a gate)."""
    if result is None:
        return None
    return {
        "is_lesion": bool(result.is_lesion),
        "distance": round(float(result.distance), 3),
        "threshold": float(result.threshold),
    }


def disclaimer(meta: ModelMetadata) -> str:
    """The model card's disclaimer, or ours when the card has none."""
    return meta.card.disclaimer if meta.card else DEFAULT_DISCLAIMER
