"""Is model B better than model A, or only luckier? Two evaluations of the same images, compared.

    python -m train.evaluate runs/A --split val --out eval/A
    python -m train.evaluate runs/B --split val --out eval/B
    python -m train.compare eval/A eval/B [--out comparison.json]

For overall, each domain and the cut-outs apart: both models' malignant specificity and
sensitivity (each at its own triage threshold), malignant AUC and balanced accuracy, and B - A
with a 95% interval from resampling whole lesions / patients, the same draws for both models (a
paired bootstrap). A lead whose interval holds 0 is within what one split's noise gives; which
lead ships a model is docs/judging.md's rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from contract.bootstrap import RESAMPLES, paired_difference_intervals
from contract.commands import CommandError, reported
from contract.metrics import domain_scopes
from contract.predictions import PREDICTIONS_CSV, PredictionTable, read_table
from contract.triage import TriageThresholds

METRICS = (
    "malignant_specificity",
    "malignant_auc",
    "malignant_sensitivity",
    "balanced_accuracy",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("a", type=Path, help="evaluation folder of model A (train.evaluate --out)")
    parser.add_argument("b", type=Path, help="evaluation folder of model B, on the same images")
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--out", type=Path, help="also write the comparison as JSON")
    args = parser.parse_args(argv)
    if args.resamples < 100:
        parser.error("--resamples must be at least 100")
    for folder in (args.a, args.b):
        for name in ("metrics.json", PREDICTIONS_CSV):
            if not (folder / name).is_file():
                parser.error(f"{folder / name} not found; evaluate with python -m train.evaluate")
    return args


def compare(
    a: PredictionTable,
    threshold_a: np.ndarray,
    b: PredictionTable,
    threshold_b: np.ndarray,
    resamples: int,
) -> dict[str, dict]:
    """Per scope (overall, each domain, cut-outs apart): A's and B's metrics and B - A with its
    interval; each model triages each image at its own threshold for the image's domain."""
    result = {}
    for scope, mask in domain_scopes(a.domains, a.cutouts | b.cutouts).items():
        result[scope] = {"n": int(mask.sum())} | paired_difference_intervals(
            a.labels[mask],
            a.groups[mask],
            (a.probs[mask], threshold_a[mask]),
            (b.probs[mask], threshold_b[mask]),
            resamples,
        )
    return result


def evaluated_thresholds(metrics_json: Path) -> TriageThresholds:
    """The thresholds `train.evaluate` triaged with, for tables without a threshold column
    (before per-domain ones: only the one)."""
    summary = json.loads(metrics_json.read_text(encoding="utf-8"))
    return TriageThresholds(
        summary["malignant_threshold"], summary.get("malignant_threshold_by_domain") or {}
    )


def same_images(a: PredictionTable, b: PredictionTable) -> str | None:
    """Why the two tables cannot be compared row by row, or None."""
    if a.paths != b.paths:
        return "the two evaluations are not of the same images in the same order (same split?)"
    if not (np.array_equal(a.labels, b.labels) and np.array_equal(a.groups, b.groups)):
        return "the same images carry different labels or groups (different split.csv?)"
    return None


def markdown(result: dict[str, dict], name_a: str, name_b: str) -> str:
    lines = [
        f"A = `{name_a}`, B = `{name_b}`. Each cell: A -> B, then B - A with, in brackets, its "
        "95% interval from resampling whole lesions / patients (paired); last column: share of "
        "resamples where B is ahead in specificity.",
        "",
        "| scope | images | "
        + " | ".join(m.replace("_", " ") for m in METRICS)
        + " | B ahead (specificity) |",
        "|---|---:|" + "---:|" * (len(METRICS) + 1),
    ]
    for scope, row in result.items():
        cells = [
            f"{row[m]['a']:.4f} -> {row[m]['b']:.4f}: {row[m]['difference']:+.4f} "
            f"({row[m]['interval'][0]:+.4f} to {row[m]['interval'][1]:+.4f})"
            for m in METRICS
        ]
        ahead = row["malignant_specificity"]["b_ahead"]
        lines.append(f"| {scope} | {row['n']} | " + " | ".join(cells) + f" | {ahead:.2f} |")
    return "\n".join(lines) + "\n"


@reported("train.compare")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    a, b = read_table(args.a / PREDICTIONS_CSV), read_table(args.b / PREDICTIONS_CSV)
    problem = same_images(a, b)
    if problem:
        raise CommandError(problem)
    threshold_a, threshold_b = (
        table.thresholds
        if table.thresholds is not None
        else evaluated_thresholds(folder / "metrics.json").for_images(table.domains)
        for table, folder in ((a, args.a), (b, args.b))
    )
    result = compare(a, threshold_a, b, threshold_b, args.resamples)
    print(markdown(result, str(args.a), str(args.b)), end="")
    if args.out is not None:
        payload = {"a": str(args.a), "b": str(args.b), "resamples": args.resamples, **result}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
