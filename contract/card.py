"""The model card (`ModelCard`): what a trained classifier is, how to feed it, how to read it.

Training writes it beside `model.keras`, each later step (answers, evaluation, recalibration)
replaces a section of it, and the exporter packs it into every .tflite as `model_card.json`;
evaluation, export and the demo server read it back, and the page's JavaScript reads the same
JSON from the file (static/modelfile.mjs, screening.mjs). It is read and written only here: a
typed, frozen value, turned into JSON and back by `ModelCard.from_json` / `to_json` (by the
fields' types, `contract.jsonclass`), whose field names are the JSON's keys (the browser is
pinned to them by the parity tests); `tests/test_card_access.py` fails on a card read by string
key anywhere else.

`schema_version` is 1 for every card training writes; the committed test fixtures, written
before cards had a version, lack it and read as they are (None). A reader refuses a card of a
newer version: what its new keys mean cannot be guessed.

Unknown keys are refused, not kept. A key no field names would be read by nobody typed and
copied along untouched, and a misspelt section ("tirage") would silently mean "no triage"; a
writer that needs a new key adds a field here, and a change of meaning bumps `schema_version`.
The reports inside a card (metrics per split, the training settings, the answers' regressions)
stay JSON objects: their keys are data (splits, kinds of photo, settings), their shapes owned by
the code that computes and parses them (`contract.metrics`, `contract.answers`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from contract.jsonclass import JsonClass, JsonFormatError
from contract.triage import TriageThresholds

SCHEMA_VERSION = 1
MODEL_CARD_JSON = "model_card.json"  # in a run or export folder, and packed in each .tflite

# The fields that name one trained model: a card can replace another in a file (a new
# calibration, `train.calibrate` then `export.card`) only if these agree.
MODEL_IDENTITY = ("name", "version", "labels", "input")

JsonObject = Mapping[str, Any]


class CardError(JsonFormatError):
    """The JSON is not a model card this code can read; the message says where and why."""


class _Section(JsonClass):
    """A part of the card (absent fields left out of its JSON)."""

    format_error = CardError


@dataclass(frozen=True, kw_only=True)
class InputContract(_Section):
    """The image the network takes: raw RGB pixels, the whole photo stretched to this size."""

    height: int
    width: int
    channels: int | None = None
    color_space: str | None = None
    pixel_range: tuple[int, ...] | None = None
    resize: str | None = None  # contract.images.RESIZE_RULE
    # None: fed unchanged; else a step of contract.colour_constancy.STEPS on the resized pixels
    colour_constancy: str | None = None
    dtype: str | None = None  # the test fixtures' cards only


@dataclass(frozen=True, kw_only=True)
class Calibration(_Section):
    """The temperature of `contract.screening.apply_temperature`, and what it was fitted on."""

    temperature: float
    fitted_on: str | None = None


@dataclass(frozen=True, kw_only=True)
class DomainTriage(_Section):
    """One kind of photo's own threshold and what it was measured to keep on val (or, where
    `chosen_on` says so, on other predictions: `python -m train.crossfit`'s out-of-fold ones)."""

    own_threshold: float
    sensitivity_lower_bound_95: float | None = None
    sensitivity_at_own_threshold: float | None = None
    referrals_per_malignant_found: float | None = None  # NaN when none was found
    fitted_on: JsonObject | None = None  # images, malignant_images, malignant_groups (, folds)
    chosen_on: str | None = None  # None: the triage's chosen_on (val)


@dataclass(frozen=True, kw_only=True)
class Triage(_Section):
    """A triage section (the card's, or its answers'): thresholds on calibrated P(malignant)."""

    malignant_threshold: float  # for a photo of any kind: the lowest of by_domain's
    target_sensitivity: float | None = None
    chosen_on: str | None = None
    threshold_rule: str | None = None
    by_domain: Mapping[str, DomainTriage] | None = None
    photo_referral_stands: bool | None = None  # answers only; None (before 2026-12-06): false
    rule: str | None = None  # the photo-only section's triage rule, in words

    @property
    def thresholds(self) -> TriageThresholds:
        """Which threshold a photo gets, by its kind (`contract.triage`)."""
        by_domain = {d: f.own_threshold for d, f in (self.by_domain or {}).items()}
        return TriageThresholds(self.malignant_threshold, by_domain)


