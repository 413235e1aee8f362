"""Binary lesion masks for the PAD-UFES-20 phone photos, derived from the cut-outs.

`../shared/data/pad_ufes20_cutouts` holds phone photos with everything but the lesion blacked
out; where a cut-out has the same file stem as a photo in `pad_ufes20/`, it is that photo,
rescaled (photos are 300 px to 1024 px, cut-outs up to 512 px). The mask is the cut-out's
non-black pixels (any channel above `BLACK_LEVEL`), holes filled, specks removed, resized to
the photo (bilinear, then 0.5).

Before a mask is trusted, the pair is checked for alignment: the cut-out is resized to the
photo's size and its lesion pixels (the mask eroded by `EDGE_PX`, away from the JPEG-blurred
rim) are compared with the photo's, at the photo's own position and at every shift of up to
`MAX_SHIFT_PX` pixels. A pair is aligned when no shift fits better than none (by more than
`SHIFT_TOLERANCE` grey levels) and the mean absolute difference is at most `MAX_MEAN_DIFF`
grey levels; every other pair is left out and listed.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from contract.images import open_upright_rgb
from train.data.datasets import IMAGE_SUFFIXES

MASKS_CSV = "masks.csv"
BLACK_LEVEL = 24  # JPEG noise in the blacked-out background stays below this in every channel
MIN_SPECK_FRACTION = 2e-4  # components smaller than this share of the image are JPEG specks
EDGE_PX = 3
MAX_SHIFT_PX = 4
SHIFT_TOLERANCE = 1.0
MAX_MEAN_DIFF = 20.0


@dataclass(frozen=True)
class MaskRow:
    """One photo with a cut-out: the alignment found and the mask's summary."""

    stem: str
    photo: str
    cutout: str
    photo_size: str  # WxH
    cutout_size: str
    mean_diff: float  # mean |photo - cut-out| over the lesion, grey levels (0-255)
    best_shift: str  # dx,dy with the lowest difference
    best_shift_diff: float
    mean_diff_shifted_8px: float  # the same with the cut-out moved by 8 px: what misfit looks like
    area_fraction: float
    components: int
    aligned: bool
    reason: str  # why not aligned; "" when aligned


def index_images(folder: Path) -> dict[str, Path]:
    """Image files below `folder` by file stem."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def cutout_mask(cutout: np.ndarray) -> np.ndarray:
    """The lesion of a cut-out (H, W, 3 uint8) as a boolean mask of the same size."""
    mask = cutout.max(axis=2) > BLACK_LEVEL
    mask = ndimage.binary_opening(mask, iterations=1)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        keep = np.flatnonzero(sizes >= MIN_SPECK_FRACTION * mask.size) + 1
        mask = np.isin(labels, keep)
    return mask


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A boolean mask resized to width x height (bilinear on 0/255, then half-way)."""
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.BILINEAR)
    return np.asarray(image) >= 128


def count_components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask)[1])


def _mean_diff(photo: np.ndarray, cut: np.ndarray, region: np.ndarray, dx: int, dy: int) -> float:
    """Mean |photo - cut-out moved by (dx, dy)| over `region` (moved with it)."""
    shifted_cut = np.roll(cut, (dy, dx), axis=(0, 1))
    shifted_region = np.roll(region, (dy, dx), axis=(0, 1))
    if not shifted_region.any():
        return float("inf")
    diff = np.abs(photo.astype(np.int16) - shifted_cut.astype(np.int16))
    return float(diff[shifted_region].mean())


