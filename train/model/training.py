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

from contract.commands import CommandError
from contract.records import Skipped
from contract.run_folder import SPLIT_CSV, read_split, write_split
from train.data.datasets import counts, load_dataset, merge_identical_images
from train.data.split import SplitFractions, differing_split, grouped_split, kept_assignments
from train.data.subset import take_per_class
from train.model.hparams import HParams, init_weights

HPARAMS_JSON = "hparams.json"


class TrainingError(CommandError):
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
    return grouped_split(records, SplitFractions(hp.val_fraction, hp.test_fraction), hp.seed, kept)


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
        read_split(split_from) if split_from is not None else make_split(data, hp, skipped, keep)
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
    packed: str | Path | None = None,
    devices: int = 0,
) -> dict:
    """Train one network into the run folder `out`; returns its model card.

    Give the data-set folders (`data`), another run's split.csv (`split_from`) or a packed
    file (`packed`, `train.data.packed`: its split and its images); with `resume=True` the run's
    own split.csv and checkpoints are used (and the images of `packed`, if given). `devices`:
    `train.model.devices.placement`.
    """
    run_dir = Path(out)
    packed = Path(packed) if packed else None
    if resume:
        (run_dir / HPARAMS_JSON).write_text(json.dumps(hparams.to_dict(), indent=2) + "\n")
    elif packed is not None and not split_from:
        start_packed_run(run_dir, hparams, packed)
    else:
        start_run(run_dir, hparams, data, Path(split_from) if split_from else None)
    return train(run_dir, hparams, resume, packed, devices)


def start_packed_run(run_dir: Path, hp: HParams, packed: Path) -> dict[str, list]:
    """Write a run folder's split.csv (the packed file's split) and hparams.json."""
    from train.data.packed import PackedImages

    splits = PackedImages(packed).splits()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_split(run_dir / SPLIT_CSV, splits)
    (run_dir / HPARAMS_JSON).write_text(json.dumps(hp.to_dict(), indent=2) + "\n")
    return splits


def decode_train_val(
    run_dir: Path, splits: dict[str, list], size: int, skipped: Skipped, packed: Path | None
) -> tuple:
    """(train pixels, train records, val pixels, val records): decoded from the image files, or
    read from a packed file that must hold this run's split at this size."""
    from contract.records import decode_records
    from train.data.packed import PackedImages

    if packed is None:
        print(f"decoding images at {size}x{size} ...", flush=True)
        return (
            *decode_records(splits["train"], size, skipped),
            *decode_records(splits["val"], size, skipped),
        )
    images = PackedImages(packed)
    if images.image_size != size:
        raise TrainingError(
            f"{packed} holds {images.image_size} px images; this run trains at {size} px "
            f"(give --image-size {images.image_size}, or pack at {size})"
        )
    differing = next((s for s in ("train", "val") if images.splits()[s] != splits[s]), None)
    if differing is not None:
        raise TrainingError(
            f"{packed} holds another split than {run_dir / SPLIT_CSV} ({differing} differs)"
        )
    print(f"reading {size}x{size} images from {packed} ...", flush=True)
    return (*images.pixels("train", skipped), *images.pixels("val", skipped))


def train(
    run_dir: Path,
    hp: HParams,
    resume: bool = False,
    packed: Path | None = None,
    devices: int = 0,
) -> dict:
    """Train on run_dir/split.csv: checkpoints every epoch, model.keras and model_card.json.

    The images come from the files split.csv names, or from `packed` (`train.data.packed`).
    The Keras backend is whichever `KERAS_BACKEND` chose; `devices` says how many of its
    devices share each batch (`train.model.devices`; 0: all).
    """
    splits = read_split(run_dir / SPLIT_CSV)
    skipped = Skipped()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from contract import metrics
    from contract.card import write_model_card
    from contract.colour_constancy import apply
    from contract.lesion_gate import is_cutout
    from contract.records import label_indices
    from train.data.pipeline import TrainingBatches, balancing_weights, one_hot
    from train.model.backbones import get_spec
    from train.model.calibration import calibrate_on_val
    from train.model.card import build_model_card
    from train.model.devices import DeviceError, placement
    from train.model.distill import check_teacher, distillation_targets, teacher_train_probs
    from train.model.losses import (
        class_log_prior,
        logit_adjusted_crossentropy,
        with_malignant_term,
    )
    from train.model.predict import predict_keras

    keras.utils.set_random_seed(hp.seed)
    spec = get_spec(hp.backbone)
    size = hp.image_size or spec.default_image_size
    teacher = Path(hp.distill_from) if hp.distill_from else None
    if teacher is not None:  # before the minutes of decoding: a wrong teacher fails at once
        check_teacher(teacher, run_dir / SPLIT_CSV, size)
    start = init_weights(hp)
    if start is not None:  # like a teacher, a start that saw this run's val or test leaks them
        differing = differing_split(run_dir / SPLIT_CSV, start.parent / SPLIT_CSV)
        if differing is not None:
            raise TrainingError(
                f"--init-from {hp.init_from} was trained on another split ({differing} "
                "differs); a run may start only from a network of its own split.csv"
            )
    try:
        where = placement(devices)
    except DeviceError as error:
        raise TrainingError(str(error)) from None
    if where.processes > 1 and hp.batch_size % where.replicas:
        raise TrainingError(
            f"--batch-size {hp.batch_size} does not split over the {where.replicas} devices of "
            f"the {where.processes} processes; give a multiple of {where.replicas}"
        )
    x_train, train_records, x_val, val_records = decode_train_val(
        run_dir, splits, size, skipped, packed
    )
    skipped.warn()
    if not train_records or not val_records:
        raise TrainingError("no readable images in train or val")
    y_train, y_val = label_indices(train_records), label_indices(val_records)
    val_cutouts = is_cutout(x_val)  # by the pixels as decoded
    targets = one_hot(y_train)
    if teacher is not None:  # on the pixels the teacher expects (its own card's step)
        print(f"teacher {teacher}: predicting the train images ...", flush=True)
        teacher_probs = teacher_train_probs(teacher, x_train, run_dir)
        targets = distillation_targets(
            y_train, teacher_probs, hp.distill_weight, hp.distill_temperature
        )
    # Before augmentation: its colour changes act on the corrected pixels, as residual casts
    # the correction leaves (docs/levers.md, 3b).
    step = hp.colour_constancy or None
    x_train, x_val = apply(x_train, step), apply(x_val, step)
    if hp.balance == "logit_adjust":
        w_train = np.ones(len(y_train), np.float32)
        loss = logit_adjusted_crossentropy(class_log_prior(y_train), hp.label_smoothing)
    else:
        w_train = balancing_weights(train_records, hp.max_class_weight)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing)
    if hp.malignant_loss_weight > 0:
        loss = with_malignant_term(loss, hp.malignant_loss_weight)
    resample = hp.balance == "sampling"
    train_ds = TrainingBatches(
        x_train, targets, w_train, hp.batch_size, hp.augment, hp.seed, resample, where.replicas,
        part=where.part
    )
    print(f"train {len(y_train)} images, val {len(y_val)} images", flush=True)
    print(f"training on the {where.describe()}", flush=True)

    # ---- the model, and the training model around it, built and trained on the placement
    with where.scope():
        model, state = _fit(run_dir, hp, spec, size, resume, train_ds, x_val, y_val, loss)
        model.save(run_dir / "model.keras")
        val_probs = predict_keras(model, x_val)
    calibration = calibrate_on_val(
        val_records, val_probs, hp.target_sensitivity, cutouts=val_cutouts
    )
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
            "backend": where.backend,
            "devices": where.devices,
        },
        colour_constancy=step,
    )
    write_model_card(run_dir, card)
    for domain, report in calibration.report.items():
        print(f"val {domain}: {metrics.summary_line(report)}")
    return card


