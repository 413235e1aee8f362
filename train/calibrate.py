"""Refit a run's temperature and triage thresholds on val from a model file's outputs.

    python -m train.calibrate RUN --model FILE.tflite [--flips N]

RUN needs only its split.csv and model_card.json, and FILE must carry that card (same name,
version, labels and input). Photo only and, if the card has answers, with answers, each domain
gets the threshold whose sensitivity holds with 95% confidence on val
(`train.evaluation.recalibrate`). Test metrics in the card were measured at the old thresholds
and are dropped: pack the card into the file (`python -m export.card`), then record the new
file's test metrics (`python -m train.evaluate RUN --model NEW_FILE --split test --update-card`,
and `--answers`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract.commands import reported
from contract.flips import add_flips_option
from contract.run_folder import MODEL_CARD_JSON, SPLIT_CSV, RunFolderError, check_run_folder
from train.evaluation.recalibrate import recalibrate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.calibrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="run folder (split.csv and model_card.json)")
    parser.add_argument("--model", type=Path, required=True, help="the .tflite to calibrate")
    add_flips_option(parser, "outside the file: what folding them into it gives")
    args = parser.parse_args(argv)
    try:
        check_run_folder(args.run, (SPLIT_CSV, MODEL_CARD_JSON))
    except RunFolderError as error:
        parser.error(str(error))
    if not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    return args


@reported("train.calibrate")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    card = recalibrate(args.run, args.model, args.flips)
    sections = {"photo only": card, "with answers": card.answers}
    for name, section in sections.items():
        if section is not None:
            thresholds = {d: round(v, 4) for d, v in section.triage.thresholds.by_domain.items()}
            temperature = section.calibration.temperature
            print(f"{name}: temperature {temperature:.3f}, thresholds {thresholds}")
    print(f"wrote {args.run / MODEL_CARD_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
