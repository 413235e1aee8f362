"""Cross-fitting folds: the lesions / patients of train and val dealt into K folds, each fold's
images moved to test in a split of its own.

A threshold fitted on val alone stands on few malignant lesions: the shipped val has 45 malignant
phone patients (0.05 ** (1/45) = 0.936 at best, so the rule cannot bound 0.95) and 152 malignant
dermoscopic lesions, whose draw alone moves the test's dermoscopic specificity over 0.42-0.59
(docs/judging.md). The shipped network saw every train image, so its scores there are no
evidence. A network trained on a fold's split never saw that fold's lesions and patients: its
predictions on them are out of fold, and pooled over the folds they stand on every train+val
lesion and photo patient (`train.evaluation.crossfit`).

Dealt: every dermoscopic lesion of train and val, and every patient with an uncut phone photo
there. A patient known only by cut-outs (372 of the 746 in the shipped split, whose photos are
not in the data) is not: it would leave its fold's network fewer training images and add no
photo to fit on. A lesion or patient is dealt whole (a photo and its cut-out share the patient,
`Record.group`), and each kind's malignant and other groups are dealt apart, so every fold gets
a like share of each. Only these groups' images move; the original test stays test.
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

FITTED_SPLITS = ("train", "val")  # the splits whose lesions / patients are dealt into folds
MOVED_TO = "test"
CUTOUT_CHECK_SIZE = 128  # px: where `is_cutout`'s bound was measured


class FoldError(CommandError, ValueError):
    """Folds that cannot be dealt, or a fold's split that is not one of this split's folds."""


def fold_groups(splits: dict[str, list[Record]]) -> dict[str, tuple[str, bool]]:
    """Each lesion / patient to deal, with its kind of photo and whether one of its images there
    is malignant: every train and val dermoscopic lesion, and every train and val patient with
    an uncut phone photo (told by its pixels, `contract.lesion_gate.is_cutout`)."""
    fitted = [r for s in FITTED_SPLITS for r in splits[s]]
    _, photos = lesion_photos([r for r in fitted if r.domain == PHONE], CUTOUT_CHECK_SIZE)
    dealt = [r for r in fitted if r.domain != PHONE] + photos
    malignant = metrics.is_malignant(label_indices(dealt)) if dealt else np.zeros(0, bool)
    groups: dict[str, tuple[str, bool]] = {}
    for record, bad in zip(dealt, malignant, strict=True):
        kind, was = groups.get(record.group, (record.domain, False))
        groups[record.group] = (kind, was or bool(bad))
    return groups


def deal_folds(groups: dict[str, tuple[str, bool]], k: int, seed: int = 0) -> list[list[str]]:
    """The lesions / patients of each of `k` folds (`groups`: each one's kind of photo and
    whether it is malignant): each kind's malignant and other groups shuffled by `seed` apart and
    dealt round-robin in turn, so each fold's share of each differs by one at most."""
    if k < 2:
        raise FoldError(f"cross-fitting needs at least 2 folds, not {k}")
    if k > len(groups):
        raise FoldError(f"{k} folds for {len(groups)} train+val lesions / patients")
    rng = np.random.default_rng(seed)
    order = []
    for stratum in sorted(set(groups.values()), key=lambda s: (s[0], not s[1])):
        members = sorted(g for g, s in groups.items() if s == stratum)
        order += [members[i] for i in rng.permutation(len(members))]
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