def check_pair(stem: str, photo_path: Path, cutout_path: Path) -> tuple[MaskRow, np.ndarray]:
    """Alignment of one photo and its cut-out, and the mask at the photo's size."""
    photo_image, _, _ = open_upright_rgb(photo_path)
    cutout_image, _, _ = open_upright_rgb(cutout_path)
    width, height = photo_image.size
    photo = np.asarray(photo_image)
    cut = np.asarray(cutout_image.resize((width, height), Image.BILINEAR))
    mask = resize_mask(cutout_mask(np.asarray(cutout_image)), width, height)
    region = ndimage.binary_erosion(mask, iterations=EDGE_PX)
    if not region.any():
        region = mask
    row = dict(
        stem=stem,
        photo=str(photo_path),
        cutout=str(cutout_path),
        photo_size=f"{width}x{height}",
        cutout_size="{}x{}".format(*cutout_image.size),
        area_fraction=float(mask.mean()),
        components=count_components(mask),
    )
    if not mask.any():
        nan = float("nan")
        return MaskRow(
            **row,
            mean_diff=nan,
            best_shift="",
            best_shift_diff=nan,
            mean_diff_shifted_8px=nan,
            aligned=False,
            reason="empty cut-out",
        ), mask
    here = _mean_diff(photo, cut, region, 0, 0)
    shifts = [
        (dx, dy)
        for dx in range(-MAX_SHIFT_PX, MAX_SHIFT_PX + 1)
        for dy in range(-MAX_SHIFT_PX, MAX_SHIFT_PX + 1)
    ]
    diffs = {s: _mean_diff(photo, cut, region, *s) for s in shifts}
    best = min(diffs, key=diffs.get)
    reason = ""
    if diffs[best] < here - SHIFT_TOLERANCE:
        reason = f"fits better moved by {best[0]},{best[1]} px"
    elif here > MAX_MEAN_DIFF:
        reason = f"mean difference {here:.1f} > {MAX_MEAN_DIFF}"
    return MaskRow(
        **row,
        mean_diff=here,
        best_shift=f"{best[0]},{best[1]}",
        best_shift_diff=diffs[best],
        mean_diff_shifted_8px=_mean_diff(photo, cut, region, 8, 8),
        aligned=not reason,
        reason=reason,
    ), mask


def build_masks(photos: Path, cutouts: Path, out: Path) -> list[MaskRow]:
    """Check every photo / cut-out pair, write aligned masks as `out/<stem>.png` (0/255, the
    photo's size) and every pair's row to `out/masks.csv`."""
    out.mkdir(parents=True, exist_ok=True)
    photo_index, cutout_index = index_images(photos), index_images(cutouts)
    rows = []
    for stem in sorted(set(photo_index) & set(cutout_index)):
        row, mask = check_pair(stem, photo_index[stem], cutout_index[stem])
        if row.aligned:
            Image.fromarray(mask.astype(np.uint8) * 255).save(out / f"{stem}.png")
        rows.append(row)
    write_rows(out / MASKS_CSV, rows)
    return rows


def write_rows(path: Path, rows: list[MaskRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(MaskRow.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_mask(folder: Path, stem: str) -> np.ndarray | None:
    """A mask written by `build_masks` (boolean, the photo's size), or None if it has none."""
    path = folder / f"{stem}.png"
    if not path.is_file():
        return None
    return np.asarray(Image.open(path).convert("L")) >= 128


def summary(rows: list[MaskRow]) -> dict:
    """Counts and the difference statistics the docs quote."""
    aligned = [r for r in rows if r.aligned]
    diffs = np.array([r.mean_diff for r in aligned]) if aligned else np.zeros(1)
    shifted = np.array([r.mean_diff_shifted_8px for r in aligned]) if aligned else np.zeros(1)
    return {
        "pairs": len(rows),
        "aligned": len(aligned),
        "failed": [{"stem": r.stem, "reason": r.reason} for r in rows if not r.aligned],
        "mean_diff_grey_levels": {
            "min": float(diffs.min()),
            "median": float(np.median(diffs)),
            "p95": float(np.percentile(diffs, 95)),
            "max": float(diffs.max()),
        },
        "mean_diff_moved_8px_median": float(np.median(shifted)),
        "several_components": sum(r.components > 1 for r in aligned),
        "area_fraction": {
            "min": float(min(r.area_fraction for r in aligned)) if aligned else 0.0,
            "median": float(np.median([r.area_fraction for r in aligned])) if aligned else 0.0,
            "max": float(max(r.area_fraction for r in aligned)) if aligned else 0.0,
        },
    }
