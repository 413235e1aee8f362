"""The optional questions about the person and the spot, and how answers become features.

PAD-UFES-20 records, for each photo, what a clinician asks: does it itch, has it grown, does it
hurt, has it changed, has it bled, is it raised; HAM10000 records age, sex and body site. A
screening app asks the user the same questions. Training writes `QUESTIONS` into the model card;
the server and a phone app read them back from the card with `Question.from_json`.

Encoding: one feature per choice of each question, 1.0 for the chosen one; an unanswered
question is all zeros. A number question (age) has one choice per bin (`searchsorted`, right).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.taxonomy import DERMOSCOPIC, PHONE

NUMBER, CHOICE = "number", "choice"
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
# ASCII digits only, as the page's JavaScript reads them (Python's \d takes any script's).
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


class AnswerError(ValueError):
    """A person's answer that cannot be used; `code` names the kind for an API response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def bin_labels(bins: Sequence[float]) -> tuple[str, ...]:
    """The choices of a number question: '0-29', '30-44', ..., '75+'."""
    edges = (0, *bins)
    return tuple(f"{lo:g}-{hi - 1:g}" for lo, hi in zip(edges, bins, strict=False)) + (
        f"{bins[-1]:g}+",
    )


@dataclass(frozen=True)
class Question:
    """One question; a number question's choices are its bins' labels."""

    name: str
    text: str
    kind: str = CHOICE
    choices: tuple[str, ...] = YES_NO
    bins: tuple[float, ...] = ()
    minimum: float = 0.0
    maximum: float = 120.0

    @classmethod
    def number(cls, name: str, text: str, bins: Sequence[float], **limits: float) -> Question:
        return cls(name, text, NUMBER, bin_labels(bins), tuple(bins), **limits)

    @property
    def width(self) -> int:
        """How many one-hot features the question takes in a feature vector."""
        return len(self.choices)

    def as_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "text": self.text}
        if self.kind == NUMBER:
            bins = [int(b) if float(b).is_integer() else b for b in self.bins]
            spec.update(kind=NUMBER, bins=bins, minimum=self.minimum, maximum=self.maximum)
            if float(self.minimum).is_integer() and float(self.maximum).is_integer():
                spec.update(minimum=int(self.minimum), maximum=int(self.maximum))
        else:
            spec.update(kind=CHOICE, choices=list(self.choices))
        return spec

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> Question:
        """A question from a model card; ValueError (or KeyError) if it is malformed."""
        name, kind = str(spec["name"]), spec["kind"]
        text = str(spec.get("text", name))
        if kind == CHOICE:
            question = cls(name, text, CHOICE, tuple(map(str, spec["choices"])))
        elif kind == NUMBER:
            bins = tuple(float(b) for b in spec["bins"])
            if not bins or list(bins) != sorted(bins):
                raise ValueError(f"{name}: bins must be ascending")
            low, high = float(spec.get("minimum", 0)), float(spec.get("maximum", 120))
            question = cls.number(name, text, bins, minimum=low, maximum=high)
        else:
            raise ValueError(f"{name}: unknown kind {kind!r}")
        if question.width < 2:
            raise ValueError(f"{name}: fewer than two choices")
        return question

    def index_of(self, value: str) -> int:
        """The choice of a person's non-empty answer, strictly (AnswerError says what is ok)."""
        if self.kind == CHOICE:
            if value not in self.choices:
                raise AnswerError(
                    "invalid_answer",
                    f"{shown(value)} is not a choice for '{self.name}' ({self.text}): send one "
                    f"of {', '.join(self.choices)}, or leave it empty if you do not know.",
                )
            return self.choices.index(value)
        allowed = f"a number from {self.minimum:g} to {self.maximum:g}, or empty"
        if not _DECIMAL.fullmatch(value):
            raise AnswerError(
                "invalid_answer",
                f"'{self.name}' must be {allowed}; {shown(value)} is not a number.",
            )
        number = float(value)
        if not self.minimum <= number <= self.maximum:
            raise AnswerError(
                "invalid_answer",
                f"'{self.name}' must be {allowed}; {shown(value)} is out of range.",
            )
        return int(np.searchsorted(self.bins, number, side="right"))

    def recorded_index(self, value: str) -> int | None:
        """The choice of an answer as a data set records it (case, aliases, true/false), or None
        when it is not an answer we know."""
        value = value.strip().lower()
        if self.name == "site":
            value = SITE_ALIASES.get(value, value)
        value = {"true": "yes", "false": "no"}.get(value, value)
        try:
            return self.index_of(value)
        except AnswerError:
            return None


QUESTIONS: tuple[Question, ...] = (
    Question.number("age", "How old is the person, in years?", AGE_BINS),
    Question("sex", "Sex", choices=("female", "male")),
    Question("site", "Where on the body is the spot?", choices=BODY_SITES),
    Question("itch", "Does it itch?"),
    Question("grew", "Has it grown?"),
    Question("hurt", "Does it hurt?"),
    Question("changed", "Has it changed (colour, shape, surface)?"),
    Question("bleed", "Has it bled?"),
    Question("elevation", "Is it raised above the skin?"),
)
BY_NAME = {q.name: q for q in QUESTIONS}
QUESTION_NAMES = tuple(BY_NAME)
# The questions each domain's model uses. HAM10000 has no symptom questions. PAD-UFES-20's sex is
# left out: it is recorded only for the patients whose lesions went to biopsy (every BCC, SCC and
# melanoma; none of its 213 photos without sex is one), so "sex known" would teach the model that
# answering pushes towards cancer, which is how the data were collected, not what the answer says.
QUESTIONS_BY_DOMAIN = {
    DERMOSCOPIC: ("age", "sex", "site"),
    PHONE: ("age", "site", *SYMPTOMS),
}

Answers = Mapping[str, str]  # question name -> answer as given (age: the number as text)


def one_hot(indices: Mapping[str, int], questions: Iterable[Question]) -> np.ndarray:
    """The feature vector of chosen indices (question name -> choice); unanswered: zeros."""
    blocks = []
    for question in questions:
        block = np.zeros(question.width)
        if question.name in indices:
            block[indices[question.name]] = 1.0
        blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros(0)


def encode_recorded(answers: Answers, names: Iterable[str]) -> np.ndarray:
    """The feature vector of answers as a data set records them (unknown answers: zeros)."""
    questions = [BY_NAME[name] for name in names]
    indices = {}
    for question in questions:
        raw = answers.get(question.name)
        index = question.recorded_index(raw) if raw is not None else None
        if index is not None:
            indices[question.name] = index
    return one_hot(indices, questions)


def feature_names(questions: Iterable[Question]) -> list[str]:
    return [f"{q.name}={c}" for q in questions for c in q.choices]


def shown(value: str) -> str:
    """A person's value, quoted and cut short, for an error message."""
    return repr(value if len(value) <= 40 else value[:40] + "…")