@dataclass(frozen=True, kw_only=True)
class AnswersSection(_Section):
    """What a person's answers add (`contract.answers.answer_spec` parses the regressions)."""

    questions: tuple[JsonObject, ...]  # contract.questionnaire.Question.as_json
    models: Mapping[str, JsonObject]  # kind of photo -> contract.answers.DomainModel.as_json
    rule: str
    fitted_on: str | None = None
    strength_search: JsonObject | None = None
    calibration: Calibration
    triage: Triage
    metrics: JsonObject | None = None  # split -> scope -> report, with the answers


@dataclass(frozen=True, kw_only=True)
class DataSource(_Section):
    name: str
    citation: str
    license: str


@dataclass(frozen=True, kw_only=True)
class ExportSection(_Section):
    """How an exported file was quantized; only the card packed in a .tflite has it."""

    variant: str
    calibration_images: int | None = None
    bias_correction: bool | None = None
    float_ops: int | None = None
    float_ops_split: str | None = None
    flips: int | None = None  # the views the file averages in its graph (export.flips); None: 1


@dataclass(frozen=True, kw_only=True)
class ModelCard(_Section):
    """A classifier's model card; fields in the order its JSON lists them."""

    schema_version: int | None = None  # None: a card written before versions (test fixtures)
    name: str
    version: str
    labels: tuple[str, ...]
    display_names: tuple[str, ...]
    malignant_labels: tuple[str, ...]
    input: InputContract
    preprocessing: str | None = None
    output: str | None = None
    backbone: str | None = None
    hparams: JsonObject | None = None  # the training settings (train.model.hparams), or members
    counts: JsonObject | None = None  # split -> kind of photo -> class -> images
    skipped_images: int | None = None
    calibration: Calibration
    triage: Triage
    metrics: JsonObject  # split -> scope -> report (contract.metrics), photo only
    training: JsonObject | None = None  # how the training ran (backend, devices, time)
    intended_use: str
    limitations: tuple[str, ...]
    data_sources: tuple[DataSource, ...]
    license: str
    disclaimer: str
    answers: AnswersSection | None = None
    export: ExportSection | None = None

    @classmethod
    def from_json(cls, value: Any, where: str = "model card") -> ModelCard:
        """The card a JSON object holds; CardError naming the first key that is wrong."""
        card = super().from_json(value, where)
        if card.schema_version is not None and card.schema_version > SCHEMA_VERSION:
            raise CardError(
                f"model card schema_version {card.schema_version} is newer than this code "
                f"reads ({SCHEMA_VERSION}); update it"
            )
        return card

    def to_text(self, allow_nan: bool = True) -> str:
        """The JSON text of the card file. A packed card refuses NaN (`allow_nan=False`): the
        page's JSON.parse cannot read it."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, allow_nan=allow_nan) + "\n"

    def with_metrics(self, split: str, report: JsonObject, with_answers: bool = False) -> ModelCard:
        """This card with a split's metrics recorded (photo only, or the answers')."""
        if with_answers:
            if self.answers is None:
                raise CardError("the model card has no answers section to record metrics in")
            metrics = {**(self.answers.metrics or {}), split: copy.deepcopy(report)}
            return replace(self, answers=replace(self.answers, metrics=metrics))
        return replace(self, metrics={**self.metrics, split: copy.deepcopy(report)})

    def without_measurements(self) -> ModelCard:
        """The card without what measuring a file adds (metrics, the `export` entry): two cards
        equal in this describe the same model, calibrated the same way."""
        answers = self.answers and replace(self.answers, metrics=None)
        return replace(self, metrics={}, export=None, answers=answers)

    def identity_differences(self, other: ModelCard) -> list[str]:
        """The `MODEL_IDENTITY` fields in which two cards differ (none: the same model)."""
        return [key for key in MODEL_IDENTITY if getattr(self, key) != getattr(other, key)]


def read_model_card(folder: Path) -> ModelCard:
    """`model_card.json` of a run or export folder; CardError if it is not a card."""
    return read_card_file(folder / MODEL_CARD_JSON)


def read_card_file(path: Path) -> ModelCard:
    """A card file by its path; CardError if it is not JSON or not a card (OSError if it
    cannot be read)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CardError(f"{path} is not JSON: {error}") from None
    try:
        return ModelCard.from_json(value)
    except CardError as error:
        raise CardError(f"{path}: {error}") from None


def write_model_card(folder: Path, card: ModelCard) -> Path:
    """`model_card.json` in a run folder (or an export folder, beside the .tflite files)."""
    path = folder / MODEL_CARD_JSON
    path.write_text(card.to_text(), encoding="utf-8")
    return path
