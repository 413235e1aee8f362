"""Lesion segmentation (issue #19): masks, training, evaluation and the framing measurement.

    python -m train.segment masks --out runs/segmentation/masks
    python -m train.segment train --out runs/segmentation [--epochs 40] [--copy-paste 0.5] \
        [--resume]
    python -m train.segment evaluate runs/segmentation --model FILE.tflite [--split test] \
        --out runs/segmentation/evaluation_test
    python -m train.segment framing runs/segmentation --segmenter FILE.tflite \
        --classifier models/skin_lesion_int8_mixed.tflite --out runs/segmentation/framing

`masks` derives a binary mask per PAD-UFES-20 phone photo from its cut-out and checks that the
two are pixel-aligned (`train.segmentation.masks`). `train` splits the phone photos by patient
and trains the network (`train.segmentation.training`). `evaluate` reports per-image Dice and
Jaccard with grouped bootstrap intervals and draws overlays. `framing` classifies val photos
with and without the crop around the predicted lesion (`contract.framing`) and compares them
with the paired grouped bootstrap. Export: `python -m export.segmentation`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from contract.commands import reported
from contract.run_folder import SHIPPED_SPLIT_CSV

DATA = Path("../shared/data")
PHOTOS = DATA / "pad_ufes20"
CUTOUTS = DATA / "pad_ufes20_cutouts"


def _masks(args: argparse.Namespace) -> int:
    from train.segmentation.masks import build_masks, summary

    rows = build_masks(args.photos / "images", args.cutouts / "images", args.out)
    result = summary(rows)
    (args.out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from train.segmentation.dataset import split_counts
    from train.segmentation.training import SegmenterConfig, train_segmenter

    values = {f.name: getattr(args, f.name, None) for f in fields(SegmenterConfig)}
    config = SegmenterConfig(**{k: v for k, v in values.items() if v is not None})
    classifier_split = None if args.no_pin else args.classifier_split
    path = train_segmenter(
        args.out, config, args.photos, args.masks, classifier_split, args.resume, args.cutouts
    )
    from contract.run_folder import read_split

    counts = split_counts(read_split(args.out / "split.csv"), args.masks)
    (args.out / "split_counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(json.dumps(counts, indent=2))
    print(f"wrote {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from train.segmentation.evaluation import evaluate_run

    report = evaluate_run(args.run, args.model, args.split, args.masks, args.out, args.overlays)
    print((args.out / "report.md").read_text())
    return 0 if report else 1


def _framing(args: argparse.Namespace) -> int:
    from train.segmentation.framing import measure_framing

    measure_framing(
        args.run, args.segmenter, args.classifier, args.split, args.classifier_split, args.out
    )
    print((args.out / "framing.md").read_text())
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.segment", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    masks = commands.add_parser("masks", help="masks from the cut-outs, with the alignment check")
    masks.add_argument("--photos", type=Path, default=PHOTOS)
    masks.add_argument("--cutouts", type=Path, default=CUTOUTS)
    masks.add_argument("--out", type=Path, required=True)
    masks.set_defaults(handler=_masks)

    train = commands.add_parser("train", help="split by patient and train the segmenter")
    train.add_argument("--out", type=Path, required=True, help="run folder to create or resume")
    train.add_argument("--photos", type=Path, default=PHOTOS)
    train.add_argument("--masks", type=Path, help="masks folder (default: OUT/masks)")
    train.add_argument(
        "--classifier-split",
        type=Path,
        default=SHIPPED_SPLIT_CSV,
        help="a classifier's split.csv: its test phone photos are pinned to val",
    )
    train.add_argument("--no-pin", action="store_true", help="do not pin those photos to val")
    train.add_argument("--resume", action="store_true")
    for name in ("image_size", "epochs", "batch_size", "seed"):
        train.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int)
    train.add_argument("--learning-rate", dest="learning_rate", type=float)
    train.add_argument(
        "--copy-paste",
        dest="copy_paste",
        type=float,
        help="share of training views with a photo-less cut-out's lesion pasted in (0-1)",
    )
    train.add_argument("--cutouts", type=Path, default=CUTOUTS, help="cut-outs to paste from")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="Dice / Jaccard of a .tflite on a split")
    evaluate.add_argument("run", type=Path)
    evaluate.add_argument("--model", type=Path, required=True, help="a segmenter .tflite")
    evaluate.add_argument(
        "--split", default="val", choices=("train", "val", "test"), help="test: for what ships"
    )
    evaluate.add_argument("--masks", type=Path, help="masks folder (default: RUN/masks)")
    evaluate.add_argument("--overlays", type=int, default=8, help="overlay pictures to draw")
    evaluate.add_argument("--out", type=Path, required=True)
    evaluate.set_defaults(handler=_evaluate)

    framing = commands.add_parser("framing", help="classifier with and without the crop")
    framing.add_argument("run", type=Path)
    framing.add_argument("--segmenter", type=Path, required=True)
    framing.add_argument("--classifier", type=Path, required=True)
    framing.add_argument("--split", default="val", choices=("val", "test"))
    framing.add_argument(
        "--classifier-split",
        type=Path,
        default=SHIPPED_SPLIT_CSV,
        help="the classifier's split.csv: the patients of its test phone photos are unseen",
    )
    framing.add_argument("--out", type=Path, required=True)
    framing.set_defaults(handler=_framing)

    args = parser.parse_args(argv)
    if args.command == "train" and args.copy_paste is not None and not 0 <= args.copy_paste <= 1:
        parser.error(f"--copy-paste must be between 0 and 1, got {args.copy_paste}")
    pins = args.command == "framing" or (args.command == "train" and not args.no_pin)
    if pins and not args.classifier_split.is_file():
        parser.error(f"no classifier split {args.classifier_split} (--classifier-split)")
    if getattr(args, "masks", None) is None and args.command in ("train", "evaluate"):
        args.masks = (args.out if args.command == "train" else args.run) / "masks"
    return args


@reported("train.segment")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if getattr(args, "out", None) is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
