"""Evaluate a run's Keras model or an exported .tflite on a split of the run.

    python -m train.evaluate runs/NAME [--model models/skin_lesion_int8_mixed.tflite] \
        [--split test] [--answers] [--out DIR]

Writes metrics.json and report.md (overall and per domain: balanced accuracy, per-class recall,
one-vs-rest AUC, malignant sensitivity/specificity at the shipped threshold, ECE, confusion
matrix; 95% intervals from resampling whole lesions / patients), predictions.csv (per image, for
`train.compare`) and PNG plots. Probabilities are calibrated with the temperature the model
carries, as in the app; with --answers, each image's answers from its data set are added first
(`train.fit_answers`), with their calibration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from contract.model_file import model_card
from contract.questionnaire import QUESTION_NAMES
from contract.screening import calibrate
from train import metrics
from train.bootstrap import grouped_bootstrap_intervals
from train.datasets import Skipped
from train.fit_answers import answer_ratios, models_from_card
from train.images import decode_records
from train.model_card import read_model_card, write_model_card
from train.pipeline import label_indices
from train.predict import predict_keras, predict_tflite
from train.prediction_table import PREDICTIONS_CSV, write_predictions
from train.report_md import metrics_markdown
from train.split import SPLIT_CSV, SPLITS, read_split

ANSWERED = list(QUESTION_NAMES)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="run folder (its split.csv defines the images)")
    parser.add_argument(
        "--model", type=Path, help="a .tflite to evaluate instead of the run's model.keras"
    )
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN/eval-SPLIT-MODEL)")
    parser.add_argument(
        "--update-card",
        action="store_true",
        help="record these metrics in the run's model_card.json (Keras model only), so the "
        "exported files carry them",
    )
    parser.add_argument(
        "--answers",
        nargs="*",
        metavar="QUESTION",
        help="add each image's answers from its data set (age, sex, body site, symptoms) as "
        "the model card's answers section says, with that section's calibration; name "
        f"questions to use only those, as if the rest were skipped ({', '.join(ANSWERED)})",
    )
    parser.add_argument(
        "--by-folder",
        action="store_true",
        help="also report each data-set folder (e.g. PAD photos and their cut-outs) separately",
    )
    args = parser.parse_args(argv)
    if args.update_card and args.model is not None:
        parser.error("--update-card records the run's own Keras model; drop --model")
    check_run_and_model(parser, args)
    args.card = card_of(args)  # read once: a .tflite is tens of MB
    if args.answers is not None:
        if "answers" not in args.card:
            parser.error("the model card has no answers section; run python -m train.fit_answers")
        unknown = sorted(set(args.answers) - set(ANSWERED))
        if unknown:
            parser.error(f"--answers: unknown question(s) {unknown}; choose from {ANSWERED}")
        if args.answers and args.update_card:
            parser.error("--update-card records the model with every answer; drop the questions")
        args.answers = args.answers or list(ANSWERED)
    return args


def check_run_and_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors for `run` (a folder with split.csv) and `--model` (else the run's Keras)."""
    if not (args.run / SPLIT_CSV).is_file():
        parser.error(f"{args.run / SPLIT_CSV} not found; is {args.run} a run folder?")
    if args.model is not None and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    if args.model is None and not (args.run / "model.keras").is_file():
        parser.error(f"{args.run / 'model.keras'} not found and no --model given")


def image_folder(path: Path) -> str:
    """The data-set folder an image came from (the folder holding `images/` or the class dirs)."""
    parent = path.parent
    return (
        parent.parent.name
        if parent.name.lower().startswith(("images", "ham10000_images"))
        else parent.name
    )


def card_of(args: argparse.Namespace) -> dict:
    """The model card the evaluated model carries (a .tflite's own, else the run's)."""
    if args.model is not None:
        return model_card(args.model.read_bytes())
    return read_model_card(args.run)


def split_predictions(args: argparse.Namespace, card: dict) -> tuple[np.ndarray, list, str]:
    """Raw probabilities of `args.model` (a .tflite) or the run's Keras model on `args.split`,
    the records they belong to (unreadable images skipped with a warning), and a short name."""
    skipped = Skipped()
    pixels, records = decode_records(
        read_split(args.run / SPLIT_CSV)[args.split], card["input"]["height"], skipped
    )
    skipped.warn()
    if args.model is not None:
        return predict_tflite(args.model, pixels), records, args.model.stem
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return (
        predict_keras(keras.models.load_model(args.run / "model.keras"), pixels),
        records,
        "keras",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    card = args.card
    raw, records, name = split_predictions(args, card)
    y = label_indices(records)
    domains = np.array([r.domain for r in records])
    groups = np.array([r.group for r in records])
    calibration, triage = card["calibration"], card["triage"]
    ratios = None
    if args.answers is not None:
        ratios = answer_ratios(models_from_card(card), records, args.answers)
        calibration, triage = card["answers"]["calibration"], card["answers"]["triage"]
        name += "-answers"
    temperature = calibration["temperature"]
    threshold = triage["malignant_threshold"]
    probs = calibrate(raw, temperature, ratios)
    uncalibrated = raw if ratios is None else calibrate(raw, 1.0, ratios)
    scopes = metrics.domain_scopes(domains)
    if args.by_folder:
        folders = np.array([image_folder(r.path) for r in records])
        scopes.update({f"folder {f}": folders == f for f in sorted(set(folders.tolist()))})
    report = {}
    for scope, mask in scopes.items():
        report[scope] = metrics.classification_report(y[mask], probs[mask], threshold)
        report[scope]["ece_uncalibrated"] = metrics.expected_calibration_error(
            y[mask], uncalibrated[mask]
        )
        report[scope]["ci95"] = grouped_bootstrap_intervals(
            y[mask], probs[mask], groups[mask], threshold
        )

    out = args.out or args.run / f"eval-{args.split}-{name}"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "model": str(args.model or args.run / "model.keras"),
        "split": args.split,
        "answers": args.answers,
        "temperature": temperature,
        "malignant_threshold": threshold,
        "metrics": report,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(metrics_markdown(result), encoding="utf-8")
    write_predictions(out / PREDICTIONS_CSV, records, probs)
    if args.update_card:
        (card["answers"] if args.answers is not None else card)["metrics"][args.split] = report
        write_model_card(args.run, card)

    from train.plots import plot_confusion, plot_reliability, plot_roc

    for scope, mask in scopes.items():
        title = f"{name}, {args.split} split, {scope}"
        stem = scope.replace(" ", "_")
        plot_confusion(y[mask], probs[mask], title, out / f"confusion_{stem}.png")
        plot_roc(y[mask], probs[mask], title, out / f"roc_{stem}.png")
        plot_reliability(y[mask], probs[mask], title, out / f"reliability_{stem}.png")
        print(f"{scope}: {metrics.summary_line(report[scope])}")
    print(f"wrote {out}/metrics.json, report.md, {PREDICTIONS_CSV} and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
