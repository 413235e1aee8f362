"""The questionnaire, its encoding, and the answers' likelihood-ratio model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contract import metrics
from contract.answers import RULE, DomainModel
from contract.card import AnswersSection
from contract.questionnaire import (
    BY_NAME,
    QUESTIONS,
    QUESTIONS_BY_DOMAIN,
    Question,
    encode_recorded,
    feature_names,
)
from contract.records import Record, Skipped
from contract.screening import apply_temperature
from contract.taxonomy import LABELS, PHONE
from train.answers.regression import fit_answer_model
from train.data.answers import dataset_answers
from train.data.datasets import load_dataset

AGE = BY_NAME["age"]
encode = encode_recorded


def normalise_answer(question: Question, raw: str) -> str | None:
    index = question.recorded_index(raw)
    return None if index is None else question.choices[index]


@pytest.mark.parametrize(
    ("age", "choice"),
    [("0", "0-29"), ("29.9", "0-29"), ("30", "30-44"), ("59", "45-59"), ("75", "75+"),
     ("120", "75+"), ("-1", None), ("121", None), ("old", None), ("", None)],
)  # fmt: skip
def test_age_falls_into_the_cards_bins(age: str, choice: str | None):
    assert normalise_answer(AGE, age) == choice


@pytest.mark.parametrize(
    ("question", "raw", "choice"),
    [("site", "FOREARM", "arm"), ("site", "lower extremity", "leg"), ("site", "NOSE", "face"),
     ("site", "unknown", None), ("sex", "FEMALE", "female"), ("sex", "unknown", None),
     ("bleed", "True", "yes"), ("bleed", "False", "no"), ("bleed", "UNK", None),
     ("itch", "maybe", None)],
)  # fmt: skip
def test_data_set_spellings_map_onto_the_choices(question: str, raw: str, choice: str | None):
    assert normalise_answer(BY_NAME[question], raw) == choice


def test_encoding_is_one_block_per_question_and_zeros_when_unanswered():
    questions = QUESTIONS_BY_DOMAIN[PHONE]
    names = feature_names(BY_NAME[q] for q in questions)
    assert len(names) == sum(len(BY_NAME[q].choices) for q in questions)
    assert not encode({}, questions).any()
    assert not encode({"bleed": "UNK", "age": ""}, questions).any()
    x = encode({"age": "64", "site": "FACE", "bleed": "True"}, questions)
    assert [names[i] for i in np.flatnonzero(x)] == ["age=60-74", "site=face", "bleed=yes"]


def test_question_json_tells_a_client_how_to_encode():
    specs = [q.as_json() for q in QUESTIONS]
    assert specs[0] == {
        "name": "age",
        "text": AGE.text,
        "kind": "number",
        "bins": [30, 45, 60, 75],
        "minimum": 0,
        "maximum": 120,
    }
    assert all(s["kind"] == "choice" and s["choices"] for s in specs[1:])


def test_answers_are_read_from_the_data_sets_csv_by_image_stem(tmp_path: Path):
    ham = tmp_path / "ham" / "images"
    ham.mkdir(parents=True)
    (tmp_path / "ham" / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
        "HAM_1,ISIC_1,mel,histo,55.0,male,back\n"
    )
    pad = tmp_path / "pad" / "images"
    pad.mkdir(parents=True)
    (tmp_path / "pad" / "metadata.csv").write_text(
        "patient_id,lesion_id,age,gender,region,diagnostic,itch,grew,hurt,changed,bleed,"
        "elevation,img_id\nPAT_1,1,70,,FACE,BCC,False,True,False,UNK,True,True,PAT_1_1_1.png\n"
    )
    folder = tmp_path / "mine" / "nv"
    folder.mkdir(parents=True)
    records = [
        Record(ham / "ISIC_1.jpg", "mel", "g1", "dermoscopic", "HAM10000"),
        Record(pad / "PAT_1_1_1.jpg", "bcc", "g2", PHONE, "PAD-UFES-20"),
        Record(folder / "x.jpg", "nv", "g3", PHONE, "mine"),
    ]
    ham_answers, pad_answers, none = dataset_answers(records)
    assert ham_answers == {"age": "55.0", "sex": "male", "site": "back"}
    assert pad_answers["site"] == "FACE" and pad_answers["bleed"] == "True"
    assert pad_answers["sex"] == "" and pad_answers["changed"] == "UNK"
    assert none == {}


def test_photos_and_their_cutouts_share_the_patients_answers(data_dir: Path):
    skipped = Skipped()
    photos = load_dataset(data_dir / "pad_ufes20", skipped)[:40]
    cutouts = {r.path.stem: r for r in load_dataset(data_dir / "pad_ufes20_cutouts", skipped)}
    pairs = [(p, cutouts[p.path.stem]) for p in photos if p.path.stem in cutouts]
    assert pairs, "expected cut-outs of some of the first 40 photos"
    photo_answers = dataset_answers([p for p, _ in pairs])
    cutout_answers = dataset_answers([c for _, c in pairs])
    assert photo_answers == cutout_answers
    assert all(a["site"] and a["bleed"] in ("True", "False", "UNK") for a in photo_answers)


def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Phone answers where bleeding says bcc and a young age says nv; the rest is noise."""
    rng = np.random.default_rng(seed)
    classes = [LABELS.index(c) for c in ("bcc", "nv", "bkl")]
    y = rng.choice(classes, size=n)
    rows = []
    for label in y:
        bcc, nv = label == LABELS.index("bcc"), label == LABELS.index("nv")
        rows.append(
            {
                "bleed": "yes" if rng.random() < (0.8 if bcc else 0.1) else "no",
                "age": str(rng.integers(18, 29) if nv else rng.integers(50, 90)),
                "itch": rng.choice(["yes", "no"]),
            }
        )
    questions = QUESTIONS_BY_DOMAIN[PHONE]
    return np.array([encode(r, questions) for r in rows]), y


