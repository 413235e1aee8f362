"""Reading what a .tflite says about itself: the files packed after its flatbuffer.

The export stage appends an uncompressed zip (MediaPipe's layout for associated files) to every
model it writes: `labels.txt` and `labels_en.txt` for a classifier, `model_card.json` with the
input contract, calibration, triage threshold, answers and metrics, and `lesion_gate.json` for the
gate. Every reader (the demo server, evaluation, export verification, tests) goes through here.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.answers import AnswerSpec, answer_spec
from contract.card import MODEL_CARD_JSON, CardError, ModelCard
from contract.colour_constancy import step_of
from contract.commands import CommandError
from contract.taxonomy import LABELS, MALIGNANT
from contract.tensors import TensorSpec
from contract.triage import DEFAULT_THRESHOLD, TriageThresholds

LABELS_FILE = "labels.txt"
DISPLAY_NAMES_FILE = "labels_en.txt"
MODEL_CARD_FILE = MODEL_CARD_JSON
GATE_FILE = "lesion_gate.json"

_TFLITE_IDENTIFIER = b"TFL3"
DEFAULT_MALIGNANT = tuple(code for code in LABELS if code in MALIGNANT)


class ModelFileError(CommandError, ValueError):
    """The bytes are not a usable model file; the message says why."""


def check_tflite(model: bytes) -> None:
    """ModelFileError unless the bytes start like a TFLite flatbuffer ('TFL3' identifier)."""
    if len(model) < 8 or model[4:8] != _TFLITE_IDENTIFIER:
        raise ModelFileError("not a TFLite model: the flatbuffer file identifier is not 'TFL3'")


def read_associated_files(model: bytes) -> dict[str, bytes]:
    """The files packed after the flatbuffer (name -> content); {} for a model without any."""
    check_tflite(model)
    buffer = io.BytesIO(model)
    if not zipfile.is_zipfile(buffer):
        return {}
    try:
        with zipfile.ZipFile(buffer) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"the packed files cannot be read: {error}") from None


def read_model_file(path: str | Path, what: str = "model") -> bytes:
    """The bytes of a model file, or ModelFileError saying why it could not be read."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ModelFileError(f"cannot read {what} file {path}: {error.strerror}") from None


def _json_file(files: dict[str, bytes], name: str) -> dict[str, Any]:
    if name not in files:
        raise ModelFileError(f"the model's packed files lack {name}")
    try:
        value = json.loads(files[name])
    except ValueError as error:
        raise ModelFileError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{name} is not a JSON object")
    return value


def model_card(model: bytes) -> ModelCard:
    """The model card packed in a classifier file; ModelFileError if it lacks one."""
    return _packed_card(read_associated_files(model))


def _packed_card(files: dict[str, bytes]) -> ModelCard:
    try:
        return ModelCard.from_json(_json_file(files, MODEL_CARD_FILE))
    except CardError as error:
        raise ModelFileError(f"{MODEL_CARD_FILE}: {error}") from None


def _lines(data: bytes) -> tuple[str, ...]:
    return tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())


@dataclass(frozen=True)
class ModelMetadata:
    """What a classifier file says about itself (packed files + its tensors' details)."""

    name: str
    version: str
    labels: tuple[str, ...]
    display_names: tuple[str, ...]
    malignant_labels: tuple[str, ...]
    temperature: float
    triage: TriageThresholds
    input: TensorSpec
    output: TensorSpec
    card: ModelCard | None = None  # None: a file without one (labels only)
    answers: AnswerSpec | None = None  # the card's optional questions about person and spot
    file_name: str = ""
    file_sha256: str = ""
    file_size: int = 0
    # the card's input.colour_constancy: a step on the input pixels (contract.colour_constancy)
    colour_constancy: str | None = None

    @property
    def input_height(self) -> int:
        return self.input.shape[1]

    @property
    def input_width(self) -> int:
        return self.input.shape[2]


def read_metadata(
    model: bytes, input_spec: TensorSpec, output_spec: TensorSpec, file_name: str
) -> ModelMetadata:
    """The packed files combined with the runtime's tensor details, checked to agree."""
    files = read_associated_files(model)
    if not files:
        raise ModelFileError("the model has no associated files (labels.txt is missing)")
    if LABELS_FILE not in files:
        raise ModelFileError("the model's associated files lack labels.txt")
    labels = _lines(files[LABELS_FILE])
    card = _packed_card(files) if MODEL_CARD_FILE in files else None
    if DISPLAY_NAMES_FILE in files:
        display_names = _lines(files[DISPLAY_NAMES_FILE])
    else:
        display_names = card.display_names if card else labels
    if len(input_spec.shape) != 4 or input_spec.shape[3] != 3:
        raise ModelFileError(f"expected an input of shape 1xHxWx3, got {list(input_spec.shape)}")
    if output_spec.shape[-1] != len(labels) or len(display_names) != len(labels):
        raise ModelFileError(
            f"{len(labels)} labels and {len(display_names)} display names "
            f"for {output_spec.shape[-1]} model outputs"
        )
    try:
        answers = answer_spec(card.answers, labels) if card else None
        colour_constancy = step_of(card) if card else None
    except ValueError as error:
        raise ModelFileError(f"{MODEL_CARD_FILE}: {error}") from None
    return ModelMetadata(  # a file without a card: its labels, at the defaults
        name=card.name if card else Path(file_name).stem,
        version=card.version if card else "unknown",
        labels=labels,
        display_names=display_names,
        malignant_labels=card.malignant_labels if card else DEFAULT_MALIGNANT,
        temperature=card.calibration.temperature if card else 1.0,
        triage=card.triage.thresholds if card else TriageThresholds(DEFAULT_THRESHOLD),
        input=input_spec,
        output=output_spec,
        card=card,
        answers=answers,
        file_name=file_name,
        file_sha256=hashlib.sha256(model).hexdigest(),
        file_size=len(model),
        colour_constancy=colour_constancy,
    )


@dataclass(frozen=True)
class GateInfo:
    """What the lesion gate file says: its outlier-score threshold and square input size."""

    threshold: float
    image_size: int


def gate_json(model: bytes) -> dict[str, Any]:
    """The whole `lesion_gate.json` packed in a gate file (threshold, rule, what was measured)."""
    return _json_file(read_associated_files(model), GATE_FILE)


def read_gate_info(model: bytes) -> GateInfo:
    """The gate's `lesion_gate.json`; ModelFileError if it is missing or malformed."""
    try:
        info = gate_json(model)
        return GateInfo(float(info["threshold"]), int(info["image_size"]))
    except (KeyError, ValueError, TypeError) as error:
        raise ModelFileError(f"the gate has no usable {GATE_FILE}: {error}") from None
