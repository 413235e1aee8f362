"""Optional answers about the patient and the spot (age, sex, body site, symptoms).

PAD-UFES-20 records, for each photo, the questions a clinician asks: does it itch, has it grown,
does it hurt, has it changed, has it bled, is it raised; HAM10000 records age, sex and body site.
A screening app can ask the user the same questions. This module is the questionnaire, reads the
data sets' answers, and encodes them the way the model card describes, so the demo server (and a
phone app) can encode a user's answers without this code.

Encoding: one feature per choice of each question, 1.0 for the chosen one; an unanswered
question is all zeros. Age is a number, put into the bins the card lists.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.datasets import Record
from train.taxonomy import DERMOSCOPIC, PHONE

YES_NO = ("yes", "no")
AGE_BINS = (30, 45, 60, 75)  # upper edges: <30, 30-44, 45-59, 60-74, 75+
BODY_SITES = ("face", "scalp", "neck", "trunk", "back", "arm", "hand", "leg", "foot", "genital")
# The data sets' body-site names, folded onto BODY_SITES (ear, nose and lip count as face).
SITE_ALIASES = {
    "face": "face",
    "ear": "face",
    "nose": "face",
    "lip": "face",
    "scalp": "scalp",
    "neck": "neck",
    "chest": "trunk",
    "abdomen": "trunk",
    "trunk": "trunk",
    "back": "back",
    "arm": "arm",
    "forearm": "arm",
    "upper extremity": "arm",
    "hand": "hand",
    "thigh": "leg",
    "lower extremity": "leg",
    "foot": "foot",
    "acral": "foot",
    "genital": "genital",
}
SYMPTOMS = ("itch", "grew", "hurt", "changed", "bleed", "elevation")


@dataclass(frozen=True)
class Question:
    name: str
    text: str
    choices: tuple[str, ...] = YES_NO
    age_bins: tuple[int, ...] = ()  # set for the one numeric question: its choices are the bins

    def as_json(self) -> dict:
        spec = {"name": self.name, "text": self.text}
        if self.age_bins:
            spec.update(kind="number", bins=list(self.age_bins), minimum=0, maximum=120)
        else:
            spec.update(kind="choice", choices=list(self.choices))
        return spec


def _age_choices(bins: tuple[int, ...]) -> tuple[str, ...]:
    edges = (0, *bins)
    return tuple(f"{lo}-{hi - 1}" for lo, hi in zip(edges, bins, strict=False)) + (f"{bins[-1]}+",)


QUESTIONS: tuple[Question, ...] = (
    Question("age", "How old is the person, in years?", _age_choices(AGE_BINS), AGE_BINS),
    Question("sex", "Sex", ("female", "male")),
    Question("site", "Where on the body is the spot?", BODY_SITES),
    Question("itch", "Does it itch?"),
    Question("grew", "Has it grown?"),
    Question("hurt", "Does it hurt?"),
    Question("changed", "Has it changed (colour, shape, surface)?"),
    Question("bleed", "Has it bled?"),
    Question("elevation", "Is it raised above the skin?"),
)
BY_NAME = {q.name: q for q in QUESTIONS}
# The questions each domain's model uses. HAM10000 has no symptom questions. PAD-UFES-20's sex is
# left out: it is recorded only for the patients whose lesions went to biopsy (every BCC, SCC and
# melanoma; none of its 213 photos without sex is one), so "sex known" would teach the model that
# answering pushes towards cancer, which is how the data were collected, not what the answer says.
QUESTIONS_BY_DOMAIN = {
    DERMOSCOPIC: ("age", "sex", "site"),
    PHONE: ("age", "site", *SYMPTOMS),
}

Answers = Mapping[str, str]  # question name -> choice (age: the number as text)


def normalise_answer(question: Question, value: str) -> str | None:
    """The feature choice for a raw answer, or None when it is not an answer we know."""
    value = value.strip().lower()
    if question.age_bins:
        try:
            age = float(value)
        except ValueError:
            return None
        if not 0 <= age <= 120:
            return None
        return question.choices[int(np.searchsorted(question.age_bins, age, side="right"))]
    if question.name == "site":
        value = SITE_ALIASES.get(value, value)
    value = {"true": "yes", "false": "no"}.get(value, value)
    return value if value in question.choices else None


def encode(answers: Answers, questions: Iterable[str]) -> np.ndarray:
    """The feature vector of one person's answers (unknown answers are all-zero blocks)."""
    features: list[float] = []
    for name in questions:
        question = BY_NAME[name]
        raw = answers.get(name)
        choice = normalise_answer(question, raw) if raw is not None else None
        features += [float(choice == c) for c in question.choices]
    return np.array(features, dtype=np.float64)


def feature_names(questions: Iterable[str]) -> list[str]:
    return [f"{name}={c}" for name in questions for c in BY_NAME[name].choices]


def _ham10000_answers(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return {
            row["image_id"]: {
                "age": row.get("age", ""),
                "sex": row.get("sex", ""),
                "site": row.get("localization", ""),
            }
            for row in csv.DictReader(f)
        }


def _pad_ufes20_answers(csv_path: Path) -> dict[str, dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return {
            Path(row["img_id"]).stem: {
                "age": row.get("age", ""),
                "sex": row.get("gender", ""),
                "site": row.get("region", ""),
                **{s: row.get(s, "") for s in SYMPTOMS},
            }
            for row in csv.DictReader(f)
        }


def dataset_answers(records: Iterable[Record]) -> list[dict[str, str]]:
    """Each record's answers from its data set's metadata csv ({} for a folder without one).

    The csv is found above the image (the layouts of `train.datasets`); images match by stem.
    """
    by_csv: dict[Path, dict[str, dict[str, str]]] = {}
    found = []
    for record in records:
        csv_path = _metadata_csv(record.path)
        if csv_path is not None and csv_path not in by_csv:
            reader = (
                _ham10000_answers
                if csv_path.name == "HAM10000_metadata.csv"
                else _pad_ufes20_answers
            )
            by_csv[csv_path] = reader(csv_path)
        table = by_csv.get(csv_path, {}) if csv_path is not None else {}
        found.append(table.get(record.path.stem, {}))
    return found


def _metadata_csv(image: Path) -> Path | None:
    for folder in image.parents[:2]:  # images/ or a part folder sits just below the csv
        for name in ("HAM10000_metadata.csv", "metadata.csv"):
            if (folder / name).is_file():
                return folder / name
    return None
