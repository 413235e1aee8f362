"""Training the lesion segmenter: a run folder, a checkpoint every epoch, resumable.

Run folder (`python -m train.segment train --out runs/segmentation`):
- `split.csv`: the grouped split by patient (`train.segmentation.dataset`);
- `config.json`: the settings below; a resumed run must use the same;
- `cache_<split>_<size>.npz`: decoded photos and masks per split (`contract.segmenter_run`;
  export calibrates and verifies on them);
- `checkpoints/last.keras` (every epoch, with the optimizer) and `checkpoints/best.keras` (the
  epoch with the best val Dice), `history.csv` (one row per epoch);
- `model.keras`: the best epoch's model, written when training ends.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contract.commands import CommandError
from contract.run_folder import MODEL_KERAS
from contract.segmenter_run import CONFIG_JSON, TRAIN_CACHE_SIZE, CachedPhotos, read_config
from train.data.split import SplitFractions
from train.segmentation import copy_paste, dataset

HISTORY_CSV = "history.csv"
LAST, BEST = "checkpoints/last.keras", "checkpoints/best.keras"


@dataclass(frozen=True)
class SegmenterConfig:
    image_size: int = 224
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_epochs: int = 2
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Pin the classifier's test photos (the test rows of its split.csv) to val.
    keep_shipped_test_in_val: bool = True
    # Share of training views with a photo-less cut-out's lesion pasted in
    # (`train.segmentation.copy_paste`).
    copy_paste: float = 0.0


class SegmentationError(CommandError, ValueError):
    """A run folder or its inputs cannot be used as asked."""


def learning_rate(config: SegmenterConfig, epoch: int) -> float:
    """Linear warm-up, then cosine decay to 2 % of the peak by the last epoch."""
    if epoch < config.warmup_epochs:
        return config.learning_rate * (epoch + 1) / (config.warmup_epochs + 1)
    progress = (epoch - config.warmup_epochs) / max(1, config.epochs - config.warmup_epochs)
    return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def custom_objects() -> dict:
    from train.segmentation.loss import dice_bce_loss, hard_dice

    return {"dice_bce_loss": dice_bce_loss, "hard_dice": hard_dice}


def load_model(path: Path):
    import keras

    return keras.saving.load_model(path, custom_objects=custom_objects())


def split_and_data(
    run: Path,
    config: SegmenterConfig,
    photos_root: Path,
    masks_dir: Path,
    classifier_split: Path | None,
    splits: tuple[str, ...] = ("train", "val"),
) -> tuple[dict, dict[str, dataset.MaskedImages]]:
    keep = []
    if config.keep_shipped_test_in_val and classifier_split is not None:
        keep = [r.path for r in dataset.classifier_test_photos(classifier_split)]
    split = dataset.load_or_make_split(
        run,
        photos_root=photos_root,
        seed=config.seed,
        fractions=SplitFractions(config.val_fraction, config.test_fraction),
        keep_in_val=keep,
    )
    data = {}
    for name in splits:
        records = dataset.with_masks(split[name], masks_dir)
        size = TRAIN_CACHE_SIZE if name == "train" else config.image_size
        data[name] = dataset.cached(records, masks_dir, run, name, size)
    return split, data


def pasted_lesions(
    run: Path, split: dict, cutouts_root: Path | None, config: SegmenterConfig
) -> CachedPhotos | None:
    """The lesions to paste: cut-outs without a photo, of patients outside val and test."""
    if not config.copy_paste:
        return None
    if cutouts_root is None:
        raise SegmentationError("copy_paste needs the cut-outs folder")
    photo_stems = {r.path.stem for records in split.values() for r in records}
    held_out = {r.group for name in ("val", "test") for r in split[name]}
    lesions = copy_paste.load_lesions(
        copy_paste.usable_cutouts(cutouts_root, photo_stems, held_out), run
    )
    if not len(lesions.pixels):
        raise SegmentationError(f"{cutouts_root}: no cut-out lesion to paste")
    return lesions


def _batches(
    config: SegmenterConfig,
    images: dataset.MaskedImages,
    lesions: CachedPhotos | None,
    first_epoch: int = 0,
):
    import keras

    class TrainingBatches(keras.utils.PyDataset):
        """Augmented views of the training photos, reshuffled every epoch."""

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = first_epoch
            self.order = np.arange(len(images.pixels))

        def __len__(self) -> int:
            return math.ceil(len(self.order) / config.batch_size)

        def on_epoch_begin(self) -> None:  # Keras calls it at each epoch's start
            self.order = np.random.default_rng((config.seed, self.epoch)).permutation(
                len(images.pixels)
            )
            self.epoch += 1

        def view(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            pixels, mask = images.pixels[i], images.masks[i]
            if lesions is not None and rng.random() < config.copy_paste:
                j = int(rng.integers(len(lesions.pixels)))
                pixels, mask = copy_paste.paste_lesion(
                    pixels, mask, lesions.pixels[j], lesions.masks[j], rng
                )
            return dataset.augment(pixels, mask, config.image_size, rng)

        def __getitem__(self, index: int):
            rng = np.random.default_rng((config.seed, self.epoch, index))
            chosen = self.order[index * config.batch_size : (index + 1) * config.batch_size]
            views = [self.view(i, rng) for i in chosen]
            x = np.stack([v[0] for v in views]).astype(np.float32)
            y = np.stack([v[1] for v in views]).astype(np.float32)[..., None]
            return x, y

    return TrainingBatches()


def _history(run: Path) -> list[dict[str, str]]:
    path = run / HISTORY_CSV
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def train_segmenter(
    run: Path,
    config: SegmenterConfig,
    photos_root: Path,
    masks_dir: Path,
    classifier_split: Path | None,
    resume: bool = False,
    cutouts_root: Path | None = None,
) -> Path:
    """Train (or resume) into `run`; returns the path of the best epoch's model."""
    import keras

    from train.segmentation.loss import dice_bce_loss, hard_dice
    from train.segmentation.network import build_segmenter

    config_path = run / CONFIG_JSON
    if config_path.is_file():
        saved = read_config(run)
        if not resume:
            raise SegmentationError(f"{run} already holds a run; pass --resume to continue it")
        if saved != asdict(config):
            raise SegmentationError(f"{config_path} differs from the settings given: {saved}")
    run.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(asdict(config), indent=2) + "\n")
    split, data = split_and_data(run, config, photos_root, masks_dir, classifier_split)
    train_images, val_images = data["train"], data["val"]
    print(f"train {len(train_images.pixels)} photos, val {len(val_images.pixels)} (with masks)")
    lesions = pasted_lesions(run, split, cutouts_root, config)
    if lesions is not None:
        print(
            f"{len(lesions.pixels)} cut-out lesions to paste into {config.copy_paste:.0%} of views"
        )

    keras.utils.set_random_seed(config.seed)
    history = _history(run)
    if resume and (run / LAST).is_file() and history:
        model = load_model(run / LAST)
        initial_epoch = len(history)
    else:
        model = build_segmenter(config.image_size)
        model.compile(
            keras.optimizers.Adam(config.learning_rate), dice_bce_loss, metrics=[hard_dice]
        )
        initial_epoch, history = 0, []
        (run / HISTORY_CSV).unlink(missing_ok=True)
    best = max((float(h["val_hard_dice"]) for h in history), default=-1.0)

    class Checkpoints(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = best
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = dict(logs or {})
            (run / "checkpoints").mkdir(exist_ok=True)
            self.model.save(run / LAST)
            if logs["val_hard_dice"] > self.best:
                self.best = logs["val_hard_dice"]
                self.model.save(run / BEST)
            row = {"epoch": epoch + 1, "learning_rate": learning_rate(config, epoch), **logs}
            row["seconds"] = round(time.perf_counter() - self.start, 1)
            self.start = time.perf_counter()
            path = run / HISTORY_CSV
            new = not path.is_file()
            with path.open("a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)
            print(
                f"epoch {epoch + 1}: loss {logs['loss']:.4f} dice {logs['hard_dice']:.4f} "
                f"val_loss {logs['val_loss']:.4f} val_dice {logs['val_hard_dice']:.4f}",
                flush=True,
            )

    if initial_epoch < config.epochs:
        model.fit(
            _batches(config, train_images, lesions, initial_epoch),
            validation_data=(
                val_images.pixels.astype(np.float32),
                val_images.masks.astype(np.float32)[..., None],
            ),
            validation_batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            callbacks=[
                keras.callbacks.LearningRateScheduler(lambda e: learning_rate(config, e)),
                Checkpoints(),
            ],
            verbose=0,
        )
    best_model = load_model(run / BEST)
    best_model.save(run / MODEL_KERAS)
    return run / MODEL_KERAS
