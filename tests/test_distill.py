"""Knowledge distillation (`python -m train --distill-from RUN`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contract.card import InputContract, ModelCard, read_model_card, write_model_card
from contract.records import Record
from contract.run_folder import SPLIT_CSV, write_split
from contract.taxonomy import LABELS
from train.model.distill import (
    TEACHER_TARGETS,
    TeacherError,
    check_teacher,
    distillation_targets,
    teacher_train_probs,
)

REPO = Path(__file__).resolve().parents[1]


def _probs(rows: int, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(rows, len(LABELS))) * 3
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(p)).sum(axis=1)


def test_targets_mix_label_and_teacher_in_the_given_share():
    labels, teacher = np.array([0, 5, 3]), _probs(3)
    np.testing.assert_allclose(distillation_targets(labels, teacher, 0.0, 2.0), np.eye(7)[labels])
    np.testing.assert_allclose(distillation_targets(labels, teacher, 1.0, 1.0), teacher, atol=1e-6)
    mixed = distillation_targets(labels, teacher, 0.3, 1.0)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mixed, 0.7 * np.eye(7)[labels] + 0.3 * teacher, atol=1e-6)


def test_a_higher_temperature_softens_but_keeps_the_teachers_ranking():
    teacher, labels = _probs(20, seed=1), np.zeros(20, int)
    soft = distillation_targets(labels, teacher, 1.0, 2.0)  # weight 1: the softened teacher alone
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    assert (_entropy(soft) > _entropy(teacher)).all()
    np.testing.assert_array_equal(soft.argsort(axis=1), teacher.argsort(axis=1))
    np.testing.assert_allclose(distillation_targets(labels, teacher, 1.0, 1.0), teacher, atol=1e-6)


def _record(name: str, label: str = "nv") -> Record:
    return Record(Path(f"/data/{name}.jpg"), label, name, "dermoscopic", "ham10000")


def _card(size: int) -> ModelCard:
    """The shipped card, for a network taking `size` px images."""
    return replace(read_model_card(REPO / "models"), input=InputContract(height=size, width=size))


def _run_folder(path: Path, val: list[str], size: int = 64) -> Path:
    path.mkdir(parents=True)
    splits = {"train": [_record("a"), _record("b")], "val": [_record(n) for n in val]}
    write_split(path / SPLIT_CSV, {**splits, "test": [_record("t")]})
    write_model_card(path, _card(size))
    (path / "model.keras").write_bytes(b"")
    return path


def test_a_teacher_must_share_the_students_split_and_image_size(tmp_path: Path):
    student = _run_folder(tmp_path / "student", val=["v"])
    check_teacher(_run_folder(tmp_path / "same", val=["v"]), student / SPLIT_CSV, 64)
    with pytest.raises(TeacherError, match="another split \\(val differs\\)"):
        check_teacher(_run_folder(tmp_path / "other", val=["w"]), student / SPLIT_CSV, 64)
    with pytest.raises(TeacherError, match="takes 64 px images; the student trains at 96 px"):
        check_teacher(tmp_path / "same", student / SPLIT_CSV, 96)
    (tmp_path / "same" / "model.keras").unlink()
    with pytest.raises(TeacherError, match="model.keras not found"):
        check_teacher(tmp_path / "same", student / SPLIT_CSV, 64)


def test_teacher_probabilities_are_computed_once_and_cached(tmp_path: Path):
    import keras

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    keras.Model(inputs, outputs).save(teacher / "model.keras")
    write_model_card(teacher, _card(8))
    pixels = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 3)).astype(np.uint8)
    run = tmp_path / "student"
    run.mkdir()
    first = teacher_train_probs(teacher, pixels, run)
    assert first.shape == (5, len(LABELS)) and (run / TEACHER_TARGETS).is_file()
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-5)
    (teacher / "model.keras").unlink()  # a second call must not need the teacher
    np.testing.assert_array_equal(teacher_train_probs(teacher, pixels, run), first)
