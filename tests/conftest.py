"""Shared pytest fixtures. Keep each helper's fixtures grouped under its own banner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.answers import RULE
from contract.questionnaire import BY_NAME, QUESTIONS, feature_names
from contract.taxonomy import DISPLAY_NAMES, LABELS

# --------------------------------------------------------------------------------------------
# demo_server fixtures: a tiny int8 model packed by export.metadata, the app and its client.
# TensorFlow is imported lazily inside the model builder: tests may use it, demo_server not.
# --------------------------------------------------------------------------------------------

DEMO_LABELS = LABELS
DEMO_DISPLAY_NAMES = tuple(DISPLAY_NAMES[code] for code in LABELS)
DEMO_SIZE = 64


def demo_model_card(size: int = DEMO_SIZE) -> dict:
    """A model card with every key the demo server reads."""
    return {
        "name": "tiny-test-model",
        "version": "0.0.1-test",
        "labels": list(DEMO_LABELS),
        "display_names": list(DEMO_DISPLAY_NAMES),
        "malignant_labels": ["akiec", "bcc", "mel"],
        "input": {"height": size, "width": size, "dtype": "uint8"},
        "calibration": {"temperature": 1.5},
        "triage": {"malignant_threshold": 0.3},
        "metrics": {
            "balanced_accuracy": 0.51,
            "per_class": {"mel": {"recall": 0.4}},
            "test": {
                "phone": {
                    "n": 40,
                    "balanced_accuracy": 0.625,
                    "malignant": {"sensitivity": 0.9, "specificity": 0.75},
                    "ci95": {"balanced_accuracy": [0.4375, 0.8125]},
                }
            },
        },
        "intended_use": "Testing the demo server only.",
        "limitations": ["Random weights.", "Knows nothing about skin."],
        "data_sources": [{"name": "Random noise", "citation": "none", "license": "CC0"}],
        "license": "Apache-2.0",
        "disclaimer": "Test disclaimer: not a diagnosis; see a dermatologist.",
    }


IO_TYPE_VARIANTS = {"float32": "float32", "uint8": "int8", "int8": "int8_io"}


def convert_for_io(model, io_type: str, size: int) -> bytes:
    """The export stage's own conversion, for a model whose input/output is `io_type`."""
    from export.convert import QuantizationConfig, convert

    images = np.random.default_rng(0).uniform(0, 255, (16, size, size, 3)).astype(np.uint8)
    variant = IO_TYPE_VARIANTS[io_type]
    return convert(model, QuantizationConfig(variant, images if variant != "float32" else None))


def build_demo_model(
    path: Path, io_type: str = "uint8", size: int = DEMO_SIZE, card: dict | None = None
) -> Path:
    """Tiny random Keras CNN -> TFLite (io_type uint8/int8: full-integer; float32: float).

    `card` replaces the packed model card (default `demo_model_card(size)`); the network is
    the same seeded one either way."""
    import keras

    from export.metadata import ModelInfo, write_metadata

    seeded = keras.initializers.GlorotUniform(seed=0)  # no global seeding: other tests share it
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=seeded),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(DEMO_LABELS), activation="softmax", kernel_initializer=seeded),
        ]
    )
    flatbuffer = convert_for_io(model, io_type, size)
    info = ModelInfo(
        name="tiny-test-model",
        version="0.0.1-test",
        description="A tiny random network for the demo server tests.",
        author="tests",
        license="Apache-2.0",
        labels=DEMO_LABELS,
        display_names=DEMO_DISPLAY_NAMES,
        input_height=size,
        input_width=size,
        model_card=card if card is not None else demo_model_card(size),
    )
    path.write_bytes(write_metadata(flatbuffer, info))
    return path


@pytest.fixture(scope="session")
def tiny_converter():
    """`convert_for_io` for test modules (no `from conftest import`)."""
    return convert_for_io


@pytest.fixture(scope="session")
def demo_model_builder():
    """`build_demo_model` for tests that need other variants (no `from conftest import`)."""
    return build_demo_model


