"""Each kind's threshold from out-of-fold predictions (cross-fitting), for the model that ships.

Each fold network (`train.data.folds`) predicts the images its own fold moved to test, which it
neither trained on nor was calibrated or chosen on, as the evaluation does (`record_predictions`:
the shared decoding, the card's colour step), calibrated by its own card's temperature. The
uncut photos of every fold are pooled per kind and each kind's threshold is fitted on them by
the rule every card uses (`contract.bootstrap.confident_threshold`, groups = lesions /
patients), then written as that kind's own threshold into the shipped model's card. A kind the
folds hold no photo of (folds dealt before 2026-12-07 dealt phone patients only) keeps its own.

That transfers a threshold on calibrated P(malignant) from single fold networks to another
model (the shipped ensemble): it assumes their calibrated scores mean the same, which holds
only as far as each model's temperature makes them so. The kept test checks it.

With answers the photo's referral stands (`Triage.photo_referral_stands`,
docs/answers.md): every photo this threshold refers is referred with answers too, so the
sensitivity with answers is at least photo only's and inherits its bound; the answers' own
thresholds are not refitted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from contract import metrics
from contract.card import DomainTriage, ModelCard
from contract.records import Record, label_indices
from contract.run_folder import SPLIT_CSV, read_split
from contract.screening import apply_temperature
from contract.taxonomy import DOMAINS
from train.data.folds import FoldError, moved_records
from train.evaluation.split_evaluation import card_of, record_predictions
from train.model.calibration import confident_domain

CHOSEN_ON = (
    "out-of-fold predictions over train+val: {folds} networks, each trained with one fold of "
    "the lesions / patients moved to test, each calibrated by its own temperature, on that "
    "fold's uncut {kind} photos (python -m train.crossfit); transferred to this model's "
    "calibrated P(malignant), assuming the two are alike"
)


@dataclass(frozen=True)
class OutOfFold:
    """The fold networks' calibrated predictions on their own folds' images, pooled."""

    records: list[Record]
    probs: np.ndarray  # each fold network's, calibrated by its own temperature
    cutouts: np.ndarray  # background-removed images, which fit no threshold
    fold: np.ndarray  # which fold (0 to K-1) predicted each image

    @property
    def photos(self) -> dict[str, np.ndarray]:
        """Each kind's uncut photos, the ones a person sends, for the kinds the folds hold any
        of (the reports' scopes, `contract.metrics.domain_scopes`)."""
        scopes = metrics.domain_scopes([r.domain for r in self.records], self.cutouts)
        return {kind: scopes[kind] for kind in DOMAINS if kind in scopes}


def fold_images(original: Path, fold_runs: Sequence[Path]) -> list[list[Record]]:
    """The images each fold run's split moved to test, checked against the shipped run's
    split.csv (`original`): each run's a fold of it (`moved_records`), no image in two folds."""
    splits = read_split(original)
    moved = [moved_records(splits, read_split(run / SPLIT_CSV), str(run)) for run in fold_runs]
    seen: dict[str, Path] = {}
    for run, records in zip(fold_runs, moved, strict=True):
        for group in sorted({r.group for r in records}):
            if group in seen:
                raise FoldError(f"{run} and {seen[group]} both move patient {group} to test")
            seen[group] = run
    return moved


def out_of_fold(
    fold_runs: Sequence[Path], images: Sequence[Sequence[Record]], model: Path | None = None
) -> OutOfFold:
    """Each fold run's model (its model.keras, or the file `model` inside the run) on its own
    fold's images, calibrated by the temperature of the card it carries."""
    records, probs, cutouts, fold = [], [], [], []
    for k, (run, own) in enumerate(zip(fold_runs, images, strict=True)):
        file = run / model if model is not None else None
        card = card_of(run, file)
        outputs = record_predictions(run, file, own, card)
        records += outputs.records
        probs.append(apply_temperature(outputs.raw, card.calibration.temperature))
        cutouts.append(outputs.cutouts)
        fold.append(np.full(len(outputs.records), k))
    return OutOfFold(records, np.concatenate(probs), np.concatenate(cutouts), np.concatenate(fold))


def kind_triage(oof: OutOfFold, kind: str, target: float) -> DomainTriage:
    """One kind's own threshold by the lower-bound rule on its pooled uncut photos (whole
    lesions / patients drawn), with what it keeps there and what it stands on."""
    mask = oof.photos.get(kind)
    if mask is None:
        raise FoldError(f"the folds hold no uncut {kind} photo to fit a threshold on")
    records = [r for r, m in zip(oof.records, mask, strict=True) if m]
    groups = np.array([r.group for r in records])
    figures = confident_domain(label_indices(records), oof.probs[mask], groups, target)
    folds = len(np.unique(oof.fold))
    return DomainTriage(
        **{**figures, "fitted_on": {**figures["fitted_on"], "folds": folds}},
        chosen_on=CHOSEN_ON.format(folds=folds, kind=kind),
    )


def with_kind_triage(card: ModelCard, fitted: dict[str, DomainTriage]) -> ModelCard:
    """The card with `fitted` as those kinds' own thresholds, the card's threshold the lowest of
    its kinds' again; the metrics, measured at the old thresholds (photo only, and with answers,
    where the photo's referral stands), are dropped until measured again."""
    by_domain = {**(card.triage.by_domain or {}), **fitted}
    from_val = [kind for kind in by_domain if kind not in fitted]
    out_of_fold = f"{', '.join(fitted)}: out-of-fold predictions (by_domain's chosen_on)"
    triage = replace(
        card.triage,
        malignant_threshold=min(f.own_threshold for f in by_domain.values()),
        chosen_on=f"val; {out_of_fold}" if from_val else out_of_fold,
        by_domain=by_domain,
    )
    answers = card.answers and replace(card.answers, metrics=None)
    return replace(card, triage=triage, metrics={}, answers=answers)
