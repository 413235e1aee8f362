"""Markdown tables of an evaluation, for the README and the shipped model card."""

from __future__ import annotations

from train.taxonomy import LABELS


def _cell(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.3f}"


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
    rows = [
        ("balanced accuracy", lambda r: r["balanced_accuracy"]),
        ("macro one-vs-rest AUC", lambda r: r["auc_ovr"]["macro"]),
        ("malignant sensitivity", lambda r: r["malignant"]["sensitivity"]),
        ("malignant specificity", lambda r: r["malignant"]["specificity"]),
        ("expected calibration error", lambda r: r["ece"]),
        ("ECE before calibration", lambda r: r.get("ece_uncalibrated")),
        ("accuracy (imbalanced, for reference)", lambda r: r["accuracy"]),
    ]
    for name, get in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(get(report[s])) for s in scopes) + " |")
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
