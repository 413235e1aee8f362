"""Train a skin-lesion classifier on real images, top to bottom.

    python -m train --out runs/NAME [--resume]     # one shipped member, on the shipped split
    python -m train --data ../shared/data/ham10000,../shared/data/pad_ufes20 \
        --out runs/NAME [--epochs 12] [--resume]
    python -m train --out runs/NAME --resume --more-epochs 2   # a third stage on a finished run

The defaults are one shipped member's settings (recipes/shipped.toml): EfficientNet-Lite0 at
224 px, 8 epochs, resampled, on the shipped split (recipes/shipped_2025_split.csv) unless --data,
--split-from or --packed names the images; `--backbone tiny_cnn` trains in seconds, for tests.

Writes into the run folder: split.csv (the grouped split every later step reads),
checkpoints/ (every epoch), model.keras and model_card.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from contract.colour_constancy import STEPS
from contract.commands import comma_separated, reported
from contract.run_folder import SHIPPED_SPLIT_CSV, SPLIT_CSV
from train.cli import add_cluster_arguments, parse_cluster
from train.model.devices import join
from train.model.hparams import BALANCING, RETIRED, HParams, validate
from train.model.training import HPARAMS_JSON, create, start_run, train

# What --resume may change: a third stage extends a run without redoing it. Any other option
# would silently train another recipe than the one its checkpoints came from.
EXTENDABLE_ON_RESUME = ("more_epochs", "more_blocks", "more_learning_rate")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, HParams]:
    defaults = HParams()
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=comma_separated(Path, "../shared/data/ham10000,../shared/data/pad_ufes20"),
        default=[],
        metavar="DIR,...",
        help="data-set folders (HAM10000, PAD-UFES-20 or class folders), comma-separated",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder to create or resume")
    parser.add_argument(
        "--split-from",
        type=Path,
        metavar="CSV",
        help="reuse another run's split.csv instead of --data (to compare recipes on the same "
        f"images); without --data or --packed: {SHIPPED_SPLIT_CSV}, the shipped one",
    )
    parser.add_argument(
        "--keep-split",
        type=Path,
        metavar="CSV",
        help="with --data: an earlier split.csv whose images keep their split (new images, e.g. "
        "a data set added since, are dealt around them)",
    )
    parser.add_argument(
        "--split-only",
        action="store_true",
        help="write the grouped split (split.csv, from --data and --seed) and stop; train recipes "
        "on it later with --split-from",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    parser.add_argument("--backbone", default=defaults.backbone)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--head-epochs", type=int, default=defaults.head_epochs)
    parser.add_argument("--finetune-blocks", type=int, default=defaults.finetune_blocks)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument(
        "--finetune-learning-rate", type=float, default=defaults.finetune_learning_rate
    )
    parser.add_argument(
        "--more-epochs",
        type=int,
        default=defaults.more_epochs,
        help="a third stage with --more-blocks unfrozen (pretrained backbones); with --resume, "
        "extends a finished run",
    )
    parser.add_argument("--more-blocks", type=int, default=defaults.more_blocks)
    parser.add_argument("--more-learning-rate", type=float, default=defaults.more_learning_rate)
    parser.add_argument(
        "--ema-momentum",
        type=float,
        default=defaults.ema_momentum,
        help="validate, keep and continue from an exponential moving average of the weights in "
        "the stages that fine-tune (e.g. 0.99); 0 uses the raw weights",
    )
    parser.add_argument(
        "--balance",
        choices=BALANCING,
        default=defaults.balance,
        help="give each (domain, class) stratum equal weight through the loss or by resampling, "
        "or (logit_adjust) see each image once and add log class priors to the logits in the loss",
    )
    parser.add_argument(
        "--malignant-loss-weight",
        type=float,
        default=defaults.malignant_loss_weight,
        help="add this weight x the binary cross-entropy of P(malignant), the sum the triage "
        "refers on, to the seven-way loss (0: off)",
    )
    parser.add_argument(
        "--colour-constancy",
        choices=STEPS,
        default=defaults.colour_constancy,
        help="correct each image's colour cast before the network sees it, in training and in "
        "every client (contract.colour_constancy; the card says so); default: none",
    )
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument(
        "--distill-from",
        default=defaults.distill_from,
        metavar="RUN",
        help="also learn from this run's probabilities (e.g. an ensemble trained on the same "
        "split.csv): each target mixes the label and the teacher (train.model.distill)",
    )
    parser.add_argument(
        "--distill-weight",
        type=float,
        default=defaults.distill_weight,
        help="the teacher's share of each target, 0-1",
    )
    parser.add_argument(
        "--distill-temperature",
        type=float,
        default=defaults.distill_temperature,
        help="soften the teacher's probabilities by this temperature (> 0)",
    )
    parser.add_argument(
        "--init-from",
        default=defaults.init_from,
        metavar="RUN",
        help="start from this finished run's network (same backbone) instead of the backbone's "
        "pretrained weights: e.g. a short fine-tune at another --image-size (--head-epochs 0)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--max-images-per-class",
        type=int,
        default=0,
        help="train on a small subset (whole lesions/patients) for smoke runs",
    )
    parser.add_argument(
        "--packed",
        type=Path,
        metavar="FILE",
        help="take the split and the images from a packed file (python -m train.pack) instead "
        "of --data; with --resume, the run's images",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=0,
        metavar="N",
        help="data parallel: split each batch over N devices of the Keras backend (0: every "
        "one it sees; with several processes, each's); the backend is KERAS_BACKEND's",
    )
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    if args.devices < 0:
        parser.error("--devices must be at least 0")
    args.cluster = parse_cluster(parser, args)
    if args.packed is not None:
        if args.data or args.split_from is not None or args.split_only or args.keep_split:
            parser.error(
                "--packed holds the split and the images; drop --data, --split-from, "
                "--keep-split and --split-only"
            )
        if not args.packed.is_file():
            parser.error(f"--packed {args.packed}: no such file")
    if args.split_only and (args.resume or args.split_from is not None):
        parser.error(
            "--split-only makes a new split from --data; not with --resume or --split-from"
        )
    if args.resume:
        saved = args.out / HPARAMS_JSON
        if not saved.is_file():
            parser.error(f"--resume: {saved} not found; is {args.out} a run folder?")
        if args.data or args.split_from is not None:
            parser.error("--resume reads the run's own split.csv; drop --data and --split-from")
        return args, checked(parser, resumed_hparams(parser, args, saved))
    if args.keep_split is not None:
        if not args.data:
            parser.error("--keep-split adds --data around an earlier split; give --data")
        if not args.keep_split.is_file():
            parser.error(f"--keep-split {args.keep_split}: no such file")
    if args.split_from is None and not args.data and args.packed is None:
        args.split_from = SHIPPED_SPLIT_CSV  # a shipped member, on the shipped images
    if args.split_from is not None:
        if args.data:
            parser.error("give either --data or --split-from, not both")
        if not args.split_from.is_file():
            parser.error(f"--split-from {args.split_from}: no such file")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty; use --resume or another --out")
    hparams = HParams(
        **{f.name: getattr(args, f.name) for f in fields(HParams) if hasattr(args, f.name)}
    )
    return args, checked(parser, hparams)


def resumed_hparams(
    parser: argparse.ArgumentParser, args: argparse.Namespace, saved: Path
) -> HParams:
    """The run's saved hparams, with the third-stage options given on the command line."""
    given = {
        f.name: getattr(args, f.name)
        for f in fields(HParams)
        if hasattr(args, f.name) and getattr(args, f.name) != parser.get_default(f.name)
    }
    fixed = sorted(set(given) - set(EXTENDABLE_ON_RESUME))
    if fixed:
        options = ", ".join("--" + name.replace("_", "-") for name in fixed)
        parser.error(
            f"--resume continues the recipe saved in {saved}; it cannot change {options} "
            "(only --more-epochs, --more-blocks and --more-learning-rate extend a run)"
        )
    values = json.loads(saved.read_text())
    known = {f.name for f in fields(HParams)}
    lacking = [k for k, v in values.items() if k not in known and (k, v) not in RETIRED.items()]
    if lacking:
        parser.error(f"--resume: {saved} sets {', '.join(lacking)}, which this version lacks")
    return replace(HParams(**{k: v for k, v in values.items() if k in known}), **given)


def checked(parser: argparse.ArgumentParser, hparams: HParams) -> HParams:
    """The whole recipe's checks (with --resume, the saved one as extended) as usage errors."""
    try:
        validate(hparams)
    except ValueError as error:
        parser.error(str(error))
    return hparams


@reported("train")
def main(argv: list[str] | None = None) -> int:
    args, hp = parse_args(argv)
    if not args.split_only:
        join(args.cluster)
    if args.resume:
        create(args.out, hp, resume=True, packed=args.packed, devices=args.devices)
        return 0
    if args.packed is not None:
        create(args.out, hp, packed=args.packed, devices=args.devices)
        return done(args.out)
    splits = start_run(args.out, hp, args.data, args.split_from, args.keep_split)
    if args.split_only:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        print(f"wrote {args.out / SPLIT_CSV}: {sizes}")
        return 0
    train(args.out, hp, devices=args.devices)
    return done(args.out)


def done(out: Path) -> int:
    print(f"wrote {out / 'model.keras'} and {out / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
