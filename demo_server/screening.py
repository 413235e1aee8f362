"""From raw model probabilities to a screening answer: calibration, P(malignant), triage.

This is a screening aid, not a diagnosis; the wording here is what the API and page show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from demo_server.answers import PHOTO_AND_ANSWERS, PHOTO_ONLY
from demo_server.lesion_gate import GateResult
from demo_server.model import ModelMetadata

DEFAULT_DISCLAIMER = (
    "This is a screening aid, not a diagnosis. It can be wrong, and it has not been cleared as a "
    "medical device. If a spot is new, changing, bleeding, itchy or worries you, see a "
    "dermatologist or your doctor, whatever this tool says."
)
REFER = "see_dermatologist"
WATCH = "low_concern"
TRIAGE_MESSAGES = {
    REFER: "Have a dermatologist look at this.",
    WATCH: "Low concern: watch it for changes, and see a doctor if it changes or worries you.",
}
UNSURE_MESSAGE = (
    "The model is unsure about this photo: no class stands out. Try a sharper, closer, "
    "well-lit photo, and if in doubt have a dermatologist look at it."
)
PROBABILITY_FLOOR = 1e-6
CLASSIFIED = "classified"
NOT_A_LESION = "not_a_lesion"
NOT_A_LESION_MESSAGE = (
    "This does not look like a skin-lesion photo. "
    "Take a sharp, close, well-lit photo of one skin spot."
)


def calibrate(
    probabilities: np.ndarray, temperature: float, log_ratios: np.ndarray | None = None
) -> np.ndarray:
    """Temperature scaling: softmax((log max(p, 1e-6) + log_ratios) / T).

    Without log ratios this is p_cal proportional to p ** (1 / T), the photo-only result,
    computed exactly as before answers existed (so it stays the same to the last bit).
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, None)
    logits = np.log(p)
    if log_ratios is not None:
        logits = logits + log_ratios
    logits = logits / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


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

    def as_json(self, meta: ModelMetadata, unsure_below: float) -> dict[str, Any]:
        scores = [
            {
                "code": code,
                "display_name": name,
                "probability": round(p, 6),
                "malignant": code in meta.malignant_labels,
            }
            for code, name, p in zip(
                meta.labels, meta.display_names, self.probabilities, strict=True
            )
        ]
        return {
            "scores": sorted(scores, key=lambda s: -s["probability"]),
            "top": scores[self.top_index],
            "p_malignant": round(self.p_malignant, 6),
            "triage": {
                "level": self.triage,
                "message": TRIAGE_MESSAGES[self.triage],
                "threshold": self.threshold,
            },
            "unsure": self.unsure,
            "unsure_below": unsure_below,
            "unsure_message": UNSURE_MESSAGE if self.unsure else None,
            "calibration": self._calibration_json(meta),
        }

    def _calibration_json(self, meta: ModelMetadata) -> dict[str, Any]:
        """Which temperature and threshold were used; models without answers keep the old shape."""
        if meta.answers is None:
            return {"temperature": self.temperature}
        return {"temperature": self.temperature, "threshold": self.threshold, "source": self.source}


def screen(
    raw: np.ndarray,
    meta: ModelMetadata,
    unsure_below: float,
    log_ratios: np.ndarray | None = None,
) -> Screening:
    """Calibrate raw probabilities and apply the triage threshold.

    With the answers' log ratios (see `answers.AnswerEffect`), the card's calibration for photo
    plus answers is used; without them, the photo-only one.
    """
    if log_ratios is None:
        temperature, threshold, source = meta.temperature, meta.malignant_threshold, PHOTO_ONLY
    elif meta.answers is None:
        raise ValueError("log ratios given for a model whose card has no answers section")
    else:
        temperature, threshold = meta.answers.temperature, meta.answers.malignant_threshold
        source = PHOTO_AND_ANSWERS
    calibrated = calibrate(raw, temperature, log_ratios)
    malignant = [i for i, code in enumerate(meta.labels) if code in meta.malignant_labels]
    p_malignant = float(calibrated[malignant].sum()) if malignant else 0.0
    top = int(np.argmax(calibrated))
    return Screening(
        probabilities=tuple(float(p) for p in calibrated),
        top_index=top,
        p_malignant=p_malignant,
        triage=REFER if p_malignant >= threshold else WATCH,
        unsure=bool(calibrated[top] < unsure_below),
        temperature=temperature,
        threshold=threshold,
        source=source,
    )


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
    return str(meta.card.get("disclaimer") or DEFAULT_DISCLAIMER)