def test_the_regression_learns_a_planted_signal_and_no_answers_change_nothing():
    x, y = _planted(600, seed=1)
    model = fit_answer_model(PHONE, QUESTIONS_BY_DOMAIN[PHONE], x, y)
    assert model.classes == ("bcc", "bkl", "nv")
    questions = model.question_names
    bleeding = model.log_ratios(encode({"bleed": "yes"}, questions))[0]
    young = model.log_ratios(encode({"age": "20"}, questions))[0]
    # True ratios: log(0.8 / (1/3)) = 0.88 for bcc, log(0.1 / (1/3)) = -1.2 for nv.
    assert bleeding[LABELS.index("bcc")] > 0.5 and bleeding[LABELS.index("nv")] < -0.5
    assert young[LABELS.index("nv")] > 0.5
    assert not model.log_ratios(encode({}, questions)).any()  # exactly the photo-only result
    assert not bleeding[[LABELS.index(c) for c in ("akiec", "df", "mel", "vasc")]].any()

    x_test, y_test = _planted(600, seed=2)
    flat = np.full((len(y_test), len(LABELS)), 1 / len(LABELS))  # a photo that says nothing
    combined = apply_temperature(flat, 1.0, model.log_ratios(x_test))
    assert np.allclose(combined.sum(axis=1), 1)
    assert metrics.balanced_accuracy(y_test, combined.argmax(axis=1)) > 0.7


def test_answers_add_scaled_log_ratios_to_log_probabilities():
    raw = np.array([[0.1, 0.2, 0.3, 0.05, 0.05, 0.2, 0.1]])
    ratios = np.zeros((1, len(LABELS)))
    ratios[0, 1] = np.log(4.0)
    assert np.allclose(apply_temperature(raw, 1.0, 0.0 * ratios), raw)
    odds = apply_temperature(raw, 1.0, 0.5 * ratios)[0] / raw[0]
    assert odds[1] / odds[0] == pytest.approx(2.0)  # strength 0.5: half the log ratio


def test_the_model_survives_the_json_of_a_model_card():
    x, y = _planted(200, seed=3)
    model = fit_answer_model(PHONE, QUESTIONS_BY_DOMAIN[PHONE], x, y)
    spec = json.loads(json.dumps(model.as_json()))
    assert spec["features"] == feature_names(model.questions)
    again = DomainModel.from_json(PHONE, spec, BY_NAME, LABELS)
    assert np.allclose(again.log_ratios(x[:20]), model.log_ratios(x[:20]), atol=1e-5)


