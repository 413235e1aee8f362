"""Optional answers about the person and the spot, as the model card's `answers` section says.

The card (written by the training side) lists the questions, one logistic regression per domain
over one-hot answers, and a calibration fitted for photo plus answers. Here a request's answers
are checked against it and turned into the log ratios that `screening.screen` adds to the
photo's log probabilities. The formula mirrors the training side's, without importing it: the
server knows only the model file. Answers are used for one request and never stored or logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from demo_server.errors import ApiError

# The questionnaire's field names: sent to a model without answers, they are an error.
STANDARD_QUESTIONS = ("age", "sex", "site", "itch", "grew", "hurt", "changed", "bleed", "elevation")
DOMAIN_FIELD = "domain"
DEFAULT_DOMAIN = "phone"  # the server behaves like the phone client
NUMBER, CHOICE = "number", "choice"
PHOTO_ONLY, PHOTO_AND_ANSWERS = "photo_only", "photo_and_answers"
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class AnswersCardError(ValueError):
    """The model card's `answers` section cannot be used (the model loader reports it)."""


@dataclass(frozen=True)
class Question:
    """One question; a number question's choices are its bins (`searchsorted`, side right)."""

    name: str
    text: str
    kind: str
    choices: tuple[str, ...] = ()
    bins: tuple[float, ...] = ()
    minimum: float = 0.0
    maximum: float = 120.0

    @property
    def width(self) -> int:
        """How many one-hot features the question takes in a feature vector."""
        return len(self.bins) + 1 if self.kind == NUMBER else len(self.choices)

    def index_of(self, value: str) -> int:
        """The one-hot position of a non-empty form value, or a 400 that says what is allowed."""
        if self.kind == CHOICE:
            if value not in self.choices:
                raise _invalid(
                    f"{_shown(value)} is not a choice for '{self.name}' ({self.text}): send one "
                    f"of {', '.join(self.choices)}, or leave it empty if you do not know."
                )
            return self.choices.index(value)
        allowed = f"a number from {self.minimum:g} to {self.maximum:g}, or empty"
        if not _DECIMAL.fullmatch(value):
            raise _invalid(f"'{self.name}' must be {allowed}; {_shown(value)} is not a number.")
        number = float(value)
        if not self.minimum <= number <= self.maximum:
            raise _invalid(f"'{self.name}' must be {allowed}; {_shown(value)} is out of range.")
        return int(np.searchsorted(self.bins, number, side="right"))


@dataclass(frozen=True, eq=False)
class DomainModel:
    """One domain's regression: z = x W + b over `classes` (`columns`: their output indices)."""

    questions: tuple[str, ...]
    features: tuple[str, ...]
    classes: tuple[str, ...]
    columns: tuple[int, ...]
    weights: np.ndarray
    bias: np.ndarray
    strength: float


@dataclass(frozen=True)
class GivenAnswers:
    """A request's valid answers: question name -> one-hot index, and the domain to use."""

    domain: str
    indices: dict[str, int]


@dataclass(frozen=True, eq=False)
class AnswerEffect:
    """What one request's answers do: `log_ratios` (strength * r over every label), or None
    when the domain's model uses none of them (then the result is the photo-only one)."""

    domain: str
    used: dict[str, str]
    not_used: tuple[str, ...]
    questions: int
    log_ratios: np.ndarray | None

    def as_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "answered": len(self.used),
            "questions": self.questions,
            "used": self.used,
            "not_used": list(self.not_used),
        }


