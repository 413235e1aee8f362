"""Copy-paste augmentation: lesions of the cut-outs that have no photo, pasted into training photos.

Why: only 337 training photos have a mask, while `pad_ufes20_cutouts/` holds 802 more lesions
whose photo is not in `../shared/data` (a cut-out alone has no background to learn from).
Pasting such a lesion over a training photo's own lesion gives the network a new lesion on real
skin, framed as phone photos frame one (Ghiasi et al., "Simple Copy-Paste is a Strong Data
Augmentation Method for Instance Segmentation", 2021).

Only cut-outs of patients outside the segmenter's val and test splits are used, so no val or test
patient's lesion reaches training. The pasted lesion covers the photo's lesion box (1.15 to 1.5
times its longer side, centre jittered); its colours are scaled per channel so that its rim
matches the skin around it (another photo's light and white balance would otherwise give it
away), its edge is feathered so that a seam cannot mark the outline, and the new mask is the
pasted lesion together with whatever of the old one still shows.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from contract.images import open_upright_rgb
from contract.records import Skipped
from contract.segmenter_run import CachedPhotos, cache_name, read_cache, write_cache
from train.data.datasets import load_dataset
from train.segmentation.masks import cutout_mask, resize_mask

PATCH_SIZE = 192  # lesions are kept at this size, square, and scaled when pasted
# A cut-out whose lesion covers almost all of it was not cut out; one with a tiny lesion is a speck.
MAX_CUTOUT_FILL = 0.9
MIN_CUTOUT_FILL = 0.002
SCALE = (1.15, 1.5)  # pasted side / the photo's lesion box side
SIDE_LIMITS = (0.08, 0.8)  # share of the photo's side
CENTRE_JITTER = 0.1  # of the pasted side
GAIN_LIMITS = (0.6, 1.6)  # per-channel colour gain that matches the lesion's rim to the skin


def usable_cutouts(
    cutouts_root: Path, photo_stems: Collection[str], held_out_groups: Collection[str]
) -> list[Path]:
    """Cut-outs with no photo of their own, of patients outside val and test."""
    skipped = Skipped()
    records = load_dataset(cutouts_root, skipped)
    skipped.warn()
    return [
        r.path for r in records if r.path.stem not in photo_stems and r.group not in held_out_groups
    ]


def square_crop(pixels: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's bounding box grown to a square (black beyond the image), resized to size."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(y1 - y0, x1 - x0)
    top, left = (y0 + y1 - side) // 2, (x0 + x1 - side) // 2
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas_mask = np.zeros((side, side), bool)
    sy0, sx0 = max(top, 0), max(left, 0)
    sy1, sx1 = min(top + side, mask.shape[0]), min(left + side, mask.shape[1])
    canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = pixels[sy0:sy1, sx0:sx1]
    canvas_mask[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = mask[sy0:sy1, sx0:sx1]
    resized = np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))
    return resized, resize_mask(canvas_mask, size, size)


def fill_outside(pixels: np.ndarray, mask: np.ndarray, edge_px: int = 2) -> np.ndarray:
    """Every pixel outside the lesion (and its JPEG-darkened edge) takes the colour of the
    nearest lesion pixel, so that feathering blends lesion into skin, not black."""
    inside = ndimage.binary_erosion(mask, iterations=edge_px)
    if not inside.any():
        inside = mask
    _, (rows, cols) = ndimage.distance_transform_edt(~inside, return_indices=True)
    return pixels[rows, cols]


def decode_lesion(path: Path, size: int = PATCH_SIZE) -> tuple[np.ndarray, np.ndarray] | None:
    image, _, _ = open_upright_rgb(path)
    return decode_lesion_arrays(np.asarray(image), size)


def decode_lesion_arrays(
    pixels: np.ndarray, size: int = PATCH_SIZE
) -> tuple[np.ndarray, np.ndarray] | None:
    """A cut-out's lesion as a square patch (pixels, mask), or None when it is not a usable
    cut-out (no lesion, or nothing blacked out)."""
    mask = cutout_mask(pixels)
    if not MIN_CUTOUT_FILL <= mask.mean() <= MAX_CUTOUT_FILL:
        return None
    return square_crop(fill_outside(pixels, mask), mask, size)


def load_lesions(paths: list[Path], run: Path) -> CachedPhotos:
    """The usable lesions of `paths`, each cropped to a square around it.

    Decoded once and kept in the run folder, like the photos (`dataset.cached`): the cache holds
    every path asked for (an unusable cut-out as an empty mask), so a cache made from other
    cut-outs (another split, another folder) is seen and made again.
    """
    cache = run / cache_name("cutouts", PATCH_SIZE)
    names = [str(p) for p in paths]
    stored = read_cache(cache) if cache.is_file() else None
    if stored is None or stored.paths != names:
        empty = (np.zeros((PATCH_SIZE, PATCH_SIZE, 3), np.uint8), np.zeros((PATCH_SIZE,) * 2, bool))
        with ThreadPoolExecutor(max_workers=2) as pool:
            decoded = [d or empty for d in pool.map(decode_lesion, paths)]
        pixels = np.stack([d[0] for d in decoded]) if decoded else np.stack([empty[0]])[:0]
        masks = np.stack([d[1] for d in decoded]) if decoded else np.stack([empty[1]])[:0]
        write_cache(cache, names, pixels, masks)
        stored = CachedPhotos(names, pixels, masks)
    usable = stored.masks.reshape(len(stored.paths), -1).any(axis=1)
    return CachedPhotos(
        [p for p, keep in zip(stored.paths, usable, strict=True) if keep],
        stored.pixels[usable],
        stored.masks[usable],
    )


def skin_gain(
    window: np.ndarray, window_mask: np.ndarray, patch: np.ndarray, pasted_mask: np.ndarray
) -> np.ndarray:
    """Per-channel gain taking the pasted lesion's rim to the colour of the skin just outside it."""
    width = max(1, pasted_mask.shape[0] // 12)
    rim = pasted_mask & ~ndimage.binary_erosion(pasted_mask, iterations=width)
    skin = ndimage.binary_dilation(pasted_mask, iterations=width) & ~pasted_mask & ~window_mask
    if not rim.any() or not skin.any():
        return np.ones(3, np.float32)
    gain = window[skin].mean(axis=0) / np.maximum(patch[rim].mean(axis=0), 1.0)
    return np.clip(gain, *GAIN_LIMITS).astype(np.float32)


def paste_lesion(
    pixels: np.ndarray,
    mask: np.ndarray,
    lesion_pixels: np.ndarray,
    lesion_mask: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """`pixels` (S, S, 3) with the lesion pasted over its own lesion, and the new mask."""
    side = pixels.shape[0]
    ys, xs = np.nonzero(mask)
    if len(ys):
        centre = np.array([(ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2])
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    else:
        centre, extent = rng.uniform(0.3, 0.7, size=2) * side, 0.2 * side
    size = int(np.clip(extent * rng.uniform(*SCALE), *(np.array(SIDE_LIMITS) * side)))
    centre = centre + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, size=2) * size
    top, left = np.clip(np.round(centre - size / 2).astype(int), 0, side - size)

    turns = int(rng.integers(0, 4))
    patch = np.rot90(lesion_pixels, turns)
    alpha = np.rot90(lesion_mask, turns).astype(np.float32)
    if rng.random() < 0.5:
        patch, alpha = patch[:, ::-1], alpha[:, ::-1]
    patch = np.asarray(Image.fromarray(np.ascontiguousarray(patch)).resize((size, size)))
    alpha = np.asarray(
        Image.fromarray(np.ascontiguousarray(alpha)).resize((size, size), Image.BILINEAR)
    )
    pasted_mask = alpha >= 0.5
    alpha = ndimage.gaussian_filter(alpha, sigma=0.5 + size / 100)[..., None]

    out = pixels.astype(np.float32)
    window = out[top : top + size, left : left + size]
    patch = patch * skin_gain(
        window, mask[top : top + size, left : left + size], patch, pasted_mask
    )
    out[top : top + size, left : left + size] = window * (1 - alpha) + patch * alpha
    new_mask = mask.copy()
    new_mask[top : top + size, left : left + size] |= pasted_mask
    return np.clip(np.round(out), 0, 255).astype(np.uint8), new_mask
