"""Average the probabilities of several runs trained on the same split into one model.

    python -m train.ensemble runs/A runs/B --out runs/A+B

Members must share split.csv and input size, so the ensemble's val and test are theirs. The
averaged model is calibrated on val like a single run (`train.evaluation.calibrate`) and
written as a run folder (model.keras, model_card.json, split.csv) that `train.evaluate` and
`python -m export` take unchanged; the .tflite is one file with every member inside.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from train.data.datasets import Skipped
from train.data.split import SPLIT_CSV, differing_split, read_split
from train.model.card import build_model_card, read_model_card, write_model_card

RUN_FILES = ("model.keras", "model_card.json", SPLIT_CSV)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.ensemble", description=__doc__.split("\n")[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="new run folder to write")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least two run folders")
    for run in args.runs:
        for name in RUN_FILES:
            if not (run / name).is_file():
                parser.error(f"{run / name} not found; is {run} a finished run folder?")
    for run in args.runs[1:]:
        if differing_split(args.runs[0] / SPLIT_CSV, run / SPLIT_CSV) is not None:
            parser.error(
                f"{run} was trained on another split than {args.runs[0]}; train it with "
                f"--split-from {args.runs[0] / SPLIT_CSV}"
            )
    sizes = {read_model_card(run)["input"]["height"] for run in args.runs}
    if len(sizes) > 1:
        parser.error(f"the runs take different input sizes ({sorted(sizes)})")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty")
    return args


def build_ensemble(members: list, image_size: int):
    """One Keras model: the same pixels into every member, their probabilities averaged."""
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = [
        keras.Model(member.input, member.output, name=f"member{i}")(inputs)
        for i, member in enumerate(members)
    ]
    averaged = keras.layers.Average(name="probability")(outputs)
    return keras.Model(inputs, averaged, name=f"skin_lesion_ensemble_of_{len(members)}")


def members_normalisation(cards: list[dict]) -> str:
    """What the members do to the pixels (each inside itself; the ensemble adds nothing)."""
    steps = {c["preprocessing"].removeprefix("inside the model: ").split(";")[0] for c in cards}
    return " and ".join(sorted(steps))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from train.data.images import decode_records
    from train.evaluation import metrics
    from train.evaluation.calibrate import calibrate_on_val
    from train.evaluation.predict import predict_keras

    cards = [read_model_card(run) for run in args.runs]
    size = cards[0]["input"]["height"]
    model = build_ensemble(
        [keras.models.load_model(run / "model.keras") for run in args.runs], size
    )
    skipped = Skipped()
    x_val, val_records = decode_records(read_split(args.runs[0] / SPLIT_CSV)["val"], size, skipped)
    skipped.warn()
    target = cards[0]["triage"]["target_sensitivity"]
    calibration = calibrate_on_val(val_records, predict_keras(model, x_val), target)

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.keras")
    shutil.copyfile(args.runs[0] / SPLIT_CSV, args.out / SPLIT_CSV)
    backbones = sorted({card["backbone"] for card in cards})
    card = build_model_card(
        backbone=f"{'+'.join(backbones)}-ensemble-of-{len(cards)}",
        image_size=size,
        normalisation=members_normalisation(cards),
        hparams={
            "members": [
                {"run": run.name, **c["hparams"]} for run, c in zip(args.runs, cards, strict=True)
            ]
        },
        counts=cards[0]["counts"],
        skipped=len(skipped.items),
        temperature=calibration.temperature,
        threshold=calibration.threshold,
        target_sensitivity=target,
        val_metrics=calibration.report,
        training={
            "members": [c["training"] for c in cards],
            "train_seconds": round(sum(c["training"]["train_seconds"] for c in cards), 1),
        },
    )
    write_model_card(args.out, card)
    for domain, report in calibration.report.items():
        print(f"val {domain}: {metrics.summary_line(report)}")
    print(f"wrote {args.out / 'model.keras'} and {args.out / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
