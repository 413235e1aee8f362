"""Train a skin-lesion classifier on real images, top to bottom.

    python -m train --data ../shared/data/ham10000 --data ../shared/data/pad_ufes20 \
        --out runs/NAME [--backbone efficientnet_lite0] [--epochs 12] [--resume]
    python -m train --out runs/NAME --resume --more-epochs 2   # a third stage on a finished run

Writes into the run folder: split.csv (the grouped split every later step reads),
checkpoints/ (every epoch), model.keras and model_card.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from train.datasets import DatasetError, Skipped, counts, load_dataset, merge_identical_images
from train.hparams import HParams
from train.split import SPLIT_CSV, SplitFractions, grouped_split, read_split, write_split
from train.subset import take_per_class

HPARAMS_JSON = "hparams.json"
BALANCING = ("loss_weights", "sampling", "logit_adjust")
# What --resume may change: a third stage extends a run without redoing it. Any other option
# would silently train another recipe than the one its checkpoints came from.
EXTENDABLE_ON_RESUME = ("more_epochs", "more_blocks", "more_learning_rate")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, HParams]:
    defaults = HParams()
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a data-set folder (HAM10000, PAD-UFES-20 or class folders); repeat",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder to create or resume")
    parser.add_argument(
        "--split-from",
        type=Path,
        metavar="CSV",
        help="reuse another run's split.csv instead of --data (to compare recipes on the same "
        "images)",
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
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument(
        "--distill-from",
        default=defaults.distill_from,
        metavar="RUN",
        help="also learn from this run's probabilities (e.g. an ensemble trained on the same "
        "split.csv): each target mixes the label and the teacher (train.distill)",
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
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--max-images-per-class",
        type=int,
        default=0,
        help="train on a small subset (whole lesions/patients) for smoke runs",
    )
    args = parser.parse_args(argv)

    from train.backbones import BACKBONES

    if args.backbone not in BACKBONES:
        parser.error(f"--backbone must be one of {', '.join(sorted(BACKBONES))}")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.image_size and not 32 <= args.image_size <= 1024:
        parser.error("--image-size must be between 32 and 1024 (or 0 for the backbone default)")
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
    if args.split_from is not None:
        if args.data:
            parser.error("give either --data or --split-from, not both")
        if not args.split_from.is_file():
            parser.error(f"--split-from {args.split_from}: no such file")
    elif not args.data:
        parser.error("give at least one --data folder")
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
    return replace(HParams(**json.loads(saved.read_text())), **given)


def checked(parser: argparse.ArgumentParser, hparams: HParams) -> HParams:
    """Checks that need the whole recipe (with --resume, the saved one as extended)."""
    from train.backbones import BACKBONES

    spec = BACKBONES[hparams.backbone]
    if spec.set_trainable_top_blocks is not None:
        for name in ("finetune_blocks", "more_blocks"):
            if not 0 <= getattr(hparams, name) <= spec.blocks:
                option = "--" + name.replace("_", "-")
                parser.error(f"{option} must be between 0 and {spec.blocks} for {spec.name}")
    if hparams.more_epochs < 0:
        parser.error("--more-epochs must be at least 0")
    if not 0.0 <= hparams.ema_momentum < 1.0:
        parser.error("--ema-momentum must be at least 0 and below 1")
    if not 0.0 <= hparams.distill_weight <= 1.0:
        parser.error("--distill-weight must be between 0 and 1")
    if hparams.distill_temperature <= 0:
        parser.error("--distill-temperature must be above 0")
    if hparams.distill_from and not Path(hparams.distill_from).is_dir():
        parser.error(f"--distill-from {hparams.distill_from}: no such run folder")
    if hparams.more_epochs and not spec.pretrained:
        parser.error(
            f"--more-epochs: {hparams.backbone} trains in one stage; a third stage "
            "needs a pretrained backbone"
        )
    return hparams


def main(argv: list[str] | None = None) -> int:
    args, hp = parse_args(argv)
    run_dir: Path = args.out
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---- data: records, grouped split (written once, read by every later step), pixels
    skipped = Skipped()
    split_csv = run_dir / SPLIT_CSV
    if args.resume:
        splits = read_split(split_csv)
        (run_dir / HPARAMS_JSON).write_text(json.dumps(hp.to_dict(), indent=2) + "\n")
    elif args.split_from is not None:
        splits = read_split(args.split_from)
        write_split(split_csv, splits)
        (run_dir / HPARAMS_JSON).write_text(json.dumps(hp.to_dict(), indent=2) + "\n")
    else:
        records = []
        for folder in args.data:
            try:
                records += load_dataset(folder, skipped)
            except DatasetError as error:
                print(f"python -m train: error: {error}", file=sys.stderr)
                return 2
        records = merge_identical_images(records)
        if hp.max_images_per_class:
            records = take_per_class(records, hp.max_images_per_class, hp.seed)
        if not records:
            print("python -m train: error: the data set is empty", file=sys.stderr)
            return 2
        splits = grouped_split(records, SplitFractions(hp.val_fraction, hp.test_fraction), hp.seed)
        write_split(split_csv, splits)
        (run_dir / HPARAMS_JSON).write_text(json.dumps(hp.to_dict(), indent=2) + "\n")
        if args.split_only:
            skipped.warn()
            print(f"wrote {split_csv}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
            return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from train import metrics
    from train.backbones import get_spec
    from train.calibrate import calibrate_on_val
    from train.distill import (
        TeacherError,
        check_teacher,
        distillation_targets,
        teacher_train_probs,
    )
    from train.images import decode_records
    from train.losses import class_log_prior, logit_adjusted_crossentropy
    from train.model import build_classifier, set_trainable_stage
    from train.model_card import build_model_card, write_model_card
    from train.pipeline import balancing_weights, label_indices, one_hot, training_dataset
    from train.predict import predict_keras

    keras.utils.set_random_seed(hp.seed)
    spec = get_spec(hp.backbone)
    size = hp.image_size or spec.default_image_size
    teacher = Path(hp.distill_from) if hp.distill_from else None
    if teacher is not None:  # before the minutes of decoding: a wrong teacher fails at once
        try:
            check_teacher(teacher, split_csv, size)
        except TeacherError as error:
            print(f"python -m train: error: {error}", file=sys.stderr)
            return 2
    print(f"decoding images at {size}x{size} ...", flush=True)
    x_train, train_records = decode_records(splits["train"], size, skipped)
    x_val, val_records = decode_records(splits["val"], size, skipped)
    skipped.warn()
    if not train_records or not val_records:
        print("python -m train: error: no readable images in train or val", file=sys.stderr)
        return 2
    y_train, y_val = label_indices(train_records), label_indices(val_records)
    targets = one_hot(y_train)
    if teacher is not None:
        print(f"teacher {teacher}: predicting the train images ...", flush=True)
        teacher_probs = teacher_train_probs(teacher, x_train, run_dir)
        targets = distillation_targets(
            y_train, teacher_probs, hp.distill_weight, hp.distill_temperature
        )
    if hp.balance == "logit_adjust":
        w_train = np.ones(len(y_train), np.float32)
        loss = logit_adjusted_crossentropy(class_log_prior(y_train), hp.label_smoothing)
    else:
        w_train = balancing_weights(train_records, hp.max_class_weight)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing)
    train_ds = training_dataset(
        x_train, targets, w_train, hp.batch_size, hp.augment, hp.seed, hp.balance == "sampling"
    )
    print(f"train {len(y_train)} images, val {len(y_val)} images", flush=True)

    # ---- model, under a distribution strategy (MirroredStrategy when several GPUs are visible)
    gpus = tf.config.list_logical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    with strategy.scope():
        model = build_classifier(spec, size, hp.dropout)

    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    state_path = checkpoints / "state.json"
    state = {"epoch": 0, "best_balanced_accuracy": -1.0, "train_seconds": 0.0}
    if args.resume and state_path.is_file():
        state = json.loads(state_path.read_text())
        model.load_weights(checkpoints / "last.weights.h5")
        print(f"resuming after epoch {state['epoch']}", flush=True)

    class EpochEnd(keras.callbacks.Callback):
        """Validate, keep the best weights by val balanced accuracy, checkpoint every epoch."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            state["train_seconds"] += time.time() - self.started
            probs = predict_keras(self.model, x_val)
            bacc = metrics.balanced_accuracy(y_val, probs.argmax(1))
            print(f"epoch {epoch + 1}: val balanced accuracy {bacc:.4f}", flush=True)
            if bacc > state["best_balanced_accuracy"]:
                state["best_balanced_accuracy"] = bacc
                self.model.save_weights(checkpoints / "best.weights.h5")
            self.model.save_weights(checkpoints / "last.weights.h5")
            state["epoch"] = epoch + 1
            state_path.write_text(json.dumps(state, indent=2))

    # ---- staged training: head only, then the top blocks (pretrained backbones only)
    if spec.pretrained:
        head = min(hp.head_epochs, hp.epochs)
        stages = [
            (0, head, 0, hp.learning_rate),
            (head, hp.epochs, hp.finetune_blocks, hp.finetune_learning_rate),
            (hp.epochs, hp.epochs + hp.more_epochs, hp.more_blocks, hp.more_learning_rate),
        ]
    else:
        stages = [(0, hp.epochs, None, hp.learning_rate)]
    for first, last, top_blocks, lr in stages:
        if state["epoch"] >= last:
            continue
        start = max(first, state["epoch"])
        steps_per_epoch = int(np.ceil(len(y_train) / hp.batch_size))
        # A moving average would carry a fresh head's random start weights into the head stage.
        ema = hp.ema_momentum if top_blocks != 0 else 0.0
        with strategy.scope():
            set_trainable_stage(model, spec, top_blocks)
            schedule = keras.optimizers.schedules.CosineDecay(lr, (last - first) * steps_per_epoch)
            optimizer = keras.optimizers.AdamW(
                schedule, weight_decay=hp.weight_decay, use_ema=ema > 0, ema_momentum=ema
            )
            model.compile(
                optimizer=optimizer,
                loss=loss,
                weighted_metrics=["accuracy"],
            )
            # A resumed stage continues its learning-rate schedule where it stopped.
            optimizer.build(model.trainable_variables)
            optimizer.iterations.assign((start - first) * steps_per_epoch)
        print(
            f"stage: epochs {first + 1}-{last}, trainable top blocks "
            f"{'all' if top_blocks is None else top_blocks}, lr {lr}",
            flush=True,
        )
        callbacks: list[keras.callbacks.Callback] = [EpochEnd()]
        if ema:  # swapped in at each epoch's end: EpochEnd validates and saves the average,
            # and the next stage (or a resumed run, whose average restarts) continues from it
            callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        model.fit(
            train_ds,
            initial_epoch=start,
            epochs=last,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )

    # ---- the best epoch, calibrated on val, with a triage threshold chosen on val
    model.load_weights(checkpoints / "best.weights.h5")
    if hp.balance == "logit_adjust":  # save a loss any reader can load without our code
        model.compile(optimizer=model.optimizer, loss=keras.losses.CategoricalCrossentropy())
    model.save(run_dir / "model.keras")
    calibration = calibrate_on_val(val_records, predict_keras(model, x_val), hp.target_sensitivity)
    images_seen = len(y_train) * state["epoch"]
    card = build_model_card(
        backbone=spec.name,
        image_size=size,
        normalisation=spec.normalisation,
        hparams=hp.to_dict(),
        counts={split: counts(recs) for split, recs in splits.items()},
        skipped=len(skipped.items),
        temperature=calibration.temperature,
        threshold=calibration.threshold,
        target_sensitivity=hp.target_sensitivity,
        val_metrics=calibration.report,
        training={
            "epochs": state["epoch"],
            "train_seconds": round(state["train_seconds"], 1),
            "images_per_second": round(images_seen / max(state["train_seconds"], 1e-9), 2),
            "best_val_balanced_accuracy_uncalibrated": state["best_balanced_accuracy"],
        },
    )
    write_model_card(run_dir, card)
    for domain, report in calibration.report.items():
        print(f"val {domain}: {metrics.summary_line(report)}")
    print(f"wrote {run_dir / 'model.keras'} and {run_dir / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
