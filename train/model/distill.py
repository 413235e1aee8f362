"""Knowledge distillation: one network trained towards an ensemble's probabilities.

Why: an ensemble of four networks costs several times the size and time of one (the README's
"Speed and size" has the figures). A single network trained on the ensemble's soft predictions
as well as on the labels (Hinton et al., "Distilling the knowledge in a neural network", 2015)
may keep part of the ensemble's gain at a quarter of its size. The teacher's probabilities on
the un-augmented train images are computed once and cached in the run folder, so --resume
trains towards the same targets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.card import read_model_card
from contract.colour_constancy import apply, step_of
from contract.commands import CommandError
from contract.run_folder import MODEL_KERAS, SPLIT_CSV, RunFolderError, check_run_folder
from contract.screening import apply_temperature
from contract.taxonomy import LABELS
from train.data.pipeline import one_hot
from train.data.split import differing_split

TEACHER_TARGETS = "teacher_train_probs.npy"


class TeacherError(CommandError, ValueError):
    """The teacher cannot teach this run; the message says why."""


def check_teacher(teacher: Path, student_split_csv: Path, image_size: int) -> None:
    """A teacher is a finished run folder; one that saw the student's val or test images would
    leak them into training."""
    try:
        check_run_folder(teacher)
    except RunFolderError as error:
        raise TeacherError(str(error)) from None
    card = read_model_card(teacher)
    differing = differing_split(student_split_csv, teacher / SPLIT_CSV)
    if differing is not None:
        raise TeacherError(
            f"{teacher} was trained on another split ({differing} differs); a teacher must share "
            "the student's split.csv, or it would pass on what it learnt from the student's "
            "val and test images"
        )
    teacher_size = card.input.height
    if teacher_size != image_size:
        raise TeacherError(
            f"{teacher} takes {teacher_size} px images; the student trains at "
            f"{image_size} px (give --image-size {teacher_size})"
        )


def distillation_targets(
    labels: np.ndarray, teacher_probs: np.ndarray, weight: float, temperature: float
) -> np.ndarray:
    """(1 - weight) * one-hot label + weight * teacher ** (1 / T) renormalised: cross-entropy
    against this is the labels' cross-entropy plus the teacher's, mixed; T > 1 shows the
    student the teacher's runner-up classes."""
    softened = apply_temperature(teacher_probs, temperature, floor=1e-7)
    return ((1.0 - weight) * one_hot(labels) + weight * softened).astype(np.float32)


def teacher_train_probs(teacher: Path, pixels: np.ndarray, run_dir: Path) -> np.ndarray:
    """The teacher run's (uncalibrated) probabilities on the train images, cached in the run;
    after the teacher's own colour-constancy step, on a copy (the student's pixels are left as
    decoded)."""
    cache = run_dir / TEACHER_TARGETS
    if cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(pixels), len(LABELS)):
            return probs
    step = step_of(read_model_card(teacher))
    pixels = apply(pixels.copy(), step) if step else pixels
    import keras

    from train.model.predict import predict_keras

    probs = predict_keras(keras.models.load_model(teacher / MODEL_KERAS), pixels)
    np.save(cache, probs)
    return probs
