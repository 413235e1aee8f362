"""The tiny model files committed in tests/fixtures/ are what make_demo_models.py makes today.

Without TensorFlow: each file carries the current card of demo_cards.py, its labels and the input
and output type its name says, and stays small. With TensorFlow (slow): the files are made again
through the export stage's conversion and metadata writer, and must give the same outputs (within
one quantization step) and pack the same files as the committed ones; when they do not, run
`python tests/fixtures/make_demo_models.py` and commit the result.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from demo_cards import (
    CARDS,
    DEMO_DISPLAY_NAMES,
    DEMO_LABELS,
    DEMO_SIZE,
    FILES,
    FIXTURES,
    fixture_path,
)

from contract.model_file import read_associated_files

MAX_FILE_BYTES = 64_000  # each; all four together are about 35 KB


def raw_outputs(model: bytes, images: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """The output tensor for each image fed as the input tensor wants it, and both tensors'
    details; no project code in between, so a fault there cannot hide a change here."""
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for image in images:
        pixels = image[None].astype(np.int16) - (128 if inp["dtype"] == np.int8 else 0)
        interpreter.set_tensor(inp["index"], pixels.astype(inp["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(outputs), inp, out


def images(count: int = 8) -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.integers(0, 256, (count, DEMO_SIZE, DEMO_SIZE, 3), dtype=np.uint8)


def test_the_fixture_folder_holds_exactly_the_listed_files():
    assert sorted(p.name for p in FIXTURES.glob("*.tflite")) == sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_file_has_the_current_card_labels_and_io_type(name):
    io_type, card = FILES[name]
    data = fixture_path(name).read_bytes()
    assert len(data) <= MAX_FILE_BYTES
    files = read_associated_files(data)
    assert set(files) == {"labels.txt", "labels_en.txt", "model_card.json"}
    assert json.loads(files["model_card.json"]) == CARDS[card](), (
        f"{name} packs an old card: run python tests/fixtures/make_demo_models.py"
    )
    assert files["labels.txt"].decode().splitlines() == list(DEMO_LABELS)
    assert files["labels_en.txt"].decode().splitlines() == list(DEMO_DISPLAY_NAMES)
    outputs, inp, out = raw_outputs(data, images(2))
    assert inp["dtype"] == np.dtype(io_type) and out["dtype"] == np.dtype(io_type)
    assert tuple(inp["shape"]) == (1, DEMO_SIZE, DEMO_SIZE, 3)
    assert tuple(out["shape"]) == (1, len(DEMO_LABELS))


def test_every_file_holds_the_same_network():
    """The answers file is the uint8 network to the bit; the others agree within quantization."""
    reference = {}
    for name in FILES:
        outputs, _, out = raw_outputs(fixture_path(name).read_bytes(), images())
        scale, zero_point = out["quantization"]
        probabilities = (outputs.astype(np.float64) - zero_point) * scale if scale else outputs
        reference[name] = outputs, probabilities
    assert np.array_equal(
        reference["tiny_uint8.tflite"][0], reference["tiny_uint8_answers.tflite"][0]
    )
    float32 = reference["tiny_float32.tflite"][1]
    assert np.abs(float32.sum(axis=1) - 1).max() < 1e-5
    for name in ("tiny_uint8.tflite", "tiny_int8.tflite"):
        assert np.abs(reference[name][1] - float32).max() < 0.03, name


@pytest.mark.slow  # converts four models with TensorFlow
def test_committed_files_match_what_the_script_makes_today(tmp_path):
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the [train] extra)")
    pytest.importorskip("mediapipe", reason="mediapipe is not installed (the [train] extra)")
    from make_demo_models import make_all

    made = make_all(tmp_path)
    assert sorted(made) == sorted(FILES)
    batch = images()
    for name, path in made.items():
        fresh, committed = path.read_bytes(), fixture_path(name).read_bytes()
        assert read_associated_files(fresh) == read_associated_files(committed), name
        new, new_in, new_out = raw_outputs(fresh, batch)
        old, old_in, old_out = raw_outputs(committed, batch)
        for a, b in ((new_in, old_in), (new_out, old_out)):
            assert a["dtype"] == b["dtype"] and list(a["shape"]) == list(b["shape"]), name
            assert a["quantization"] == pytest.approx(b["quantization"], rel=1e-6), name
        if new.dtype.kind == "f":
            assert np.abs(new - old).max() <= 1e-5, name
        else:  # at most one quantization step apart
            assert np.abs(new.astype(np.int32) - old.astype(np.int32)).max() <= 1, name
