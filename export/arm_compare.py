"""How one file's outputs on an ARM core differ from its outputs on x86, in what the user sees.

Raw outputs are compared in the output tensor's quantization steps (the unit the int8 kernels
round in); then what each kind of file decides from them:

- a classifier: top-1 class and the triage decision (calibrated P(malignant) against the
  threshold for the photo's kind, `contract.triage.TriageThresholds.for_domain`);
- the lesion gate: its outlier score against its threshold (accepted or rejected);
- the segmenter: Dice of the lesion mask (the framing rule's threshold) and the framing verdict.

Every disagreement is listed with the numbers on both sides, so it can be explained (a value
within a step or two of the threshold) and bounded (how many of how many).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.framing import binary_mask, find_lesions, verdict
from contract.metrics import dice_jaccard
from contract.model_file import GateInfo, ModelMetadata
from contract.screening import apply_temperature, malignant_probability, refer
from contract.segmentation import SegmenterInfo, probability_map
from contract.tensors import TensorSpec


@dataclass(frozen=True)
class Images:
    """The compared images: a short name each and the kind of photo (None: not stated)."""

    names: tuple[str, ...]
    domains: tuple[str | None, ...]


@dataclass
class CoreComparison:
    """One file on one core against x86."""

    decoded_identical: int  # images whose decoded input pixels are byte-identical to x86's
    differing_images: int  # images with any output different from x86's
    max_steps: float  # largest output difference, in output quantization steps (float: absolute)
    decisions: dict[str, list[int]] = field(default_factory=dict)  # name -> [agree, of]
    dice: dict[str, float] = field(default_factory=dict)  # segmenter: min and mean
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    same_outputs_as: list[str] = field(default_factory=list)  # other cores, to the bit

    def agrees(self) -> bool:
        return all(agree == total for agree, total in self.decisions.values())


def step_differences(x86: np.ndarray, arm: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """|ARM - x86| per value, in quantization steps (absolute for a float output)."""
    difference = np.abs(arm - x86)
    if spec.dtype.kind == "f":
        return difference
    scale = spec.scale or 1.0 / 256.0  # contract.tensors.dequantize_output's default
    return np.round(difference / scale, 6)


def differences(x86: np.ndarray, arm: np.ndarray, spec: TensorSpec, decoded: int) -> CoreComparison:
    """How the raw outputs differ; each kind's comparison below adds its decisions to it."""
    steps = step_differences(x86, arm, spec)
    return CoreComparison(
        decoded_identical=decoded,
        differing_images=int(np.sum(steps.reshape(len(x86), -1).max(axis=1) > 0)),
        max_steps=float(steps.max(initial=0.0)),
    )


def _count(name: str, x86: np.ndarray, arm: np.ndarray, into: CoreComparison) -> np.ndarray:
    same = np.asarray(x86) == np.asarray(arm)
    into.decisions[name] = [int(same.sum()), int(same.size)]
    return ~same


def compare_classifier(
    meta: ModelMetadata, images: Images, x86: np.ndarray, arm: np.ndarray, result: CoreComparison
) -> CoreComparison:
    threshold = meta.triage.for_images(images.domains)
    sides = []
    for raw in (x86, arm):
        calibrated = apply_temperature(raw, meta.temperature)
        p_malignant = malignant_probability(calibrated, meta.labels, meta.malignant_labels)
        sides.append((calibrated.argmax(axis=1), p_malignant, refer(p_malignant, threshold)))
    (top_x, p_x, refer_x), (top_a, p_a, refer_a) = sides
    top_differs = _count("top-1", top_x, top_a, result)
    triage_differs = _count("triage", refer_x, refer_a, result)
    step = meta.output.scale or 1.0 / 256.0
    for i in np.flatnonzero(top_differs | triage_differs):
        top_two = sorted(np.round(x86[i], 6).tolist(), reverse=True)[:2]
        result.disagreements.append(
            {
                "image": images.names[i],
                "what": "top-1 and triage"
                if top_differs[i] and triage_differs[i]
                else "top-1"
                if top_differs[i]
                else "triage",
                "top1": [meta.labels[top_x[i]], meta.labels[top_a[i]]],
                "p_malignant": [round(float(p_x[i]), 6), round(float(p_a[i]), 6)],
                "threshold": float(threshold[i]),
                "top_two_x86": top_two,
                # The explanation: how close x86's answer was to going the other way.
                "top_two_apart_steps": round((top_two[0] - top_two[1]) / step, 2),
            }
        )
    return result


def compare_gate(
    gate: GateInfo, images: Images, x86: np.ndarray, arm: np.ndarray, result: CoreComparison
) -> CoreComparison:
    score_x, score_a = x86[:, 0], arm[:, 0]
    differs = _count("accepted", score_x <= gate.threshold, score_a <= gate.threshold, result)
    for i in np.flatnonzero(differs):
        result.disagreements.append(
            {
                "image": images.names[i],
                "what": "gate decision",
                "score": [float(score_x[i]), float(score_a[i])],
                "threshold": gate.threshold,
            }
        )
    return result


def compare_segmenter(
    info: SegmenterInfo, images: Images, x86: np.ndarray, arm: np.ndarray, result: CoreComparison
) -> CoreComparison:
    masks = [
        np.stack(
            [
                binary_mask(probability_map(row, info.image_size), info.rule.threshold)
                for row in side
            ]
        )
        for side in (x86, arm)
    ]
    dice, _ = dice_jaccard(masks[0], masks[1])
    verdicts = [[verdict(find_lesions(m, info.rule), info.rule) for m in side] for side in masks]
    differs = _count("framing verdict", np.array(verdicts[0]), np.array(verdicts[1]), result)
    result.dice = {"min": float(dice.min()), "mean": float(dice.mean())}
    for i in np.flatnonzero(differs | (dice < 1.0)):
        result.disagreements.append(
            {
                "image": images.names[i],
                "what": "framing verdict" if differs[i] else "mask",
                "verdict": [verdicts[0][i], verdicts[1][i]],
                "dice": float(dice[i]),
            }
        )
    return result
