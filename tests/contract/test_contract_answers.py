"""contract.answers: the log-ratio formula by hand, and the card's answers section checked."""

from __future__ import annotations

import numpy as np
import pytest

from contract.answers import AnswerSpec, DomainModel, answer_spec, log_softmax
from contract.card import ModelCard
from contract.questionnaire import AnswerError

LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def spec_of(card: dict) -> AnswerSpec | None:
    """The answers of a card's JSON, read as every client reads them."""
    return answer_spec(ModelCard.from_json(card).answers, LABELS)


def log_ratios(features, weights, bias):
    return log_softmax(features @ weights + bias) - log_softmax(bias)


def test_log_ratios_by_hand():
    # One feature adds 2 to the first class; flat prior. r_0 = 2 - ln(e^2 + 1) + ln 2.
    weights, bias = np.array([[2.0, 0.0], [0.0, 0.0]]), np.zeros(2)
    r = log_ratios(np.array([1.0, 0.0]), weights, bias)
    assert r == pytest.approx([0.5662191695, -1.4337808305], abs=1e-9)
    # Nothing answered: exactly the prior, whatever the bias.
    assert log_ratios(np.zeros(2), weights, np.array([0.3, -1.0])).tolist() == [0.0, 0.0]


def test_domain_model_log_ratios_by_hand():
    # The card's regression covers two of three labels; the third gets r = 0.
    model = DomainModel(
        domain="phone",
        questions=(),
        classes=("c", "a"),
        labels=("a", "b", "c"),
        weights=np.array([[2.0, 0.0], [0.0, 0.0]]),
        bias=np.zeros(2),
    )
    r = model.log_ratios(np.array([1.0, 0.0]))
    assert r.shape == (1, 3)
    assert r[0] == pytest.approx([-1.4337808305, 0.0, 0.5662191695], abs=1e-9)
    model = DomainModel(
        "phone", (), ("c", "a"), ("a", "b", "c"), model.weights, np.array([0.3, -1])
    )
    assert model.log_ratios(np.zeros((2, 2))).tolist() == [[0.0, 0.0, 0.0]] * 2


def test_a_question_the_card_does_not_ask_is_refused(answers_card):
    section = answers_card["answers"]
    section["questions"] = [q for q in section["questions"] if q["name"] in ("age", "sex")]
    phone = section["models"]["phone"]
    phone.update(questions=["age", "sex"], features=phone["features"][:7])
    phone["weights"] = phone["weights"][:7]
    del section["models"]["dermoscopic"]
    spec = spec_of(answers_card)
    assert spec.read({"age": ["50"]}).indices == {"age": 2}
    with pytest.raises(AnswerError) as raised:
        spec.read({"itch": ["yes"]})
    assert raised.value.code == "unknown_question" and "age, sex" in str(raised.value)


def test_the_well_formed_card_is_accepted(answers_card):
    spec = spec_of(answers_card)
    assert set(spec.models) == {"phone", "dermoscopic"} and spec.temperature == 0.8
    assert spec.photo_referral_stands is True
    assert answer_spec(None, LABELS) is None
    del answers_card["answers"]["triage"]["photo_referral_stands"]  # a card written before it
    assert spec_of(answers_card).photo_referral_stands is False


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda a: a["models"]["phone"]["weights"].pop(), "weights"),
        (lambda a: a["models"]["phone"]["questions"].append("mood"), "mood"),
        (lambda a: a["models"]["phone"]["classes"].__setitem__(0, "xyz"), "classes"),
        (lambda a: a.pop("calibration"), "missing 'calibration'"),
        (lambda a: a["calibration"].update(temperature=0), "temperature must be positive"),
        (lambda a: a["questions"][0].update(bins=[45, 30, 60, 75]), "ascending"),
        (lambda a: a["triage"].update(photo_referral_stands="yes"), "stands: expected bool"),
    ],
)
def test_a_malformed_answers_section_is_refused(answers_card, change, reason):
    change(answers_card["answers"])
    with pytest.raises(ValueError, match=reason):
        spec_of(answers_card)
