"""Refitting a run's calibration and triage thresholds on val from a model file's outputs.

For a model whose network is no longer at hand but whose val split is known (the shipped 2025
ensemble: only its .tflite and card survive, and its split was recovered), the file's own val
outputs are what the card's temperature and thresholds must fit. The rule is the one every new
run uses (`calibrate_on_val`, with the answers' triage of `answers_triage`); the answers'
regressions and strengths stay as they were.
"""

from __future__ import annotations

from pathlib import Path

from contract.model_file import identity_differences, model_card, read_model_file
from contract.run_folder import read_model_card, write_model_card
from train.answers.fitting import answer_ratios, answers_triage, models_from_card
from train.evaluation.split_evaluation import split_predictions
from train.model.calibration import ValCalibration, calibrate_on_val


class RecalibrationError(ValueError):
    """The model file is not the run's model; the message says what differs."""


def recalibrate(run: Path, model: Path, flips: int = 1) -> dict:
    """Fit the run card's photo-only (and answers') temperature and thresholds on val from
    `model`'s outputs (averaged over `flips` flips and rotations of each image); drops test
    metrics, which were measured at the old thresholds."""
    card = read_model_card(run)
    differing = identity_differences(card, model_card(read_model_file(model)))
    if differing:
        raise RecalibrationError(
            f"{model} carries another model's card than {run} (differs in {differing})"
        )
    outputs = split_predictions(run, model, "val", card, flips)
    raw, val, cutouts = outputs.raw, outputs.records, outputs.cutouts
    target = card["triage"]["target_sensitivity"]
    averaged = f", averaged over {flips} flips and rotations" if flips > 1 else ""
    fitted_on = f"val, outputs of {model.name}{averaged}"
    photo = calibrate_on_val(val, raw, target, cutouts=cutouts)
    _record(card, photo, photo.triage(target), fitted_on)
    if "answers" in card:
        ratios = answer_ratios(models_from_card(card), val)
        answers = calibrate_on_val(val, raw, target, ratios, cutouts)
        _record(card["answers"], answers, answers_triage(answers, target), fitted_on)
    write_model_card(run, card)
    return card


def _record(section: dict, calibration: ValCalibration, triage: dict, fitted_on: str) -> None:
    """A card's (or its answers section's) calibration, triage and val metrics, replaced."""
    section["calibration"] = {"temperature": calibration.temperature, "fitted_on": fitted_on}
    rule = section["triage"].get("rule")
    section["triage"] = triage | ({"rule": rule} if rule else {})
    section["metrics"] = {"val": calibration.report}
