"""Fit the answers' model for a finished run and record it in the run's model card.

    python -m train.fit_answers runs/NAME

How: `train.answers.fitting` (regressions on train; strength, temperature and threshold on val).
`python -m export` packs the card, so the .tflite carries it all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract.commands import comma_separated, reported
from contract.run_folder import RunFolderError, check_run_folder
from train.answers.fitting import DEFAULT_STRENGTHS, fit_answers


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.fit_answers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a finished run folder (model.keras, card, split)")
    parser.add_argument(
        "--strengths",
        type=comma_separated(float, "0.25,0.5,1"),
        default=list(DEFAULT_STRENGTHS),
        metavar="S,...",
        help="strengths to try on val, per domain (default: 0.25,0.5,0.75,1)",
    )
    args = parser.parse_args(argv)
    try:
        check_run_folder(args.run)
    except RunFolderError as error:
        parser.error(str(error))
    if not args.strengths or any(s <= 0 for s in args.strengths):
        parser.error("--strengths must be positive")
    return args


@reported("train.fit_answers")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fit_answers(args.run, args.strengths)
    print(f"wrote the answers' model into {args.run / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
