"""Refitting a run's calibration and triage thresholds on val from a model file's outputs.

For a model whose network is no longer at hand but whose val split is known (the shipped 2025
ensemble: only its .tflite and card survive, and its split was recovered), the file's own val
outputs are what the card's temperature and thresholds must fit. The rule is the one every new
run uses (`calibrate_on_val`, with the answers' triage of `answers_triage`); the answers'
regressions and strengths stay as they were.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from contract.card import (
    AnswersSection,
    Calibration,
    ModelCard,
    Triage,
    read_model_card,
    write_model_card,
)
from contract.commands import CommandError
from contract.model_file import model_card, read_model_file
from train.answers.fitting import answer_ratios, answers_triage, models_from_card
from train.evaluation.split_evaluation import split_predictions
from train.model.calibration import ValCalibration, calibrate_on_val

_Section = TypeVar("_Section", ModelCard, AnswersSection)


class RecalibrationError(CommandError, ValueError):
    """The model file is not the run's model; the message says what differs."""


def recalibrate(run: Path, model: Path, flips: int = 1) -> ModelCard:
    """Fit the run card's photo-only (and answers') temperature and thresholds on val from
    `model`'s outputs (averaged over `flips` flips and rotations of each image); drops test
    metrics, which were measured at the old thresholds."""
    card = read_model_card(run)
    differing = card.identity_differences(model_card(read_model_file(model)))
    if differing:
        raise RecalibrationError(
            f"{model} carries another model's card than {run} (differs in {differing})"
        )
    outputs = split_predictions(run, model, "val", card, flips)
    raw, val, cutouts = outputs.raw, outputs.records, outputs.cutouts
    target = card.triage.target_sensitivity
    averaged = f", averaged over {flips} flips and rotations" if flips > 1 else ""
    fitted_on = f"val, outputs of {model.name}{averaged}"
    photo = calibrate_on_val(val, raw, target, cutouts=cutouts)
    card = _refitted(card, photo, photo.triage(target), fitted_on)
    if card.answers is not None:
        ratios = answer_ratios(models_from_card(card), val)
        answers = calibrate_on_val(val, raw, target, ratios, cutouts)
        triage = answers_triage(answers, target)
        card = replace(card, answers=_refitted(card.answers, answers, triage, fitted_on))
    write_model_card(run, card)
    return card


def _refitted(
    section: _Section, calibration: ValCalibration, triage: Triage, fitted_on: str
) -> _Section:
    """A card (or its answers section) with its calibration, triage and val metrics replaced;
    the triage keeps its rule in words."""
    return replace(
        section,
        calibration=Calibration(temperature=calibration.temperature, fitted_on=fitted_on),
        triage=replace(triage, rule=section.triage.rule),
        metrics={"val": calibration.report},
    )
