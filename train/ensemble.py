"""Average the probabilities of several runs trained on the same split into one model.

    python -m train.ensemble runs/A runs/B --out runs/A+B

How: `train.model.averaging` (members share split.csv and input size; calibrated on val).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train.model.averaging import EnsembleError, check_members, ensemble_runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.ensemble", description=__doc__.split("\n")[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="new run folder to write")
    args = parser.parse_args(argv)
    try:
        check_members(args.runs)
    except EnsembleError as error:
        parser.error(str(error))
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensemble_runs(args.runs, args.out)
    print(f"wrote {args.out / 'model.keras'} and {args.out / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
