"""Markdown tables of an evaluation, for the README and the shipped model card."""

from __future__ import annotations

from train.bootstrap import RESAMPLES
from train.taxonomy import LABELS


def _cell(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


def _with_interval(report: dict, value: float, ci_key: str) -> str:
    """A value and, when the evaluation resampled it, its 95% interval."""
    interval = report.get("ci95", {}).get(ci_key)
    if interval is None or value != value:
        return _cell(value)
    return f"{_cell(value)} ({_cell(interval[0])}–{_cell(interval[1])})"


def metrics_markdown(result: dict) -> str:
    """Per-domain summary table and per-class recall table of `train.evaluate`'s metrics.json."""
    report = result["metrics"]
    scopes = list(report)
    lines = [
        f"Model `{result['model']}`, {result['split']} split; probabilities calibrated with "
        f"T = {result['temperature']:.3f}; triage threshold P(malignant) >= "
        f"{result['malignant_threshold']:.3f}.",
        "",
        "| metric | " + " | ".join(scopes) + " |",
        "|---|" + "---:|" * len(scopes),
        "| images | " + " | ".join(str(report[s]["n"]) for s in scopes) + " |",
    ]
    with_intervals = [
        ("balanced accuracy", lambda r: r["balanced_accuracy"], "balanced_accuracy"),
        ("malignant sensitivity", lambda r: r["malignant"]["sensitivity"], "malignant_sensitivity"),
        ("malignant specificity", lambda r: r["malignant"]["specificity"], "malignant_specificity"),
    ]
    for name, get, key in with_intervals:
        cells = [_with_interval(report[s], get(report[s]), key) for s in scopes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rows = [
        ("macro one-vs-rest AUC", lambda r: r["auc_ovr"]["macro"]),
        ("expected calibration error", lambda r: r["ece"]),
        ("ECE before calibration", lambda r: r.get("ece_uncalibrated")),
        ("accuracy (imbalanced, for reference)", lambda r: r["accuracy"]),
    ]
    for name, get in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(get(report[s])) for s in scopes) + " |")
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
