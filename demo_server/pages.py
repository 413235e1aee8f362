"""The mobile page, the model-card page and the sample images (served only from their folder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, render_template, send_from_directory
from flask.typing import ResponseReturnValue

from demo_server.extensions import current_classifier as _classifier
from demo_server.extensions import current_lesion_gate as _lesion_gate
from demo_server.extensions import current_settings as _settings
from demo_server.screening import NOT_A_LESION_MESSAGE, TRIAGE_MESSAGES, disclaimer

bp = Blueprint("pages", __name__)
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ATTRIBUTION = "ATTRIBUTION.md"


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


@bp.get("/")
def index() -> ResponseReturnValue:
    meta = _classifier().metadata
    folder = _settings().samples_dir
    return render_template(
        "index.html",
        meta=meta,
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


@bp.get("/model")
def model_card() -> ResponseReturnValue:
    meta = _classifier().metadata
    summaries = metric_summaries(meta.card.get("metrics"))
    return render_template(
        "model.html",
        meta=meta,
        card=meta.card,
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
