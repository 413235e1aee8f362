"""Cross-fitting folds: the phone patients of train and val dealt into K folds, each fold's
images moved to test in a split of its own.

A threshold fitted on val's phone photos alone cannot reach the lower-bound rule (the shipped
val has 45 malignant phone patients: 0.05 ** (1/45) = 0.936 at best), and the shipped network
saw every train photo, so its scores there are no evidence. A network trained on a fold's split
never saw that fold's patients: its predictions on them are out of fold, and pooled over the
folds they stand on every train+val phone patient (`train.evaluation.crossfit`).

Only the patients with an uncut phone photo in train or val are dealt: the threshold is fitted on
such photos, and a patient known only by cut-outs (372 of the 746 in the shipped split, whose
photos are not in the data) would leave its fold's network fewer training images and add no
out-of-fold photo. A patient is dealt whole (a photo and its cut-out share the patient,
`Record.group`), and the patients with a malignant photo are dealt apart from the others, so each
fold gets a similar share of them. Only these patients' images move; the original test stays test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contract import metrics
from contract.commands import CommandError
from contract.lesion_gate import lesion_photos
from contract.records import Record, label_indices
from contract.run_folder import SPLITS
from contract.taxonomy import PHONE

FITTED_SPLITS = ("train", "val")  # the splits whose phone patients are dealt into folds
MOVED_TO = "test"
CUTOUT_CHECK_SIZE = 128  # px: where `is_cutout`'s bound was measured


class FoldError(CommandError, ValueError):
    """Folds that cannot be dealt, or a fold's split that is not one of this split's folds."""


def photo_patients(splits: dict[str, list[Record]]) -> dict[str, bool]:
    """Each patient with an uncut phone photo in train or val (told by its pixels,
    `contract.lesion_gate.is_cutout`), and whether one of those photos is malignant."""
    records = [r for s in FITTED_SPLITS for r in splits[s] if r.domain == PHONE]
    _, photos = lesion_photos(records, CUTOUT_CHECK_SIZE)
    malignant = metrics.is_malignant(label_indices(photos)) if photos else np.zeros(0, bool)
    patients: dict[str, bool] = {}
    for record, bad in zip(photos, malignant, strict=True):
        patients[record.group] = patients.get(record.group, False) or bool(bad)
    return patients


def deal_folds(patients: dict[str, bool], k: int, seed: int = 0) -> list[list[str]]:
    """The patients of each of `k` folds (`patients`: whether each has a malignant photo):
    malignant patients first, then the others, each set shuffled by `seed` and dealt
    round-robin, so fold sizes and malignant shares differ by one patient at most."""
    if k < 2:
        raise FoldError(f"cross-fitting needs at least 2 folds, not {k}")
    if k > len(patients):
        raise FoldError(f"{k} folds for {len(patients)} train+val phone patients with a photo")
    rng = np.random.default_rng(seed)
    order = []
    for malignant in (True, False):
        kind = sorted(p for p, bad in patients.items() if bad == malignant)
        order += [kind[i] for i in rng.permutation(len(kind))]
    return [sorted(order[i::k]) for i in range(k)]


def fold_split(splits: dict[str, list[Record]], patients: Sequence[str]) -> dict[str, list[Record]]:
    """The split with every train and val image of `patients` (photos and cut-outs) moved to
    test, after the original test images; everything else as it was."""
    moving = set(patients)
    kept = {s: [r for r in splits[s] if s == MOVED_TO or r.group not in moving] for s in SPLITS}
    moved = [r for s in FITTED_SPLITS for r in splits[s] if r.group in moving]
    return {**kept, MOVED_TO: kept[MOVED_TO] + moved}


def moved_records(
    original: dict[str, list[Record]], fold: dict[str, list[Record]], name: str
) -> list[Record]:
    """The images a fold's split moved from train or val to test; FoldError where it is not a
    fold of `original` (other images, another move, a patient moved in part) or moves nothing."""
    before = {r: s for s in SPLITS for r in original[s]}
    after = {r: s for s in SPLITS for r in fold[s]}
    if set(before) != set(after):
        raise FoldError(f"{name} holds other images than the split it should be a fold of")
    moved = [r for r, s in after.items() if s != before[r]]
    wrong = next((r for r in moved if before[r] not in FITTED_SPLITS or after[r] != MOVED_TO), None)
    if wrong is not None:
        raise FoldError(
            f"{name} moves {wrong.path} from {before[wrong]} to {after[wrong]}: not a fold of "
            "this split (a fold only moves train and val images to test)"
        )
    if not moved:
        raise FoldError(f"{name} moves no image to test: not a fold of this split")
    groups = {r.group for r in moved}
    left = next((r for r in after if r.group in groups and after[r] in FITTED_SPLITS), None)
    if left is not None:
        raise FoldError(
            f"{name} moves only part of patient {left.group}: {left.path} stays in {after[left]}"
        )
    return moved
