"""Averaging several networks trained on the same split into one model, calibrated on val.

Members must share split.csv and input size, so the ensemble's val and test are theirs. The
averaged model is calibrated on val like a single run (`train.model.calibration`) and
written as a run folder (model.keras, model_card.json, split.csv) that `train.evaluate` and
`python -m export` take unchanged; the .tflite is one file with every member inside.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from contract.card import ModelCard, read_model_card, write_model_card
from contract.colour_constancy import apply, step_of
from contract.commands import CommandError
from contract.records import Skipped
from contract.run_folder import MODEL_KERAS, SPLIT_CSV, RunFolderError, check_run_folder, read_split
from train.data.split import differing_split
from train.model.card import build_model_card


class EnsembleError(CommandError):
    """The runs cannot be averaged (unfinished, another split, other input sizes)."""


def check_members(runs: Sequence[Path]) -> None:
    """EnsembleError unless the runs are two or more finished runs of one split and size."""
    if len(runs) < 2:
        raise EnsembleError("give at least two run folders")
    for run in runs:
        try:
            check_run_folder(run)
        except RunFolderError as error:
            raise EnsembleError(str(error)) from None
    for run in runs[1:]:
        if differing_split(runs[0] / SPLIT_CSV, run / SPLIT_CSV) is not None:
            raise EnsembleError(
                f"{run} was trained on another split than {runs[0]}; train it with "
                f"--split-from {runs[0] / SPLIT_CSV}"
            )
    sizes = {read_model_card(run).input.height for run in runs}
    if len(sizes) > 1:
        raise EnsembleError(f"the runs take different input sizes ({sorted(sizes)})")
    steps = {str(step_of(read_model_card(run))) for run in runs}
    if len(steps) > 1:
        raise EnsembleError(f"the runs expect different colour constancy ({sorted(steps)})")


def build_ensemble(members: list, image_size: int):
    """One Keras model: the same pixels into every member, their probabilities averaged."""
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    outputs = [
        keras.Model(member.input, member.output, name=f"member{i}")(inputs)
        for i, member in enumerate(members)
    ]
    averaged = keras.layers.Average(name="probability")(outputs)
    return keras.Model(inputs, averaged, name=f"skin_lesion_ensemble_of_{len(members)}")


def members_normalisation(cards: list[ModelCard]) -> str:
    """What the members do to the pixels (each inside itself; the ensemble adds nothing)."""
    steps = {str(c.preprocessing).removeprefix("inside the model: ").split(";")[0] for c in cards}
    return " and ".join(sorted(steps))


def ensemble_runs(runs: Sequence[Path], out: Path) -> ModelCard:
    """Write the averaged model of `runs` as the run folder `out`; returns its model card."""
    check_members(runs)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from contract import metrics
    from contract.lesion_gate import is_cutout
    from contract.records import decode_records
    from train.model.calibration import calibrate_on_val
    from train.model.predict import predict_keras

    cards = [read_model_card(run) for run in runs]
    size = cards[0].input.height
    model = build_ensemble([keras.models.load_model(run / MODEL_KERAS) for run in runs], size)
    skipped = Skipped()
    x_val, val_records = decode_records(read_split(runs[0] / SPLIT_CSV)["val"], size, skipped)
    skipped.warn()
    target = cards[0].triage.target_sensitivity
    cutouts = is_cutout(x_val)
    step = step_of(cards[0])
    raw_val = predict_keras(model, apply(x_val, step))
    calibration = calibrate_on_val(val_records, raw_val, target, cutouts=cutouts)

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_KERAS)
    shutil.copyfile(runs[0] / SPLIT_CSV, out / SPLIT_CSV)
    backbones = sorted({str(card.backbone) for card in cards})
    card = build_model_card(
        backbone=f"{'+'.join(backbones)}-ensemble-of-{len(cards)}",
        image_size=size,
        normalisation=members_normalisation(cards),
        hparams={
            "members": [
                {"run": run.name, **c.hparams} for run, c in zip(runs, cards, strict=True)
            ]
        },
        counts=cards[0].counts,
        skipped=len(skipped.items),
        temperature=calibration.temperature,
        triage=calibration.triage(target),
        val_metrics=calibration.report,
        training={
            "members": [c.training for c in cards],
            "train_seconds": round(sum(c.training["train_seconds"] for c in cards), 1),
        },
        colour_constancy=step,
    )
    write_model_card(out, card)
    for domain, report in calibration.report.items():
        print(f"val {domain}: {metrics.summary_line(report)}")
    return card
