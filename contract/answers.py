"""What a person's answers add to a photo's probabilities, as the model card's `answers` says.

Per domain, a multinomial logistic regression predicts the class from the answers alone
(z = x W + b). Its log-odds relative to its own prediction for "no answers" (z = b),

    r_c = (z_c - logsumexp(z)) - (b_c - logsumexp(b)),

is what the answers say beyond the prior. `strength * r` is added to the log of the photo's
probabilities before calibration (`contract.screening.apply_temperature`): naive Bayes, answers and
photo taken as independent given the class. No answers means r = 0, the photo-only result;
classes a domain's regression does not cover get r = 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from contract.questionnaire import (
    QUESTION_NAMES,
    AnswerError,
    Question,
    feature_names,
    one_hot,
    shown,
)
from contract.taxonomy import DOMAINS
from contract.triage import TriageThresholds

if TYPE_CHECKING:
    from contract.card import AnswersSection

DOMAIN_FIELD = "domain"
DEFAULT_DOMAIN = "phone"  # the server behaves like the phone client
PHOTO_ONLY, PHOTO_AND_ANSWERS = "photo_only", "photo_and_answers"
RULE = (
    "r_c = (z_c - logsumexp(z)) - (b_c - logsumexp(b)) with z = x W + b over the model's "
    "classes (r_c = 0 for other labels and when nothing is answered); probabilities = "
    "softmax((log max(p, 1e-6) + strength * r) / temperature), p being the model output"
)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@dataclass(frozen=True, eq=False)
class DomainModel:
    """One domain's regression z = x W + b over `classes`, a subset of the model's `labels`."""

    domain: str
    questions: tuple[Question, ...]
    classes: tuple[str, ...]
    labels: tuple[str, ...]
    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    strength: float = 1.0

    @property
    def question_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.questions)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(feature_names(self.questions))

    def log_ratios(self, features: np.ndarray) -> np.ndarray:
        """r (without strength) for each row of features, over all labels: (N, labels)."""
        z = np.atleast_2d(features) @ self.weights + self.bias
        r = log_softmax(z) - log_softmax(self.bias[None])
        full = np.zeros((len(z), len(self.labels)))
        full[:, [self.labels.index(c) for c in self.classes]] = r
        return full

    def as_json(self) -> dict[str, Any]:
        return {
            "questions": list(self.question_names),
            "features": list(self.features),
            "classes": list(self.classes),
            "weights": np.round(self.weights, 6).tolist(),
            "bias": np.round(self.bias, 6).tolist(),
            "strength": self.strength,
        }

    @classmethod
    def from_json(
        cls,
        domain: str,
        spec: Mapping[str, Any],
        questions: Mapping[str, Question],
        labels: Sequence[str],
    ) -> DomainModel:
        """One domain's model from the card; ValueError (or KeyError) if it is malformed."""
        names = tuple(map(str, spec["questions"]))
        unknown = [n for n in names if n not in questions]
        if unknown:
            raise ValueError(f"{domain}: questions {unknown} are not defined")
        asked = tuple(questions[n] for n in names)
        features, classes = tuple(map(str, spec["features"])), tuple(map(str, spec["classes"]))
        if len(features) != sum(q.width for q in asked):
            raise ValueError(f"{domain}: {len(features)} features do not match its questions")
        if len(set(classes)) != len(classes) or not set(classes) <= set(labels):
            raise ValueError(f"{domain}: classes {list(classes)} are not distinct model labels")
        weights = np.asarray(spec["weights"], dtype=np.float64)
        bias = np.asarray(spec["bias"], dtype=np.float64)
        if weights.shape != (len(features), len(classes)) or bias.shape != (len(classes),):
            raise ValueError(f"{domain}: weights {weights.shape} or bias {bias.shape} do not match")
        return cls(
            domain=domain,
            questions=asked,
            classes=classes,
            labels=tuple(labels),
            weights=weights,
            bias=bias,
            strength=float(spec.get("strength", 1.0)),
        )


@dataclass(frozen=True)
class GivenAnswers:
    """A person's valid answers: question name -> choice index, and the domain to use."""

    domain: str
    indices: dict[str, int]


