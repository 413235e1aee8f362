"""contract.card: every card in the repository reads as a `ModelCard` and writes back unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from contract.card import (
    MODEL_CARD_JSON,
    SCHEMA_VERSION,
    CardError,
    ModelCard,
    read_model_card,
    write_model_card,
)
from contract.model_file import read_associated_files, read_model_file

REPO = Path(__file__).resolve().parents[2]


def _card_files() -> list[Path]:
    """The committed cards (models/, models/small/), and those of the local run folders."""
    found = [REPO / "models" / MODEL_CARD_JSON, *sorted(REPO.glob(f"models/*/{MODEL_CARD_JSON}"))]
    return [*found, *sorted(REPO.glob(f"runs/*/{MODEL_CARD_JSON}"))]


def _packed_cards() -> list[Path]:
    """The classifier files in models/ and the test fixtures (their cards are packed)."""
    files = sorted(REPO.glob("models/**/*.tflite")) + sorted(REPO.glob("tests/fixtures/*.tflite"))
    return [f for f in files if MODEL_CARD_JSON in read_associated_files(read_model_file(f))]


@pytest.mark.parametrize("path", _card_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_card_file_reads_and_writes_back_the_same_json(path: Path):
    value = json.loads(path.read_text(encoding="utf-8"))
    card = ModelCard.from_json(value)
    assert card.to_json() == value
    assert list(card.to_json()) == list(value)  # and in the same order
    assert card.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("path", _packed_cards(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_packed_card_reads_and_writes_back_the_same_json(path: Path):
    value = json.loads(read_associated_files(read_model_file(path))[MODEL_CARD_JSON])
    assert ModelCard.from_json(value).to_json() == value


def test_the_committed_cards_include_both_shipped_files_and_the_fixtures():
    names = {str(p.relative_to(REPO)) for p in _card_files() + _packed_cards()}
    assert {"models/model_card.json", "models/small/model_card.json"} <= names
    assert "tests/fixtures/tiny_uint8_answers.tflite" in names


def test_a_fixture_card_without_a_version_reads_as_written(answers_card: dict):
    card = ModelCard.from_json(answers_card)
    assert card.schema_version is None and "schema_version" not in card.to_json()
    assert card.to_json() == answers_card
    assert card.answers is not None and card.answers.triage.photo_referral_stands is True


def test_the_card_file_reads_back_as_written(tmp_path: Path, answers_card: dict):
    card = ModelCard.from_json(answers_card)
    write_model_card(tmp_path, card)
    assert read_model_card(tmp_path) == card


def test_an_unknown_key_is_refused_with_where_it_is(answers_card: dict):
    answers_card["triage"]["tirage_rule"] = "misspelt"
    with pytest.raises(CardError, match=r"model card\.triage: unknown key\(s\) \['tirage_rule'\]"):
        ModelCard.from_json(answers_card)


def test_a_missing_or_mistyped_key_is_named(answers_card: dict):
    del answers_card["calibration"]["temperature"]
    with pytest.raises(CardError, match=r"model card\.calibration: missing 'temperature'"):
        ModelCard.from_json(answers_card)
    answers_card["calibration"]["temperature"] = "1.5"
    with pytest.raises(CardError, match=r"calibration\.temperature: expected float, got str"):
        ModelCard.from_json(answers_card)
    answers_card["calibration"]["temperature"] = 1.5
    answers_card["labels"] = "akiec"
    with pytest.raises(CardError, match=r"model card\.labels: expected a list"):
        ModelCard.from_json(answers_card)


def test_a_card_of_a_newer_schema_is_refused(answers_card: dict):
    answers_card["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(CardError, match="newer than this code reads"):
        ModelCard.from_json(answers_card)


def test_a_file_that_is_not_a_card_is_a_card_error(tmp_path: Path):
    (tmp_path / MODEL_CARD_JSON).write_text("{not json", encoding="utf-8")
    with pytest.raises(CardError, match="is not JSON"):
        read_model_card(tmp_path)
    (tmp_path / MODEL_CARD_JSON).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(CardError, match="expected a JSON object, got list"):
        read_model_card(tmp_path)


def test_identity_is_name_version_labels_and_input(answers_card: dict):
    card = ModelCard.from_json(answers_card)
    recalibrated = replace(card, calibration=replace(card.calibration, temperature=9.0))
    assert card.identity_differences(recalibrated) == []
    other = replace(card, version="2", input=replace(card.input, height=32))
    assert card.identity_differences(other) == ["version", "input"]


def test_metrics_recorded_photo_only_or_with_answers_leave_the_rest(answers_card: dict):
    card = ModelCard.from_json(answers_card)
    report = {"overall": {"n": 3}}
    photo = card.with_metrics("val", report)
    assert photo.metrics["val"] == report and photo.answers == card.answers
    answers = card.with_metrics("val", report, with_answers=True)
    assert answers.answers is not None and answers.answers.metrics["val"] == report
    assert answers.metrics == card.metrics
    assert photo.without_measurements() == answers.without_measurements()
    assert card.without_measurements() != replace(card, license="x").without_measurements()
    with pytest.raises(CardError, match="no answers section"):
        replace(card, answers=None).with_metrics("val", report, with_answers=True)


def test_the_thresholds_are_the_kinds_own_and_the_lowest_for_any(answers_card: dict):
    triage = ModelCard.from_json(answers_card).triage.thresholds
    assert triage.for_domain("dermoscopic") == 0.35 and triage.for_domain("phone") == 0.3
    assert triage.for_domain(None) == 0.3


def test_a_packed_card_refuses_nan(answers_card: dict):
    answers_card["triage"]["by_domain"]["phone"]["referrals_per_malignant_found"] = float("nan")
    card = ModelCard.from_json(answers_card)
    assert "NaN" in card.to_text()
    with pytest.raises(ValueError, match="Out of range float"):
        card.to_text(allow_nan=False)
