"""The card an exported classifier ships with, fitted on that file's own outputs.

Quantization moves a network's outputs a little, so the temperature and thresholds fitted on the
Keras model are not quite the file's. The build does what the shipped files had done by hand
(docs/pipeline.md): refit on val from the file (`train.calibrate`), put the cross-fitted
thresholds back (`train.crossfit thresholds`, which the refit replaced with val's), measure the
file on each metrics split (`train.evaluate --update-card`, photo only and with answers) and
pack the card into it (`export.card`). The card is kept in its own run folder (FILE_CARD: the
split and that card), so the run's card the export read stays as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from contract.card import read_model_card
from contract.run_folder import MODEL_CARD_JSON, SPLIT_CSV
from export.card import repack_with_card
from train.crossfit import fit_thresholds
from train.evaluation.recalibrate import recalibrate
from train.evaluation.split_evaluation import measure_in_card

FILE_CARD = "file_card"


def fit_card_on_file(
    run: Path,
    model: Path,
    folder: Path,
    crossfit_runs: Sequence[Path] = (),
    metrics_splits: Sequence[str] = (),
) -> None:
    """Refit `run`'s card on `model`'s outputs in `folder` and pack it into `model` in place;
    `crossfit_runs`: the fold networks whose thresholds the card keeps."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (SPLIT_CSV, MODEL_CARD_JSON):
        shutil.copyfile(run / name, folder / name)
    card = recalibrate(folder, model)
    if crossfit_runs:
        fit_thresholds(folder, crossfit_runs)
    repack_with_card(model, read_model_card(folder), model.parent)
    for split in metrics_splits:
        for with_answers in (False, True)[: 1 + (card.answers is not None)]:
            measure_in_card(folder, model, split, with_answers)  # at the thresholds packed
    if metrics_splits:
        repack_with_card(model, read_model_card(folder), model.parent)
