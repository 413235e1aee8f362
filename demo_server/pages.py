"""The mobile page, the model-card page and the sample images (served only from their folder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, render_template, send_from_directory
from flask.typing import ResponseReturnValue

from contract.answers import AnswerSpec
from demo_server.extensions import current_classifier as _classifier
from demo_server.extensions import current_lesion_gate as _lesion_gate
from demo_server.extensions import current_settings as _settings
from demo_server.screening import NOT_A_LESION_MESSAGE, TRIAGE_MESSAGES, disclaimer

bp = Blueprint("pages", __name__)
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ATTRIBUTION = "ATTRIBUTION.md"
DOMAIN_NAMES = {"phone": "Phone camera", "dermoscopic": "Dermatoscope"}
# Test figures shown photo only vs photo plus answers: label, scope, key path, interval key.
ANSWER_METRICS = (
    ("Balanced accuracy, overall", "overall", ("balanced_accuracy",), "balanced_accuracy"),
    ("Balanced accuracy, dermoscopic", "dermoscopic", ("balanced_accuracy",), "balanced_accuracy"),
    ("Balanced accuracy, phone", "phone", ("balanced_accuracy",), "balanced_accuracy"),
    (
        "Malignant sensitivity, phone",
        "phone",
        ("malignant", "sensitivity"),
        "malignant_sensitivity",
    ),
    (
        "Malignant specificity, phone",
        "phone",
        ("malignant", "specificity"),
        "malignant_specificity",
    ),
)


@dataclass(frozen=True)
class Sample:
    file_name: str
    caption: str


def caption(stem: str, display_names: Mapping[str, str]) -> str:
    """``mel_phone_PAT_1.jpg`` -> "Melanoma (phone)"; other names are shown as they are."""
    code, _, rest = stem.partition("_")
    if code not in display_names:
        return stem.replace("_", " ")
    kind = rest.split("_")[0]
    return f"{display_names[code]} ({kind})" if kind.isalpha() else display_names[code]


def list_samples(folder: Path, display_names: Mapping[str, str] | None = None) -> list[Sample]:
    """The sample images in `folder` (none if it is missing), sorted by name."""
    if not folder.is_dir():
        return []
    return [
        Sample(path.name, caption(path.stem, display_names or {}))
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() in SAMPLE_SUFFIXES
    ]


def question_domains(answers: AnswerSpec | None) -> dict[str, list[str]]:
    """Question name -> the domains whose model uses it (the page hides the others)."""
    if answers is None:
        return {}
    return {
        name: [domain for domain, model in answers.models.items() if name in model.question_names]
        for name in answers.questions
    }


@bp.get("/")
def index() -> ResponseReturnValue:
    meta = _classifier().metadata
    folder = _settings().samples_dir
    return render_template(
        "index.html",
        meta=meta,
        answers=meta.answers,
        question_domains=question_domains(meta.answers),
        domain_names=DOMAIN_NAMES,
        samples=list_samples(folder, dict(zip(meta.labels, meta.display_names, strict=True))),
        has_attribution=(folder / ATTRIBUTION).is_file(),
        not_a_lesion_message=NOT_A_LESION_MESSAGE,
        disclaimer=disclaimer(meta),
    )


def metric_summaries(metrics: Any) -> dict[str, dict[str, dict]]:
    """Split -> scope -> report, for the reports in the card's metrics that have the standard
    shape (overall and per-domain summaries); anything else is shown only in the details."""
    if not isinstance(metrics, Mapping):
        return {}
    summaries = {}
    for split, scopes in metrics.items():
        if isinstance(scopes, Mapping):
            rows = {
                scope: report
                for scope, report in scopes.items()
                if isinstance(report, Mapping) and "balanced_accuracy" in report
            }
            if rows:
                summaries[str(split)] = rows
    return summaries


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _figure(scopes: Any, scope: str, path: tuple[str, ...], interval: str) -> dict | None:
    value = _dig(scopes, scope, *path)
    if not isinstance(value, int | float):
        return None
    ci = _dig(scopes, scope, "ci95", interval)
    return {"value": float(value), "interval": ci if isinstance(ci, list) else None}


def answer_metric_rows(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Test figures photo only beside photo plus answers; none when the answers have no test
    metrics (val figures chose the answers' strength and calibration, so they flatter it)."""
    with_answers = _dig(card, "answers", "metrics", "test")
    if not isinstance(with_answers, Mapping):
        return []
    photo = _dig(card, "metrics", "test")
    return [
        {
            "label": label,
            "photo": _figure(photo, scope, path, interval),
            "answers": _figure(with_answers, scope, path, interval),
        }
        for label, scope, path, interval in ANSWER_METRICS
    ]


@bp.get("/model")
def model_card() -> ResponseReturnValue:
    meta = _classifier().metadata
    summaries = metric_summaries(meta.card.get("metrics"))
    return render_template(
        "model.html",
        meta=meta,
        card=meta.card,
        answers=meta.answers,
        answer_rows=answer_metric_rows(meta.card),
        metric_summaries=summaries,
        metric_intervals=any(
            "ci95" in report for scopes in summaries.values() for report in scopes.values()
        ),
        unsure_below=_settings().unsure_below,
        triage_messages=TRIAGE_MESSAGES,
        gate=_lesion_gate(),
        not_a_lesion_message=NOT_A_LESION_MESSAGE,
        disclaimer=disclaimer(meta),
    )


@bp.get("/samples/<name>")
def sample(name: str) -> ResponseReturnValue:
    """Only the listed sample images and their attribution file; nothing else on disk."""
    folder = _settings().samples_dir
    if name == ATTRIBUTION and (folder / ATTRIBUTION).is_file():
        return send_from_directory(folder, name, mimetype="text/plain")
    if name not in {s.file_name for s in list_samples(folder)}:
        abort(404)
    return send_from_directory(folder, name, max_age=3600)
