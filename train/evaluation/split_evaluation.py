"""Evaluating a run's Keras model or an exported .tflite on one split of the run.

Probabilities are calibrated as the app calibrates them (`contract.screening`); with answers,
each image's answers from its data set are added first, with the answers' calibration. Writes
metrics.json and report.md (overall and per domain: balanced accuracy, per-class recall,
one-vs-rest AUC, malignant sensitivity/specificity at the shipped threshold, ECE, confusion
matrix; 95% intervals from resampling whole lesions / patients), predictions.csv (per image, for
`train.compare`) and PNG plots.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract import metrics
from contract.answers import answer_spec
from contract.bootstrap import grouped_bootstrap_intervals
from contract.card import ModelCard, read_model_card, write_model_card
from contract.colour_constancy import apply, step_of
from contract.flips import flipped_views
from contract.interpreter import predict_tflite
from contract.lesion_gate import is_cutout
from contract.model_file import model_card, read_model_file
from contract.predictions import PREDICTIONS_CSV, prediction_rows, write_predictions
from contract.questionnaire import QUESTION_NAMES
from contract.records import Record, Skipped, decode_records, label_indices
from contract.run_folder import MODEL_KERAS, SPLIT_CSV, read_split
from contract.screening import apply_temperature, refer, standing_thresholds
from contract.taxonomy import LABELS
from contract.triage import TriageThresholds
from train.answers.fitting import answer_ratios
from train.evaluation.report_md import metrics_markdown
from train.model.predict import predict_keras


@dataclass(frozen=True)
class Evaluated:
    """What one evaluation computed, before anything is written."""

    name: str
    records: list[Record]
    cutouts: np.ndarray  # background-removed images, reported apart
    raw: np.ndarray  # the model's outputs
    probs: np.ndarray  # calibrated (with the answers, if asked)
    report: dict
    scopes: dict[str, np.ndarray]
    temperature: float
    thresholds: TriageThresholds  # each image gets its domain's own, as a request stating it
    per_image: np.ndarray  # the threshold each image was triaged at (0: the photo's referral)


def photo_referrals(raw: np.ndarray, card: ModelCard, domains: np.ndarray) -> np.ndarray:
    """Which images the photo alone refers, at the card's photo-only calibration and each
    image's kind's threshold: the referrals that stand whatever the answers say
    (`contract.screening.standing_thresholds`)."""
    p_malignant = metrics.malignant_probability(
        apply_temperature(raw, card.calibration.temperature)
    )
    return refer(p_malignant, card.triage.thresholds.for_images(domains))


def card_of(run: Path, model: Path | None) -> ModelCard:
    """The model card the evaluated model carries (a .tflite's own, else the run's)."""
    if model is not None:
        return model_card(read_model_file(model))
    return read_model_card(run)


def image_folder(path: Path) -> str:
    """The data-set folder an image came from (the folder holding `images/` or the class dirs)."""
    parent = path.parent
    return (
        parent.parent.name
        if parent.name.lower().startswith(("images", "ham10000_images"))
        else parent.name
    )


@dataclass(frozen=True)
class SplitPredictions:
    """A model's raw outputs on one split, with what each image is."""

    raw: np.ndarray
    records: list[Record]  # unreadable images skipped with a warning
    cutouts: np.ndarray  # background-removed images (`contract.lesion_gate.is_cutout`)
    name: str  # the model file's stem, or "keras"


def split_predictions(
    run: Path, model: Path | None, split: str, card: ModelCard, flips: int = 1
) -> SplitPredictions:
    """Raw probabilities of `model` (a .tflite) or the run's Keras model on one split; with
    `flips` > 1, averaged over that many flips and rotations of each image (`flipped_views`)."""
    return record_predictions(run, model, read_split(run / SPLIT_CSV)[split], card, flips)


def record_predictions(
    run: Path, model: Path | None, records: Sequence[Record], card: ModelCard, flips: int = 1
) -> SplitPredictions:
    """`split_predictions` on these records, e.g. a part of a split."""
    skipped = Skipped()
    pixels, records = decode_records(records, card.input.height, skipped)
    skipped.warn()
    cutouts = is_cutout(pixels)  # by the pixels as decoded, before the card's step
    pixels = apply(pixels, step_of(card))
    views = flipped_views(pixels, flips)
    suffix = f"-flips{flips}" if flips > 1 else ""
    if model is not None:
        raw = np.mean([predict_tflite(model, np.ascontiguousarray(v)) for v in views], axis=0)
        return SplitPredictions(raw, records, cutouts, model.stem + suffix)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    network = keras.models.load_model(run / MODEL_KERAS)
    raw = np.mean([predict_keras(network, np.ascontiguousarray(v)) for v in views], axis=0)
    return SplitPredictions(raw, records, cutouts, "keras" + suffix)