def test_one_class_is_not_enough_to_fit():
    x, _ = _planted(20, seed=4)
    with pytest.raises(ValueError, match="at least two classes"):
        fit_answer_model(PHONE, QUESTIONS_BY_DOMAIN[PHONE], x, np.zeros(20, dtype=int))


def test_pad_records_sex_only_for_biopsied_lesions(data_dir: Path):
    """Why the phone model leaves sex out (train.data.answers.QUESTIONS_BY_DOMAIN)."""
    records = load_dataset(data_dir / "pad_ufes20", Skipped())
    without_sex = {
        r.label for r, a in zip(records, dataset_answers(records), strict=True) if not a["sex"]
    }
    assert without_sex and not without_sex & {"bcc", "mel"}
    assert "sex" not in QUESTIONS_BY_DOMAIN[PHONE]


def test_reversing_an_answer_counts_changed_triage_and_lost_referrals():
    from train.answer_sensitivity import reversed_answer_effects

    x, y = _planted(400, seed=5)
    model = fit_answer_model(PHONE, QUESTIONS_BY_DOMAIN[PHONE], x, y)
    section = {
        "questions": [q.as_json() for q in QUESTIONS],
        "models": {PHONE: model.as_json()},
        "rule": RULE,
        "calibration": {"temperature": 1.0},
        "triage": {"malignant_threshold": 0.5},
    }
    # A photo that says nothing, so only the answers decide: bleeding -> bcc -> referred.
    raw = np.full((4, len(LABELS)), 1 / len(LABELS))
    raw[:, [LABELS.index(c) for c in ("akiec", "df", "mel", "vasc")]] = 0.001
    raw /= raw.sum(axis=1, keepdims=True)
    y = np.array([LABELS.index("bcc")] * 2 + [LABELS.index("nv")] * 2)
    answers = [{"bleed": "yes"}, {"bleed": "yes"}, {"bleed": "no"}, {"itch": "UNK"}]
    phone, no_photo_referral = np.array([PHONE] * 4), np.zeros(4, bool)

    def effects(section: dict, photo_refers: np.ndarray = no_photo_referral) -> dict:
        section = AnswersSection.from_json(section)
        rows = reversed_answer_effects(section, raw, y, phone, answers, photo_refers)
        return {r["question"]: r for r in rows}

    rows = effects(section)
    assert set(rows) == {"bleed"}  # itch was not answered by anyone
    bleed = rows["bleed"]
    assert bleed["images"] == 3 and bleed["malignant"] == 2
    assert bleed["triage_changed"] == 3  # each reversal moves the only evidence across 0.5
    assert bleed["malignant_no_longer_referred"] == 2
    # Where the photo's referral stands, the first malignant photo (referred by the photo alone)
    # stays referred whatever its answer; a card without that rule ignores the photo's referral.
    first_photo_refers = np.array([True, False, False, False])
    assert effects(section, first_photo_refers)["bleed"]["malignant_no_longer_referred"] == 2
    section["triage"]["photo_referral_stands"] = True
    stands = effects(section, first_photo_refers)["bleed"]
    assert (stands["triage_changed"], stands["malignant_no_longer_referred"]) == (2, 1)
    # The phone's own threshold, above any P(malignant) here: no answer refers, none changes.
    section["triage"]["by_domain"] = {PHONE: {"own_threshold": 0.999}}
    assert [(q, r["triage_changed"]) for q, r in effects(section).items()] == [("bleed", 0)]


def test_a_domain_without_answers_for_two_classes_gets_no_model(tmp_path: Path, capsys):
    from train.answers.fitting import fit_domain_models

    folder = tmp_path / "mine"  # a class-folder data set: no metadata csv, so no answers
    photos = [Record(folder / c / f"{i}.jpg", c, f"g{i}", PHONE, "mine") for i, c in
              enumerate(["nv", "mel", "bcc"])]  # fmt: skip
    assert fit_domain_models(photos) == {}
    assert "phone: no answers for two classes" in capsys.readouterr().out
