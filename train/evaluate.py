"""Evaluate a run's Keras model or an exported .tflite on a split of the run (val by default).

    python -m train.evaluate runs/NAME [--model FILE.tflite] [--split val|test] \
        [--answers [QUESTION,...]] [--out DIR] [--update-card] [--by-folder] [--flips N]

Writes metrics.json, report.md, predictions.csv (for `train.compare`) and PNG plots
(`train.evaluation.split_evaluation`). Test is for the model you ship: tune on val.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract import metrics
from contract.card import MODEL_CARD_JSON, CardError, read_model_card
from contract.commands import comma_list
from contract.flips import add_flips_option
from contract.model_file import ModelFileError
from contract.questionnaire import QUESTION_NAMES
from contract.run_folder import MODEL_KERAS, SPLITS
from train.cli import check_run_and_model
from train.evaluation.split_evaluation import (
    card_of,
    evaluate,
    record_in_card,
    write_evaluation,
)

ANSWERED = list(QUESTION_NAMES)
ALL_ANSWERS = "all"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="run folder (its split.csv defines the images)")
    parser.add_argument(
        "--model", type=Path, help="a .tflite to evaluate instead of the run's model.keras"
    )
    parser.add_argument("--split", choices=SPLITS, default="val")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN/eval-SPLIT-MODEL)")
    parser.add_argument(
        "--update-card",
        action="store_true",
        help="record these metrics in the run's model_card.json, so the exported files carry "
        "them; the model evaluated must carry that card (the run's Keras model, or a --model "
        "file packed with it: python -m export, or python -m export.card after train.calibrate)",
    )
    parser.add_argument(
        "--answers",
        nargs="?",
        const=ALL_ANSWERS,
        type=str,
        metavar="QUESTION,...",
        help="add each image's answers from its data set (age, sex, body site, symptoms) as "
        "the model card's answers section says, with that section's calibration; name "
        f"questions to use only those, as if the rest were skipped ({', '.join(ANSWERED)})",
    )
    parser.add_argument(
        "--by-folder",
        action="store_true",
        help="also report each data-set folder (e.g. PAD photos and their cut-outs) separately",
    )
    add_flips_option(parser, "outside the file: what folding them into it gives")
    args = parser.parse_args(argv)
    check_run_and_model(parser, args.run, args.model)
    try:
        card = card_of(args.run, args.model)
    except ModelFileError as error:
        parser.error(f"--model {args.model}: {error}")
    except CardError as error:
        parser.error(str(error))
    if args.update_card and args.model is not None:
        if not (args.run / MODEL_CARD_JSON).is_file():
            parser.error(f"--update-card: {args.run} has no {MODEL_CARD_JSON} to record in")
        if card.without_measurements() != read_model_card(args.run).without_measurements():
            parser.error(
                f"--update-card: {args.model} does not carry the run's card (pack it with "
                "python -m export.card after python -m train.calibrate)"
            )
    if args.answers is not None:
        if card.answers is None:
            parser.error("the model card has no answers section; run python -m train.fit_answers")
        asked = comma_list(args.answers) if args.answers != ALL_ANSWERS else []
        unknown = sorted(set(asked) - set(ANSWERED))
        if unknown:
            parser.error(f"--answers: unknown question(s) {unknown}; choose from {ANSWERED}")
        if asked and args.update_card:
            parser.error("--update-card records the model with every answer; drop the questions")
        args.answers = asked or list(ANSWERED)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = evaluate(
        args.run, args.model, args.split, args.answers, args.by_folder, args.flips
    )
    out = args.out or args.run / f"eval-{args.split}-{result.name}"
    write_evaluation(result, out, args.model or args.run / MODEL_KERAS, args.split, args.answers)
    if args.update_card:
        record_in_card(args.run, args.split, result.report, args.answers is not None)
    for scope in result.scopes:
        print(f"{scope}: {metrics.summary_line(result.report[scope])}")
    print(f"wrote {out}/metrics.json, report.md, predictions.csv and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
