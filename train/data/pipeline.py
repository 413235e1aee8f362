"""The input pipeline over decoded pixel arrays, without TensorFlow: `keras.utils.PyDataset`.

Why a PyDataset: every Keras backend's `fit` reads it natively (TensorFlow, JAX, PyTorch), it
needs no other library, and the images are already decoded into one uint8 array, so a batch is
an index into memory. Each batch is drawn from (seed, epoch, batch number) alone, so worker
threads cannot change what a batch holds, and the same arrays (from the image folders or from a
packed file, `train.data.packed`) give the same batches. The random view of each image is taken
inside the training step (`train.data.augment.Augment`); only the JPEG recompression, for which
Keras has no op, is done here, with Pillow.
"""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np

from contract.records import Record
from contract.taxonomy import LABELS
from train.data.augment import JPEG_QUALITY, recompress


def balancing_weights(records: list[Record], max_weight: float) -> np.ndarray:
    """Per-example weights that give every (domain, class) stratum the same total weight.

    Without this the network learns "dermoscopic mole" (two thirds of the images) and little
    else; phone melanomas, a few dozen images, would barely count.
    """
    strata = [(r.domain, r.label) for r in records]
    size = Counter(strata)
    weights = np.array([len(records) / (len(size) * size[s]) for s in strata], np.float32)
    weights = np.minimum(weights, max_weight)
    return weights / weights.mean()


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(len(LABELS), dtype=np.float32)[labels]


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled (or resampled) batches of (uint8 image, target, loss weight), one epoch a pass.

    `epoch` says which epoch's draws come next; it advances at each epoch's end, and a resumed
    run sets it to the epoch it resumes at. With `multiple_of` n, the last, partial batch of an
    epoch is cut to a multiple of n (a data-parallel step needs a batch its devices can share).

    With `part` (process, processes), several processes (hosts, `train.model.devices.join`)
    share each batch: this one yields only its slice, the same images, qualities and weights
    that slice holds in the whole batch. Every batch must then split evenly between them.

    Images are JPEG-recompressed if `augmented`. `targets` holds one probability row per image:
    the one-hot label, or a mix of label and teacher (train.model.distill).

    Two ways to use the balancing weights: as loss weights (each image once per epoch), or with
    `resample` as sampling probabilities (each epoch draws as many images, with replacement, and
    every loss weight is 1), so a rare stratum is seen more often, in fresh augmentations,
    instead of counting more. Measured here (README), resampling reached a higher val balanced
    accuracy but its int8 export lost more than a point, so loss weights stay the default.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        targets: np.ndarray,
        weights: np.ndarray,
        batch_size: int,
        augmented: bool,
        seed: int,
        resample: bool = False,
        multiple_of: int = 1,
        workers: int = 2,
        part: tuple[int, int] = (0, 1),
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.pixels = pixels
        self.targets = np.asarray(targets, np.float32)
        self.weights = np.asarray(weights, np.float32)
        self.batch_size = batch_size
        self.augmented = augmented
        self.seed = seed
        self.resample = resample
        self.multiple_of = multiple_of
        self.part = part
        # The last batch holds n % batch_size images; cut to a multiple of `multiple_of`.
        self.usable = len(targets) - len(targets) % batch_size % multiple_of
        self.batches = -(-self.usable // batch_size)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch `epoch`'s order: a permutation, or with `resample` as many draws as there
        are images, with replacement, each image as likely as its weight."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.targets)
        if self.resample:
            self.order = rng.choice(n, size=n, p=self.weights / self.weights.sum())
        else:
            self.order = rng.permutation(n)
        self.order = self.order[: self.usable]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        qualities = rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1], len(rows), endpoint=True)
        process, processes = self.part
        if len(rows) % processes:
            raise ValueError(f"a batch of {len(rows)} does not split between {processes}")
        mine = np.array_split(np.arange(len(rows)), processes)[process]
        rows, qualities = rows[mine], qualities[mine]
        images = self.pixels[rows]
        if self.augmented:
            images = np.stack([recompress(im, q) for im, q in zip(images, qualities, strict=True)])
        weights = np.ones(len(rows), np.float32) if self.resample else self.weights[rows]
        return images, self.targets[rows], weights


class InferenceBatches(keras.utils.PyDataset):
    """float32 batches of the images in order, every one `batch_size` long: the last is padded
    with black images (cut off the predictions), so a compiled step sees one shape and a
    data-parallel one a batch its devices can share."""

    def __init__(self, pixels: np.ndarray, batch_size: int):
        super().__init__()
        self.pixels = pixels
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.pixels) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray]:
        chunk = self.pixels[index * self.batch_size : (index + 1) * self.batch_size]
        batch = np.zeros((self.batch_size, *self.pixels.shape[1:]), np.float32)
        batch[: len(chunk)] = chunk
        return (batch,)