def log_ratios(features: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """r = log_softmax(x W + b) - log_softmax(b): what the answers say beyond the prior."""
    return _log_softmax(features @ weights + bias) - _log_softmax(bias)


@dataclass(frozen=True, eq=False)
class AnswerSpec:
    """The card's `answers` section, checked once when the model is loaded."""

    questions: dict[str, Question]
    models: dict[str, DomainModel]
    labels: tuple[str, ...]
    temperature: float
    malignant_threshold: float

    @property
    def default_domain(self) -> str:
        return DEFAULT_DOMAIN if DEFAULT_DOMAIN in self.models else next(iter(self.models))

    def read(self, form: Mapping[str, Sequence[str]]) -> GivenAnswers:
        """Validate the form's answer fields (empty = unanswered; other fields are ignored)."""
        indices = {}
        for name in dict.fromkeys((*self.questions, *STANDARD_QUESTIONS)):
            value = _single(form, name)
            if not value:
                continue
            if name not in self.questions:
                raise ApiError(
                    400,
                    "unknown_question",
                    f"This model does not ask '{name}'; its questions are "
                    f"{', '.join(self.questions)}.",
                )
            indices[name] = self.questions[name].index_of(value)
        domain = _single(form, DOMAIN_FIELD) or self.default_domain
        if domain not in self.models:
            raise ApiError(
                400,
                "unknown_domain",
                f"Unknown {DOMAIN_FIELD} {_shown(domain)}: send one of "
                f"{', '.join(self.models)}, or leave it empty for {self.default_domain}.",
            )
        return GivenAnswers(domain, indices)

    def effect(self, given: GivenAnswers) -> AnswerEffect:
        """Encode the answers for the domain's model (one-hot, unanswered all zeros) and r."""
        model = self.models[given.domain]
        x = np.zeros(len(model.features))
        used, offset = {}, 0
        for name in model.questions:
            index = given.indices.get(name)
            if index is not None:
                x[offset + index] = 1.0
                used[name] = model.features[offset + index].partition("=")[2]
            offset += self.questions[name].width
        ratios = None
        if used:
            ratios = np.zeros(len(self.labels))
            ratios[list(model.columns)] = log_ratios(x, model.weights, model.bias)
            ratios *= model.strength
        not_used = tuple(name for name in given.indices if name not in model.questions)
        return AnswerEffect(given.domain, used, not_used, len(model.questions), ratios)


def refuse_answers(form: Mapping[str, Sequence[str]]) -> None:
    """For a model whose card has no `answers`: any answered question is a 400, not ignored."""
    answered = [name for name in STANDARD_QUESTIONS if any(form.get(name, ()))]
    if answered:
        raise ApiError(
            400,
            "answers_not_supported",
            "This model does not take answers (its model card has no answers section); "
            f"leave out {', '.join(answered)}.",
        )


def answer_spec(card: Mapping[str, Any], labels: Sequence[str]) -> AnswerSpec | None:
    """The card's `answers` section, or None without one; AnswersCardError if it is malformed."""
    section = card.get("answers")
    if section is None:
        return None
    try:
        questions = {q.name: q for q in map(_question, section["questions"])}
        models = {
            str(domain): _domain_model(str(domain), spec, questions, labels)
            for domain, spec in section["models"].items()
        }
        temperature = float(section["calibration"]["temperature"])
        threshold = float(section["triage"]["malignant_threshold"])
    except KeyError as exc:
        raise AnswersCardError(f"answers: missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise AnswersCardError(f"answers: {exc}") from None
    if not models:
        raise AnswersCardError("answers: no models")
    if not temperature > 0:
        raise AnswersCardError(f"answers: temperature must be positive, got {temperature}")
    return AnswerSpec(questions, models, tuple(labels), temperature, threshold)


def _question(spec: Mapping[str, Any]) -> Question:
    name, text, kind = str(spec["name"]), str(spec.get("text", spec["name"])), spec["kind"]
    if kind == CHOICE:
        question = Question(name, text, kind, choices=tuple(map(str, spec["choices"])))
    elif kind == NUMBER:
        bins = tuple(float(b) for b in spec["bins"])
        if list(bins) != sorted(bins):
            raise ValueError(f"{name}: bins must be ascending")
        low, high = float(spec.get("minimum", 0)), float(spec.get("maximum", 120))
        question = Question(name, text, kind, bins=bins, minimum=low, maximum=high)
    else:
        raise ValueError(f"{name}: unknown kind {kind!r}")
    if question.width < 2:
        raise ValueError(f"{name}: fewer than two choices")
    return question


def _domain_model(
    domain: str, spec: Mapping[str, Any], questions: dict[str, Question], labels: Sequence[str]
) -> DomainModel:
    names = tuple(map(str, spec["questions"]))
    unknown = [n for n in names if n not in questions]
    if unknown:
        raise ValueError(f"{domain}: questions {unknown} are not defined")
    features, classes = tuple(map(str, spec["features"])), tuple(map(str, spec["classes"]))
    if len(features) != sum(questions[n].width for n in names):
        raise ValueError(f"{domain}: {len(features)} features do not match its questions")
    if len(set(classes)) != len(classes) or not set(classes) <= set(labels):
        raise ValueError(f"{domain}: classes {list(classes)} are not distinct model labels")
    weights = np.asarray(spec["weights"], dtype=np.float64)
    bias = np.asarray(spec["bias"], dtype=np.float64)
    if weights.shape != (len(features), len(classes)) or bias.shape != (len(classes),):
        raise ValueError(f"{domain}: weights {weights.shape} or bias {bias.shape} do not match")
    return DomainModel(
        questions=names,
        features=features,
        classes=classes,
        columns=tuple(labels.index(c) for c in classes),
        weights=weights,
        bias=bias,
        strength=float(spec.get("strength", 1.0)),
    )


def _single(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or ()
    if len(values) > 1:
        raise _invalid(f"Send '{name}' at most once.")
    return values[0] if values else ""


def _shown(value: str) -> str:
    """The client's value, quoted and cut short, for an error message."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_answer", message)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
