"""Fitting the answers' model for a finished run: regressions on train, strength and calibration
on val, written into the run's model card (which `python -m export` packs into the .tflite).

Per domain, the regression is fitted on the run's train split (answers only, no images); its
strength is the one with the best val balanced accuracy in that domain; then temperature and
triage threshold are fitted on val again, for photo plus answers. The photo-only calibration
stays as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from contract import metrics
from contract.answers import RULE, DomainModel, answer_spec
from contract.card import (
    AnswersSection,
    Calibration,
    ModelCard,
    Triage,
    read_model_card,
    write_model_card,
)
from contract.colour_constancy import apply, step_of
from contract.commands import CommandError
from contract.questionnaire import BY_NAME, QUESTIONS, QUESTIONS_BY_DOMAIN, encode_recorded
from contract.records import Record, Skipped, label_indices
from contract.run_folder import MODEL_KERAS, SPLIT_CSV, read_split
from contract.screening import apply_temperature
from contract.taxonomy import LABELS
from train.answers.regression import fit_answer_model
from train.data.answers import dataset_answers
from train.model.calibration import ValCalibration, calibrate_on_val
from train.model.card import ANSWERS_LIMITATION

DEFAULT_STRENGTHS = (0.25, 0.5, 0.75, 1.0)


class AnswersError(CommandError):
    """The run has nothing to fit the answers' model on."""


def features_of(records: list[Record], questions: tuple[str, ...]) -> np.ndarray:
    rows = [encode_recorded(a, questions) for a in dataset_answers(records)]
    return np.array(rows).reshape(len(rows), sum(BY_NAME[q].width for q in questions))


def answer_ratios(
    models: dict[str, DomainModel], records: list[Record], asked: Iterable[str] | None = None
) -> np.ndarray:
    """strength * r for each record from its data set's answers; `asked` limits the answers to
    those questions, as if the others were skipped."""
    answers = dataset_answers(records)
    if asked is not None:
        kept = set(asked)
        answers = [{q: a for q, a in given.items() if q in kept} for given in answers]
    return ratios_of_answers(models, [r.domain for r in records], answers)


def ratios_of_answers(
    models: dict[str, DomainModel], domains: Iterable[str], answers: Iterable[dict]
) -> np.ndarray:
    """strength * r for each person's answers, by the domain's model (0 where it has none)."""
    return np.array(
        [
            models[d].strength
            * models[d].log_ratios(encode_recorded(a, models[d].question_names))[0]
            if d in models
            else np.zeros(len(LABELS))
            for d, a in zip(domains, answers, strict=True)
        ]
    ).reshape(-1, len(LABELS))


def models_from_card(card: ModelCard) -> dict[str, DomainModel]:
    """The card's answers models, parsed as every client parses them (`contract.answers`)."""
    spec = answer_spec(card.answers, LABELS)
    return spec.models if spec is not None else {}


def answers_triage(calibration: ValCalibration, target: float) -> Triage:
    """The answers' triage section: their own thresholds, and the photo's referral standing
    (`contract.screening.standing_thresholds`): the answers may add a referral, never cancel
    one, since they cost sensitivity on patients the model had not seen."""
    return replace(calibration.triage(target), photo_referral_stands=True)


def fit_domain_models(train: list[Record]) -> dict[str, DomainModel]:
    """One model per domain with answers of at least two classes; other domains are named and
    left out (their photos keep the photo-only result)."""
    models = {}
    for domain, questions in QUESTIONS_BY_DOMAIN.items():
        records = [r for r in train if r.domain == domain]
        features = features_of(records, questions)
        try:
            models[domain] = fit_answer_model(domain, questions, features, label_indices(records))
        except ValueError:  # fewer than two classes among the answered records
            print(f"{domain}: no answers for two classes in the train split; no model", flush=True)
    return models


def best_strength(
    model: DomainModel, raw: np.ndarray, records: list[Record], strengths: Sequence[float]
) -> tuple[float, dict[float, float]]:
    """The strength with the best val balanced accuracy in the model's domain (ties: weaker)."""
    mask = np.array([r.domain == model.domain for r in records])
    y = label_indices(records)[mask]
    r = model.log_ratios(
        features_of([x for x, m in zip(records, mask, strict=True) if m], model.question_names)
    )
    scores = {
        s: metrics.balanced_accuracy(y, apply_temperature(raw[mask], 1.0, s * r).argmax(axis=1))
        for s in sorted(strengths)
    }
    return max(scores, key=lambda s: (scores[s], -s)), scores


def fit_answers(run_dir: Path, strengths: Sequence[float] = DEFAULT_STRENGTHS) -> ModelCard:
    """Fit the answers' model of a finished run into its model card; returns the card."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from contract.lesion_gate import is_cutout
    from contract.records import decode_records
    from train.model.predict import predict_keras

    card = read_model_card(run_dir)
    split = read_split(run_dir / SPLIT_CSV)
    skipped = Skipped()
    pixels, val = decode_records(split["val"], card.input.height, skipped)
    skipped.warn()
    cutouts = is_cutout(pixels)
    raw = predict_keras(
        keras.models.load_model(run_dir / MODEL_KERAS), apply(pixels, step_of(card))
    )

    models = fit_domain_models(split["train"])
    if not models:
        raise AnswersError(
            "the train split has no answers to learn from "
            "(HAM10000 or PAD-UFES-20 metadata csv files beside the images)"
        )
    chosen = {}
    for domain, model in list(models.items()):
        strength, scores = best_strength(model, raw, val, strengths)
        models[domain] = replace(model, strength=strength)
        chosen[domain] = {"strength": strength, "val_balanced_accuracy_by_strength": scores}
        print(f"{domain}: val balanced accuracy by strength {scores}; chose {strength}")
    target = card.triage.target_sensitivity
    calibration = calibrate_on_val(val, raw, target, answer_ratios(models, val), cutouts)
    answers = AnswersSection(
        questions=tuple(q.as_json() for q in QUESTIONS),
        models={d: m.as_json() for d, m in models.items()},
        rule=RULE,
        fitted_on="train (regressions), val (strengths, temperature, threshold)",
        strength_search=chosen,
        calibration=Calibration(temperature=calibration.temperature, fitted_on="val"),
        triage=answers_triage(calibration, target),
        metrics={"val": calibration.report},
    )
    limitations = tuple(dict.fromkeys((*card.limitations, ANSWERS_LIMITATION)))
    card = replace(card, answers=answers, limitations=limitations)
    write_model_card(run_dir, card)
    for domain, report in calibration.report.items():
        print(f"val with answers, {domain}: {metrics.summary_line(report)}")
    return card