def _fit(run_dir: Path, hp: HParams, spec, size: int, resume: bool, train_ds, x_val, y_val, loss):
    """Build the classifier, train it in stages from its checkpoints, and return it (with the
    best epoch's weights, compiled so that any reader can load it) and the run's state."""
    import keras

    from contract import metrics
    from train.model.network import build_classifier, set_trainable_stage, training_model
    from train.model.predict import predict_keras

    model = build_classifier(spec, size, hp.dropout)
    trainer = training_model(model, hp.augment, hp.seed)

    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    state_path = checkpoints / "state.json"
    state = {"epoch": 0, "best_balanced_accuracy": -1.0, "train_seconds": 0.0}
    if resume and state_path.is_file():
        state = json.loads(state_path.read_text())
        model.load_weights(checkpoints / "last.weights.h5")
        print(f"resuming after epoch {state['epoch']}", flush=True)
    elif hp.init_from:
        start = init_weights(hp)
        model.load_weights(start)
        print(f"starting from {start}", flush=True)

    class EpochEnd(keras.callbacks.Callback):
        """Validate, keep the best weights by val balanced accuracy, checkpoint every epoch
        (the classifier's weights: the training model adds none that are learnt)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            state["train_seconds"] += time.time() - self.started
            if keras.backend.backend() == "jax":
                # After SwapEMAWeights a weight and its average can share one JAX array, which
                # predict (donating its inputs) would delete for both: copy them apart first.
                for variable in model.trainable_variables:
                    variable.assign(keras.ops.copy(variable.value))
            probs = predict_keras(model, x_val)
            bacc = metrics.balanced_accuracy(y_val, probs.argmax(1))
            print(f"epoch {epoch + 1}: val balanced accuracy {bacc:.4f}", flush=True)
            if bacc > state["best_balanced_accuracy"]:
                state["best_balanced_accuracy"] = bacc
                model.save_weights(checkpoints / "best.weights.h5")
            model.save_weights(checkpoints / "last.weights.h5")
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
    steps_per_epoch = len(train_ds)
    for first, last, top_blocks, lr in stages:
        if state["epoch"] >= last:
            continue
        start = max(first, state["epoch"])
        # A moving average would carry a fresh head's random start weights into the head stage.
        ema = hp.ema_momentum if top_blocks != 0 else 0.0
        set_trainable_stage(model, spec, top_blocks)
        schedule = keras.optimizers.schedules.CosineDecay(lr, (last - first) * steps_per_epoch)
        optimizer = keras.optimizers.AdamW(
            schedule, weight_decay=hp.weight_decay, use_ema=ema > 0, ema_momentum=ema
        )
        trainer.compile(optimizer=optimizer, loss=loss, weighted_metrics=["accuracy"])
        # A resumed stage continues its learning-rate schedule where it stopped.
        optimizer.build(trainer.trainable_variables)
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
        train_ds.set_epoch(start)  # a resumed run draws what an uninterrupted one would have
        trainer.fit(
            train_ds,
            initial_epoch=start,
            epochs=last,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )

    # ---- the best epoch; saved with a plain loss, so any reader can load it without our code
    model.load_weights(checkpoints / "best.weights.h5")
    plain = hp.balance == "logit_adjust" or hp.malignant_loss_weight > 0  # closures: not saved
    model.compile(
        optimizer=trainer.optimizer,
        loss=keras.losses.CategoricalCrossentropy() if plain else loss,
        weighted_metrics=["accuracy"],
    )
    return model, state
