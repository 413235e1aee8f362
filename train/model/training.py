"""Training one network on a run folder's split, top to bottom, and the Python entry point.

    from train import HParams, create
    card = create("runs/NAME", HParams(backbone="efficientnet_lite0", epochs=8), data=[...])

The run folder holds split.csv (the grouped split every later step reads), hparams.json,
checkpoints/ (every epoch, so `resume=True` continues an interrupted run), model.keras and
model_card.json. Pretrained backbones train in stages (head, then the top blocks); the epoch
with the best val balanced accuracy is kept, then calibrated on val.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from train.data.datasets import Skipped, counts, load_dataset, merge_identical_images
from train.data.split import (
    SPLIT_CSV,
    SplitFractions,
    grouped_split,
    kept_assignments,
    read_split,
    write_split,
)
from train.data.subset import take_per_class
from train.model.hparams import HParams

HPARAMS_JSON = "hparams.json"


class TrainingError(Exception):
    """A run cannot be trained as asked (no data, unreadable images, a wrong teacher)."""


def make_split(
    data: Sequence[str | Path], hp: HParams, skipped: Skipped, keep: Path | None = None
) -> dict[str, list]:
    """The grouped split of the data-set folders (by lesion / patient, `hp.seed`); `keep`, an
    earlier split.csv whose images keep their split (`train.data.split.grouped_split`)."""
    records = []
    for folder in data:
        records += load_dataset(folder, skipped)  # DatasetError names a folder it cannot read
    records = merge_identical_images(records)
    if hp.max_images_per_class:
        records = take_per_class(records, hp.max_images_per_class, hp.seed)
    if not records:
        raise TrainingError("the data set is empty")
    kept = kept_assignments(keep) if keep is not None else None
    return grouped_split(
        records, SplitFractions(hp.val_fraction, hp.test_fraction), hp.seed, kept
    )


def start_run(
    run_dir: Path,
    hp: HParams,
    data: Sequence[str | Path] = (),
    split_from: Path | None = None,
    keep: Path | None = None,
) -> dict[str, list]:
    """Write a run folder's split.csv (from `split_from`, or made from `data`, keeping the
    assignments of `keep`) and hparams.json."""
    skipped = Skipped()
    splits = (
        read_split(split_from)
        if split_from is not None
        else make_split(data, hp, skipped, keep)
    )
    skipped.warn()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_split(run_dir / SPLIT_CSV, splits)
    (run_dir / HPARAMS_JSON).write_text(json.dumps(hp.to_dict(), indent=2) + "\n")
    return splits


def create(
    out: str | Path,
    hparams: HParams,
    data: Sequence[str | Path] = (),
    split_from: str | Path | None = None,
    resume: bool = False,
) -> dict:
    """Train one network into the run folder `out`; returns its model card.

    Give the data-set folders (`data`) or another run's split.csv (`split_from`); with
    `resume=True` the run's own split.csv and checkpoints are used.
    """
    run_dir = Path(out)
    if resume:
        (run_dir / HPARAMS_JSON).write_text(json.dumps(hparams.to_dict(), indent=2) + "\n")
    else:
        start_run(run_dir, hparams, data, Path(split_from) if split_from else None)
    return train(run_dir, hparams, resume)


def train(run_dir: Path, hp: HParams, resume: bool = False) -> dict:
    """Train on run_dir/split.csv: checkpoints every epoch, model.keras and model_card.json."""
    splits = read_split(run_dir / SPLIT_CSV)
    skipped = Skipped()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from train.data.images import decode_records
    from train.data.pipeline import balancing_weights, label_indices, one_hot, training_dataset
    from train.evaluation import metrics
    from train.evaluation.calibrate import calibrate_on_val
    from train.evaluation.predict import predict_keras
    from train.model.backbones import get_spec
    from train.model.card import build_model_card, write_model_card
    from train.model.distill import check_teacher, distillation_targets, teacher_train_probs
    from train.model.losses import class_log_prior, logit_adjusted_crossentropy
    from train.model.network import build_classifier, set_trainable_stage

    keras.utils.set_random_seed(hp.seed)
    spec = get_spec(hp.backbone)
    size = hp.image_size or spec.default_image_size
    teacher = Path(hp.distill_from) if hp.distill_from else None
    if teacher is not None:  # before the minutes of decoding: a wrong teacher fails at once
        check_teacher(teacher, run_dir / SPLIT_CSV, size)
    print(f"decoding images at {size}x{size} ...", flush=True)
    x_train, train_records = decode_records(splits["train"], size, skipped)
    x_val, val_records = decode_records(splits["val"], size, skipped)
    skipped.warn()
    if not train_records or not val_records:
        raise TrainingError("no readable images in train or val")
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
    if resume and state_path.is_file():
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
        triage=calibration.triage(hp.target_sensitivity),
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
    return card
