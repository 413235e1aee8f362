"""The files of a segmenter run folder, which training writes and export reads.

`python -m train.segment train --out RUN` leaves in RUN, beside `split.csv` and `model.keras`
(`contract.run_folder`):

- `config.json`: the training settings (`train.segmentation.training.SegmenterConfig`);
- `cache_<split>_<size>.npz`: each split's photos that have a mask, decoded once: their paths,
  uint8 pixels (N, size, size, 3) and boolean masks (N, size, size). The train photos are kept
  at `TRAIN_CACHE_SIZE`, which training crops and resizes from; val and test at the network's
  input size. With copy-paste, `cache_cutouts_192.npz` holds the lesions pasted in training
  (`train.segmentation.copy_paste`), square crops at 192 px.

`python -m export.segmentation` calibrates on the cached train photos and compares the .tflite
with the Keras model on the cached val photos: what training decoded, without the training code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFIG_JSON = "config.json"
TRAIN_CACHE_SIZE = 320


@dataclass(frozen=True)
class CachedPhotos:
    """One split's decoded photos with their masks, in split.csv order."""

    paths: list[str]
    pixels: np.ndarray  # uint8 (N, size, size, 3)
    masks: np.ndarray  # bool (N, size, size)


def read_config(run: Path) -> dict:
    return json.loads((run / CONFIG_JSON).read_text(encoding="utf-8"))


def cache_name(split: str, size: int) -> str:
    return f"cache_{split}_{size}.npz"


def read_cache(path: Path) -> CachedPhotos:
    data = np.load(path, allow_pickle=False)
    return CachedPhotos([str(p) for p in data["paths"]], data["pixels"], data["masks"])


def write_cache(path: Path, paths: Sequence[str], pixels: np.ndarray, masks: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, paths=np.array([str(p) for p in paths]), pixels=pixels, masks=masks)
