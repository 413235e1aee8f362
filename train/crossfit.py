"""Cross-fit each kind's threshold: out-of-fold predictions over train+val photos.

    python -m train.crossfit folds RUN [--folds 5] [--seed 0] --out OUT
    python -m train --split-from OUT/fold_K/split.csv --out OUT/fold_K/run   # each fold, K = 1..5
    python -m train.crossfit thresholds OUT/fold_1/run ... OUT/fold_5/run --card RUN \
        [--model FILE]

`folds` deals RUN's train and val dermoscopic lesions and phone patients with an uncut photo
(RUN: a folder with the split.csv of the model that ships, e.g. recipes/shipped_2025_split.csv
copied in) into K folds, whole lesions / patients, stratified by kind and by whether one is
malignant, and writes OUT/fold_K/split.csv: RUN's split with fold K's images (photos and
cut-outs) moved to test (`train.data.folds`). It prints the training command of each fold (a
recipe's `split_from` will do as well).

`thresholds` predicts each finished fold run (its model.keras, or the file FILE inside each
run, e.g. export/skin_lesion_int8_mixed.tflite) on the images of its own fold, calibrated by
its own temperature, pools the uncut photos of every fold per kind and fits each kind's
threshold on them by the card's lower-bound rule (`train.evaluation.crossfit`). It writes them
into RUN's model_card.json as the kinds' own, with their bounds and what they stand on; a kind
the folds hold no photo of keeps its own, and the answers' thresholds stay (with answers the
photo's referral stands, so that sensitivity inherits these bounds). The card's metrics were
measured at the old thresholds and are dropped: measure them again (printed). Why, and the
assumption it makes: docs/pipeline.md#cross-fitted-thresholds.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from contract.card import CardError, read_model_card, write_model_card
from contract.commands import reported
from contract.run_folder import (
    MODEL_CARD_JSON,
    SPLIT_CSV,
    RunFolderError,
    check_run_folder,
    read_split,
    write_split,
)
from train.cli import check_run_and_model
from train.data.folds import FoldError, deal_folds, fold_groups, fold_split
from train.evaluation.crossfit import fold_images, kind_triage, out_of_fold, with_kind_triage

FOLD = "fold_{}"  # OUT/fold_1 ... OUT/fold_K
FOLD_RUN = "run"  # where each fold's network is trained, inside its fold folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.crossfit", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    folds = commands.add_parser("folds", help="deal train+val lesions / patients into fold splits")
    folds.add_argument("run", type=Path, help="run folder whose split.csv is dealt")
    folds.add_argument("--folds", type=int, default=5, help="how many folds (K, at least 2)")
    folds.add_argument("--seed", type=int, default=0, help="the deal's seed")
    folds.add_argument("--out", type=Path, required=True, help="folder for fold_1 ... fold_K")
    folds.set_defaults(handler=_folds)
    thresholds = commands.add_parser(
        "thresholds", help="fit each kind's threshold on the folds' out-of-fold predictions"
    )
    thresholds.add_argument("runs", nargs="+", type=Path, help="the fold runs, finished")
    thresholds.add_argument(
        "--card",
        type=Path,
        required=True,
        help="run folder of the model that ships (its split.csv and model_card.json), whose "
        "card gets the thresholds",
    )
    thresholds.add_argument(
        "--model",
        type=Path,
        help="a .tflite inside each fold run (relative to it) to use instead of its model.keras; "
        "the file's own card gives its temperature",
    )
    thresholds.set_defaults(handler=_thresholds)
    args = parser.parse_args(argv)
    if args.command == "folds":
        _check_folds(parser, args)
    else:
        _check_thresholds(parser, args)
    return args


def _check_folds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        check_run_folder(args.run, (SPLIT_CSV,), "python -m train --split-only, or a copy")
    except RunFolderError as error:
        parser.error(str(error))
    if args.folds < 2:
        parser.error(f"--folds {args.folds}: cross-fitting needs at least 2")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty")


def _check_thresholds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if len(args.runs) < 2:
        parser.error(f"{len(args.runs)} fold run given; cross-fitting needs at least 2")
    try:
        check_run_folder(args.card, (SPLIT_CSV, MODEL_CARD_JSON))
        target = read_model_card(args.card).triage.target_sensitivity
    except (RunFolderError, CardError) as error:
        parser.error(f"--card: {error}")
    if target is None:
        parser.error(f"--card: {args.card / MODEL_CARD_JSON} names no target sensitivity")
    for run in args.runs:
        model = run / args.model if args.model is not None else None
        check_run_and_model(parser, run, model)
    try:
        fold_images(args.card / SPLIT_CSV, args.runs)  # each run a fold of its split
    except FoldError as error:
        parser.error(f"{error} (--card {args.card}'s split)")


def write_folds(split_csv: Path, folds: int, seed: int, out: Path) -> list[Path]:
    """OUT/fold_K/split.csv for K = 1..folds: `split_csv` with fold K's lesions / patients
    moved to test; prints what each fold moved."""
    splits = read_split(split_csv)
    groups = fold_groups(splits)
    written = []
    for k, fold in enumerate(deal_folds(groups, folds, seed), start=1):
        folder = out / FOLD.format(k)
        folder.mkdir(parents=True, exist_ok=True)
        write_split(folder / SPLIT_CSV, fold_split(splits, fold))
        counts = Counter(groups[g] for g in fold)
        dealt = ", ".join(
            f"{counts[(kind, False)] + counts[(kind, True)]} {kind} ({counts[(kind, True)]} "
            "malignant)"
            for kind in sorted({kind for kind, _ in counts})
        )
        print(f"{folder / SPLIT_CSV}: to test {dealt}", flush=True)
        written.append(folder / SPLIT_CSV)
    return written


def _folds(args: argparse.Namespace) -> int:
    splits = write_folds(args.run / SPLIT_CSV, args.folds, args.seed, args.out)
    runs = [split.parent / FOLD_RUN for split in splits]
    print("train each fold (or a recipe with its split_from), then fit the thresholds:")
    for run in runs:
        print(f"  python -m train --split-from {run.parent / SPLIT_CSV} --out {run}")
    print(f"  python -m train.crossfit thresholds {' '.join(map(str, runs))} --card {args.run}")
    return 0


def fit_thresholds(card_run: Path, runs: Sequence[Path], model: Path | None = None) -> None:
    """Each kind's threshold fitted on the fold runs' out-of-fold predictions, written into
    `card_run`'s card (FoldError: the runs are not folds of its split); prints each."""
    card = read_model_card(card_run)
    target = card.triage.target_sensitivity
    oof = out_of_fold(runs, fold_images(card_run / SPLIT_CSV, runs), model)
    fitted = {kind: kind_triage(oof, kind, target) for kind in oof.photos}
    write_model_card(card_run, with_kind_triage(card, fitted))
    before = card.triage.thresholds.by_domain
    for kind, triage in fitted.items():
        print(
            f"{kind}: threshold {triage.own_threshold:.4f} (was "
            f"{before.get(kind, float('nan')):.4f}), sensitivity lower bound "
            f"{triage.sensitivity_lower_bound_95:.3f}, out-of-fold sensitivity "
            f"{triage.sensitivity_at_own_threshold:.3f}; fitted on {dict(triage.fitted_on)}"
        )
        if triage.sensitivity_lower_bound_95 < target:
            print(
                f"  no {kind} threshold keeps the bound at {target}: the rule's fallback, "
                "the lowest malignant out-of-fold score"
            )
    if card.answers is not None and not card.answers.triage.photo_referral_stands:
        print(
            "warning: with answers the photo's referral does not stand in this card, so the "
            "sensitivity with answers does not inherit these bounds (python -m train.fit_answers)"
        )
    print(
        f"wrote {card_run / MODEL_CARD_JSON}; its metrics were measured at the old thresholds "
        "and are dropped: pack the card (python -m export.card), then record val and test "
        "(python -m train.evaluate --update-card, and --answers)"
    )


def _thresholds(args: argparse.Namespace) -> int:
    fit_thresholds(args.card, args.runs, args.model)
    return 0


@reported("train.crossfit")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