@pytest.fixture(scope="session")
def demo_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny full-integer model (uint8 input and output) with metadata, on disk."""
    return build_demo_model(tmp_path_factory.mktemp("demo_model") / "tiny_int8.tflite")


@pytest.fixture(scope="session")
def demo_samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A samples folder with two small JPEGs, an attribution file and a file never served."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("samples")
    rng = np.random.default_rng(1)
    for name in ("mel_1.jpg", "nv_1.jpg"):
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name, quality=90)
    (folder / "ATTRIBUTION.md").write_text("# Credits\nRandom pixels, CC0.\n")
    (folder / "notes.txt").write_text("not an image; must not be served")
    return folder


def demo_app(model_path: Path, samples_dir: Path):
    """The demo server app over a tiny model, without the lesion gate."""
    from demo_server import create_app

    return create_app(
        {
            "TESTING": True,
            "MODEL_PATH": model_path,
            "SAMPLES_DIR": samples_dir,
            "INTERPRETERS": 2,
            "LESION_GATE_PATH": None,  # no gate: these tests must not depend on models/
        }
    )


@pytest.fixture()
def app(demo_model_path: Path, demo_samples_dir: Path):
    """The demo server app over the tiny model (Flask-tutorial style)."""
    return demo_app(demo_model_path, demo_samples_dir)


@pytest.fixture()
def client(app):
    return app.test_client()


# --------------------------------------------------------------------------------------------
# demo_server answers fixtures: the same tiny network, its card with an `answers` section
# (hand-made weights: a few answers push one class up, the rest are zero).
# --------------------------------------------------------------------------------------------

DEMO_QUESTIONS = [q.as_json() for q in QUESTIONS]


def demo_answer_features(questions: list[str]) -> list[str]:
    """Feature names as the training side writes them: one per choice (age: per bin)."""
    return feature_names(BY_NAME[name] for name in questions)


def _answer_model(
    questions: list[str], classes: list[str], bias: list[float], pushes: dict, strength: float
) -> dict:
    """One domain's regression: zero weights except `pushes` {(feature, class): weight}."""
    features = demo_answer_features(questions)
    weights = np.zeros((len(features), len(classes)))
    for (feature, code), weight in pushes.items():
        weights[features.index(feature), classes.index(code)] = weight
    return {
        "questions": questions,
        "features": features,
        "classes": classes,
        "weights": weights.tolist(),
        "bias": bias,
        "strength": strength,
    }


def demo_answers_card(size: int = DEMO_SIZE) -> dict:
    """`demo_model_card` plus an answers section with its own calibration and test metrics."""
    card = demo_model_card(size)
    card["metrics"]["test"]["overall"] = {"n": 60, "balanced_accuracy": 0.55}
    phone = _answer_model(
        [q["name"] for q in DEMO_QUESTIONS],
        ["akiec", "bcc", "bkl", "mel", "nv"],
        [-1.0, -0.5, -0.2, -1.2, 0.8],
        {
            ("itch=yes", "bcc"): 3.0,
            ("itch=no", "nv"): 1.0,
            ("age=75+", "akiec"): 2.0,
            ("bleed=yes", "mel"): 2.5,
        },
        strength=0.8,
    )
    dermoscopic = _answer_model(
        ["age", "sex", "site"],
        list(DEMO_LABELS),
        [-1.0, -0.8, 0.0, -2.0, -0.5, 1.5, -2.0],
        {("site=face", "bkl"): 2.0, ("age=0-29", "nv"): 1.5},
        strength=1.0,
    )
    card["answers"] = {
        "questions": DEMO_QUESTIONS,
        "models": {"phone": phone, "dermoscopic": dermoscopic},
        "rule": RULE,
        "calibration": {"temperature": 0.8, "fitted_on": "val"},
        "triage": {"malignant_threshold": 0.21, "target_sensitivity": 0.95},
        "metrics": {
            "val": {"phone": {"n": 40, "balanced_accuracy": 0.7}},
            "test": {
                "overall": {"n": 60, "balanced_accuracy": 0.583},
                "dermoscopic": {"n": 20, "balanced_accuracy": 0.512},
                "phone": {
                    "n": 40,
                    "balanced_accuracy": 0.688,
                    "malignant": {"sensitivity": 0.937, "specificity": 0.812},
                },
            },
        },
    }
    return card


@pytest.fixture(scope="session")
def answers_card() -> dict:
    return demo_answers_card()


@pytest.fixture(scope="session")
def demo_answers_model_path(tmp_path_factory: pytest.TempPathFactory, answers_card) -> Path:
    """The tiny model of `demo_model_path` with `answers_card` packed in instead."""
    path = tmp_path_factory.mktemp("demo_answers_model") / "tiny_answers.tflite"
    return build_demo_model(path, card=answers_card)


@pytest.fixture()
def answers_app(demo_answers_model_path: Path, demo_samples_dir: Path):
    """Like `app`, over the model whose card has an answers section."""
    return demo_app(demo_answers_model_path, demo_samples_dir)


@pytest.fixture()
def answers_client(answers_app):
    return answers_app.test_client()


# --------------------------------------------------------------------------------------------
# Real-data fixtures (train / export tests). The images live in ../shared/data beside the
# project. Without them these tests skip with the reason, unless SKINLESION_REQUIRE_DATA=1
# (set by .ci/run), which turns the skip into a failure.
# --------------------------------------------------------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    import os

    root = Path(os.environ.get("SKINLESION_DATA", SHARED_DATA))
    if not (root / "ham10000" / "HAM10000_metadata.csv").is_file():
        reason = f"real images not found at {root} (set SKINLESION_DATA to their folder)"
        if os.environ.get("SKINLESION_REQUIRE_DATA") == "1":
            pytest.fail(reason + "; SKINLESION_REQUIRE_DATA=1 makes this an error")
        pytest.skip(reason)
    return root
