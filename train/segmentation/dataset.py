"""The segmentation data: PAD-UFES-20 phone photos with a cut-out mask, split by patient.

The split is the project's grouped split (`train.data.split.grouped_split`) over every phone
photo of `pad_ufes20/` (with or without a mask), so no patient is in two splits; it is written as
the run's `split.csv` and read back on resume. The classifier's own test photos (the test rows
of its split.csv; for the shipped one, `recipes/shipped_2025_split.csv`) can be pinned to val
(`keep_in_val`): they are the only photos known never to have trained that classifier, so the
framing comparison (`train.segmentation.framing`) runs on segmenter-val photos that neither
network learnt from.

Pixels go through `contract.images` like everywhere else: the whole photo stretched to the
input size (bilinear). Training augments with flips, quarter turns, random square crops (zoom)
and mild colour changes; val and test see the plain stretched photo.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from contract.images import open_upright_rgb, resize_to_input
from contract.records import Record, Skipped
from contract.run_folder import SPLITS, read_split, write_split
from contract.segmenter_run import cache_name, read_cache, write_cache
from contract.taxonomy import PHONE
from train.data.datasets import load_dataset, merge_identical_images
from train.data.split import SplitFractions, grouped_split
from train.segmentation.masks import load_mask, resize_mask


def classifier_test_photos(classifier_split: Path) -> list[Record]:
    """The phone photos (not cut-outs) in the test split of a classifier's split.csv: the photos
    that classifier never trained on."""
    test = read_split(classifier_split)["test"]
    return [r for r in test if r.domain == PHONE and r.path.parent.parent.name == "pad_ufes20"]


def make_split(
    photos_root: Path,
    seed: int,
    fractions: SplitFractions,
    keep_in_val: Sequence[Path] = (),
) -> dict[str, list[Record]]:
    """The grouped split (by patient) of every phone photo; `keep_in_val` pins those photos'
    patients to val first."""
    skipped = Skipped()
    records = merge_identical_images(load_dataset(photos_root, skipped))
    skipped.warn()
    keep = {str(Path(p).resolve()): "val" for p in keep_in_val}
    return grouped_split(records, fractions, seed, keep)


def load_or_make_split(run: Path, **kwargs) -> dict[str, list[Record]]:
    path = run / "split.csv"
    if path.is_file():
        return read_split(path)
    split = make_split(**kwargs)
    run.mkdir(parents=True, exist_ok=True)
    write_split(path, split)
    return split


def split_counts(split: dict[str, list[Record]], masks_dir: Path) -> dict[str, dict[str, int]]:
    """Photos, photos with a mask, and patients per split."""
    out = {}
    for name in SPLITS:
        records = split[name]
        out[name] = {
            "photos": len(records),
            "with_mask": sum((masks_dir / f"{r.path.stem}.png").is_file() for r in records),
            "patients": len({r.group for r in records}),
        }
    return out


@dataclass
class MaskedImages:
    """Photos with masks, decoded: pixels (N, S, S, 3) uint8, masks (N, S, S) bool."""

    records: list[Record]
    pixels: np.ndarray
    masks: np.ndarray


def with_masks(records: Sequence[Record], masks_dir: Path) -> list[Record]:
    return [r for r in records if (masks_dir / f"{r.path.stem}.png").is_file()]


def decode(records: Sequence[Record], masks_dir: Path, size: int) -> MaskedImages:
    """Each photo stretched to size x size (`contract.images`), its mask likewise."""

    def one(record: Record) -> tuple[np.ndarray, np.ndarray]:
        image, _, _ = open_upright_rgb(record.path)
        mask = load_mask(masks_dir, record.path.stem)
        if mask.shape != (image.height, image.width):
            raise ValueError(f"{record.path}: mask {mask.shape} vs photo {image.size}")
        return resize_to_input(image, size, size), resize_mask(mask, size, size)

    with ThreadPoolExecutor(max_workers=2) as pool:
        pairs = list(pool.map(one, records))
    pixels = np.stack([p for p, _ in pairs]) if pairs else np.zeros((0, size, size, 3), np.uint8)
    masks = np.stack([m for _, m in pairs]) if pairs else np.zeros((0, size, size), bool)
    return MaskedImages(list(records), pixels, masks)


def cached(
    records: Sequence[Record], masks_dir: Path, run: Path, split: str, size: int
) -> MaskedImages:
    """`decode`, kept in the run folder (`contract.segmenter_run`) so that a resumed run does not
    decode again and export reads what training saw."""
    cache = run / cache_name(split, size)
    paths = [str(r.path) for r in records]
    if cache.is_file():
        stored = read_cache(cache)
        if stored.paths == paths:
            return MaskedImages(list(records), stored.pixels, stored.masks)
    images = decode(records, masks_dir, size)
    write_cache(cache, paths, images.pixels, images.masks)
    return images


def resize_pair(pixels: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    image = Image.fromarray(pixels).resize((size, size), Image.BILINEAR)
    return np.asarray(image), resize_mask(mask, size, size)


def augment(
    pixels: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training view: random square crop (55-100 % of the side), resize, flips, quarter
    turns, brightness / contrast / saturation within +-15 %."""
    side = pixels.shape[0]
    crop = int(side * rng.uniform(0.55, 1.0)) if rng.random() < 0.7 else side
    y, x = rng.integers(0, side - crop + 1, size=2)
    pixels, mask = resize_pair(
        pixels[y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop], size
    )
    turns = int(rng.integers(0, 4))
    pixels, mask = np.rot90(pixels, turns), np.rot90(mask, turns)
    if rng.random() < 0.5:
        pixels, mask = pixels[:, ::-1], mask[:, ::-1]
    values = pixels.astype(np.float32)
    grey = values.mean(axis=2, keepdims=True)
    values = grey + (values - grey) * rng.uniform(0.85, 1.15)  # saturation
    values = (values - values.mean()) * rng.uniform(0.85, 1.15) + values.mean()  # contrast
    values = values * rng.uniform(0.85, 1.15)  # brightness
    return np.clip(values, 0, 255).astype(np.uint8), np.ascontiguousarray(mask)


def area_counts(masks: np.ndarray) -> Counter:
    """How many masks are tiny (< 2 %), small (< 10 %) or large, by share of the image."""
    share = masks.reshape(len(masks), -1).mean(axis=1)
    return Counter(np.where(share < 0.02, "tiny", np.where(share < 0.1, "small", "large")))