@dataclass(frozen=True, eq=False)
class AnswerEffect:
    """What one person's answers do: `log_ratios` (strength * r over every label), or None
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


@dataclass(frozen=True, eq=False)
class AnswerSpec:
    """The card's `answers` section, checked once when the model is loaded."""

    questions: dict[str, Question]
    models: dict[str, DomainModel]
    labels: tuple[str, ...]
    temperature: float
    triage: TriageThresholds  # photo plus answers has thresholds of its own
    photo_referral_stands: bool = False  # answers may add a referral, never cancel the photo's

    @property
    def default_domain(self) -> str:
        return DEFAULT_DOMAIN if DEFAULT_DOMAIN in self.models else next(iter(self.models))

    def read(self, form: Mapping[str, Sequence[str]]) -> GivenAnswers:
        """Validate a form's answer fields (empty = unanswered; other fields are ignored)."""
        indices = {}
        for name in dict.fromkeys((*self.questions, *QUESTION_NAMES)):
            value = _single(form, name)
            if not value:
                continue
            if name not in self.questions:
                raise AnswerError(
                    "unknown_question",
                    f"This model does not ask '{name}'; its questions are "
                    f"{', '.join(self.questions)}.",
                )
            indices[name] = self.questions[name].index_of(value)
        return GivenAnswers(stated_domain(form, tuple(self.models), self.default_domain), indices)

    def effect(self, given: GivenAnswers) -> AnswerEffect:
        """The domain model's strength * r for these answers (None when it uses none of them)."""
        model = self.models[given.domain]
        asked = {n: i for n, i in given.indices.items() if n in model.question_names}
        used = {n: self.questions[n].choices[i] for n, i in asked.items()}
        used = {n: used[n] for n in model.question_names if n in used}  # the card's order
        ratios = None
        if used:
            ratios = model.strength * model.log_ratios(one_hot(asked, model.questions))[0]
        not_used = tuple(name for name in given.indices if name not in model.question_names)
        return AnswerEffect(given.domain, used, not_used, len(model.questions), ratios)


def stated_domain(
    form: Mapping[str, Sequence[str]], domains: Sequence[str], default: str | None = None
) -> str | None:
    """The kind of photo a form states in its `domain` field, else `default`; AnswerError when
    it is not one of `domains`. The kind picks the answers' model and the triage threshold."""
    domain = _single(form, DOMAIN_FIELD)
    if domain and domain not in domains:
        empty = f" for {default}" if default else ""
        raise AnswerError(
            "unknown_domain",
            f"Unknown {DOMAIN_FIELD} {shown(domain)}: send one of "
            f"{', '.join(domains)}, or leave it empty{empty}.",
        )
    return domain or default


def request_domains(spec: AnswerSpec | None) -> tuple[str, ...]:
    """The kinds of photo a request may state: the answers' models, else every kind."""
    return tuple(spec.models) if spec is not None else DOMAINS


def refuse_answers(form: Mapping[str, Sequence[str]]) -> None:
    """For a model whose card has no `answers`: any answered question is an error, not ignored."""
    answered = [name for name in QUESTION_NAMES if any(form.get(name, ()))]
    if answered:
        raise AnswerError(
            "answers_not_supported",
            "This model does not take answers (its model card has no answers section); "
            f"leave out {', '.join(answered)}.",
        )


def answer_spec(section: AnswersSection | None, labels: Sequence[str]) -> AnswerSpec | None:
    """A card's `answers` section, parsed (None without one); ValueError if it is malformed."""
    if section is None:
        return None
    try:
        questions = {q.name: q for q in map(Question.from_json, section.questions)}
        models = {
            str(domain): DomainModel.from_json(str(domain), spec, questions, labels)
            for domain, spec in section.models.items()
        }
    except KeyError as exc:
        raise ValueError(f"answers: missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"answers: {exc}") from None
    if not models:
        raise ValueError("answers: no models")
    temperature = section.calibration.temperature
    if not temperature > 0:
        raise ValueError(f"answers: temperature must be positive, got {temperature}")
    triage = section.triage
    stands = bool(triage.photo_referral_stands)
    return AnswerSpec(questions, models, tuple(labels), temperature, triage.thresholds, stands)


def _single(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or ()
    if len(values) > 1:
        raise AnswerError("invalid_answer", f"Send '{name}' at most once.")
    return values[0] if values else ""
