"""Markdown tables of an evaluation, for the README and the shipped model card."""

from __future__ import annotations

from contract.bootstrap import RESAMPLES
from contract.taxonomy import LABELS


def _cell(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def _with_interval(report: dict, value: float | None, ci_key: str | None) -> str:
    """A value and, when the evaluation resampled it, its 95% interval."""
    interval = report.get("ci95", {}).get(ci_key) if ci_key else None
    if interval is None or value is None or value != value:
        return _cell(value)
    return f"{_cell(value)} ({_cell(interval[0])}–{_cell(interval[1])})"


def _thresholds(result: dict) -> str:
    """The threshold, or each domain's own (with the one for a photo of unstated kind)."""
    by_domain = result.get("malignant_threshold_by_domain") or {}
    if not by_domain:
        return f"{result['malignant_threshold']:.3f}"
    own = ", ".join(f"{d} {t:.3f}" for d, t in by_domain.items())
    return f"{own} (each photo its kind's own; {result['malignant_threshold']:.3f} for any kind)"


def metrics_markdown(result: dict) -> str:
    """Per-domain summary table and per-class recall table of `train.evaluate`'s metrics.json."""
    report = result["metrics"]
    scopes = list(report)
    lines = [
        f"Model `{result['model']}`, {result['split']} split"
        + _answers_note(result.get("answers"))
        + "; probabilities calibrated with "
        f"T = {result['temperature']:.3f}; triage threshold P(malignant) >= "
        f"{_thresholds(result)}.",
        "",
        "| metric | " + " | ".join(scopes) + " |",
        "|---|" + "---:|" * len(scopes),
        "| images | " + " | ".join(str(report[s]["n"]) for s in scopes) + " |",
    ]
    rows = [  # (name, value, key of its interval in "ci95" or None)
        ("balanced accuracy", lambda r: r["balanced_accuracy"], "balanced_accuracy"),
        ("malignant sensitivity", lambda r: r["malignant"]["sensitivity"], "malignant_sensitivity"),
        ("malignant specificity", lambda r: r["malignant"]["specificity"], "malignant_specificity"),
        ("macro one-vs-rest AUC", lambda r: r["auc_ovr"]["macro"], None),
        ("expected calibration error", lambda r: r["ece"], None),
        ("ECE before calibration", lambda r: r.get("ece_uncalibrated"), None),
        ("accuracy (imbalanced, for reference)", lambda r: r["accuracy"], None),
    ]
    for name, get, ci_key in rows:
        cells = [_with_interval(report[s], get(report[s]), ci_key) for s in scopes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if any("ci95" in report[s] for s in scopes):
        lines += [
            "",
            f"In brackets: 95% interval from {RESAMPLES:,} resamples of whole lesions / patients "
            "(the unit the split groups by).",
        ]
    lines += [
        "",
        "Recall per class:",
        "",
        "| class | " + " | ".join(scopes) + " |",
        "|---|" + "---:|" * len(scopes),
    ]
    for code in LABELS:
        cells = [_cell(report[s]["per_class_recall"].get(code)) for s in scopes]
        lines.append(f"| {code} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _answers_note(asked: list[str] | None) -> str:
    if asked is None:
        return ""
    from contract.questionnaire import QUESTION_NAMES

    if set(asked) >= set(QUESTION_NAMES):
        return ", photo plus each image's answers from its data set"
    return f", photo plus each image's answers to {', '.join(asked)} only (the rest skipped)"
