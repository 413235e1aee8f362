"""How much of a file's test specificity is its val's luck? The threshold redrawn with val.

    python -m train.threshold_spread VAL_EVAL TEST_EVAL [--kind dermoscopic] [--redraws 200]

VAL_EVAL and TEST_EVAL are `train.evaluate --out` folders of one file on val and on the kept
test. The lower-bound rule (`THRESHOLD_RULE`) is fitted again on each of `--redraws` redraws of
val's whole lesions / patients (with replacement), and the test is triaged at each threshold.
The spread of test sensitivity and specificity is what another val of the same size would have
given the same network: noise that `train.compare`'s paired bootstrap, which holds each file's
threshold fixed, does not see (docs/judging.md). Photos only; cut-outs are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contract import metrics
from contract.bootstrap import confident_threshold
from contract.commands import CommandError, reported
from contract.predictions import PREDICTIONS_CSV, PredictionTable, read_table
from contract.taxonomy import DOMAINS
from train.model.hparams import HParams

PERCENTILES = (2.5, 50.0, 97.5)
TARGET = HParams.target_sensitivity  # the rule's target, as every run fits it


@dataclass(frozen=True)
class ThresholdSpread:
    """The rule's threshold on val and the test at it, then each as percentiles over redraws."""

    kind: str
    redraws: int
    threshold: float
    test_sensitivity: float
    test_specificity: float
    threshold_percentiles: tuple[float, ...]  # at PERCENTILES
    test_sensitivity_percentiles: tuple[float, ...]
    test_specificity_percentiles: tuple[float, ...]


def _photos(table: PredictionTable, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A kind's uncut photos (the reports' scope, `contract.metrics.domain_scopes`)."""
    none = np.zeros(len(table.domains), bool)
    keep = metrics.domain_scopes(table.domains, table.cutouts).get(kind, none)
    return table.labels[keep], table.probs[keep], table.groups[keep]


def threshold_spread(
    val: PredictionTable, test: PredictionTable, kind: str, redraws: int = 200, seed: int = 0
) -> ThresholdSpread:
    """The spread of the test's triage when val's lesions / patients are drawn again."""
    y, probs, groups = _photos(val, kind)
    test_y, test_probs, _ = _photos(test, kind)
    malignant = metrics.is_malignant(test_y)
    if not malignant.any() or malignant.all() or not metrics.is_malignant(y).any():
        raise CommandError(f"{kind}: val and test each need malignant photos, and test benign ones")

    def test_at(threshold: float) -> tuple[float, float]:
        triage = metrics.sensitivity_specificity(test_y, test_probs, threshold)
        return triage["sensitivity"], triage["specificity"]

    threshold, _ = confident_threshold(y, probs, groups, TARGET)
    rng = np.random.default_rng(seed)
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    names = np.array(list(members))
    drawn = []
    for draw in range(redraws):
        picked = rng.choice(names, len(names))
        rows = np.concatenate([members[g] for g in picked])
        # a lesion drawn twice counts as two lesions, as the bootstrap inside the rule sees it
        redrawn = np.concatenate([[i] * len(members[g]) for i, g in enumerate(picked)])
        t, _ = confident_threshold(y[rows], probs[rows], redrawn, TARGET, seed=draw)
        drawn.append((t, *test_at(t)))
    spread = np.percentile(np.array(drawn), PERCENTILES, axis=0).T
    return ThresholdSpread(
        kind, redraws, threshold, *test_at(threshold), *(tuple(map(float, s)) for s in spread)
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.threshold_spread", description=__doc__.split("\n")[0]
    )
    parser.add_argument("val", type=Path, help="train.evaluate folder of the file on val")
    parser.add_argument("test", type=Path, help="train.evaluate folder of the same file on test")
    parser.add_argument("--kind", choices=DOMAINS, default="dermoscopic")
    parser.add_argument("--redraws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the result as JSON")
    args = parser.parse_args(argv)
    if args.redraws < 20:
        parser.error("--redraws must be at least 20")
    return args


@reported("train.threshold_spread")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    val, test = (read_table(folder / PREDICTIONS_CSV) for folder in (args.val, args.test))
    result = threshold_spread(val, test, args.kind, args.redraws, args.seed)
    low, mid, high = zip(
        result.threshold_percentiles,
        result.test_sensitivity_percentiles,
        result.test_specificity_percentiles,
        strict=True,
    )
    print(
        f"{result.kind}: val's threshold {result.threshold:.4f}; test sensitivity "
        f"{result.test_sensitivity:.3f}, specificity {result.test_specificity:.3f}\n"
        f"over {result.redraws} redraws of val (2.5% / 50% / 97.5%): threshold "
        f"{low[0]:.4f} / {mid[0]:.4f} / {high[0]:.4f}; test sensitivity {low[1]:.3f} / "
        f"{mid[1]:.3f} / {high[1]:.3f}; test specificity {low[2]:.3f} / {mid[2]:.3f} / "
        f"{high[2]:.3f}"
    )
    if args.out:
        args.out.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