def evaluate(
    run: Path,
    model: Path | None = None,
    split: str = "val",
    answers: Sequence[str] | None = None,
    by_folder: bool = False,
    flips: int = 1,
) -> Evaluated:
    """Score a model on a split; `answers` names the questions whose recorded answers are used
    (None: photo only); `flips` averages each image's flips and rotations."""
    card = card_of(run, model)
    outputs = split_predictions(run, model, split, card, flips)
    raw, records, name = outputs.raw, outputs.records, outputs.name
    y = label_indices(records)
    domains = np.array([r.domain for r in records])
    groups = np.array([r.group for r in records])
    temperature, thresholds = card.calibration.temperature, card.triage.thresholds
    per_image = thresholds.for_images(domains)
    ratios = None
    if answers is not None:
        spec = answer_spec(card.answers, LABELS)  # the card's answers, as every client reads them
        if spec is None:
            raise ValueError("the model card has no answers section")
        photo_refers = photo_referrals(raw, card, domains)
        ratios = answer_ratios(spec.models, records, answers)
        temperature, thresholds = spec.temperature, spec.triage
        per_image = thresholds.for_images(domains)
        if spec.photo_referral_stands:
            per_image = standing_thresholds(per_image, photo_refers)
        name += "-answers"
    probs = apply_temperature(raw, temperature, ratios)
    uncalibrated = raw if ratios is None else apply_temperature(raw, 1.0, ratios)
    scopes = metrics.domain_scopes(domains, outputs.cutouts)
    if by_folder:
        folders = np.array([image_folder(r.path) for r in records])
        scopes.update({f"folder {f}": folders == f for f in sorted(set(folders.tolist()))})
    report = {}
    for scope, mask in scopes.items():
        report[scope] = metrics.classification_report(y[mask], probs[mask], per_image[mask])
        report[scope]["ece_uncalibrated"] = metrics.expected_calibration_error(
            y[mask], uncalibrated[mask]
        )
        report[scope]["ci95"] = grouped_bootstrap_intervals(
            y[mask], probs[mask], groups[mask], per_image[mask]
        )
    return Evaluated(
        name, records, outputs.cutouts, raw, probs, report, scopes, temperature, thresholds,
        per_image,
    )


def write_evaluation(
    result: Evaluated,
    out: Path,
    model: Path,
    split: str,
    answers: Sequence[str] | None,
) -> None:
    """metrics.json, report.md, predictions.csv and the plots of one evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": str(model),
        "split": split,
        "answers": list(answers) if answers is not None else None,
        "temperature": result.temperature,
        "malignant_threshold": result.thresholds.any_domain,
        "malignant_threshold_by_domain": dict(result.thresholds.by_domain),
        "metrics": result.report,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(metrics_markdown(summary), encoding="utf-8")
    rows = prediction_rows(result.records, result.probs, result.cutouts, result.per_image)
    write_predictions(out / PREDICTIONS_CSV, rows)

    from train.evaluation.plots import plot_confusion, plot_reliability, plot_roc

    y = label_indices(result.records)
    for scope, mask in result.scopes.items():
        title = f"{result.name}, {split} split, {scope}"
        stem = scope.replace(" ", "_")
        plot_confusion(y[mask], result.probs[mask], title, out / f"confusion_{stem}.png")
        plot_roc(y[mask], result.probs[mask], title, out / f"roc_{stem}.png")
        plot_reliability(y[mask], result.probs[mask], title, out / f"reliability_{stem}.png")


def record_in_card(run: Path, split: str, report: dict, with_answers: bool) -> None:
    """Store a split's metrics of the run's own model in its card, so exports carry them."""
    write_model_card(run, read_model_card(run).with_metrics(split, report, with_answers))


def measure_in_card(run: Path, model: Path | None, split: str, with_answers: bool) -> None:
    """Evaluate the run's model (or `model`, a file carrying the run's card) on a split, photo
    only or with every answer, and record the metrics in the run's card."""
    asked = list(QUESTION_NAMES) if with_answers else None
    record_in_card(run, split, evaluate(run, model, split, asked).report, with_answers)
