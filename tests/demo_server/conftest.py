"""demo_server fixtures: the tiny test models committed in tests/fixtures/, the app, its client.

No TensorFlow: the model files were made once by tests/fixtures/make_demo_models.py through the
export stage's conversion and metadata writer (test_fixture_models.py checks they still match).
`client` serves the tiny network with the plain card (`demo_card`), `answers_client` the same
network with a card that has an `answers` section (`answers_card`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

from demo_cards import (  # noqa: E402
    FILES,
    demo_answers_card,
    demo_model_card,
    fixture_path,
)

# The committed file of each input/output type, with the plain card.
VARIANT_FILES = {io_type: name for name, (io_type, card) in FILES.items() if card == "plain"}


@pytest.fixture(scope="session")
def demo_card() -> dict:
    """The card packed in `demo_model_path` (a fresh copy per session)."""
    return demo_model_card()


@pytest.fixture(scope="session")
def answers_card() -> dict:
    """The card packed in `demo_answers_model_path`."""
    return demo_answers_card()


@pytest.fixture(scope="session")
def demo_model_path() -> Path:
    """The tiny full-integer model (uint8 input and output) with metadata, on disk."""
    return fixture_path(VARIANT_FILES["uint8"])


@pytest.fixture(scope="session")
def demo_variant_paths() -> dict[str, Path]:
    """The same network as uint8-, int8- and float32-input/output files (the plain card)."""
    return {io_type: fixture_path(name) for io_type, name in VARIANT_FILES.items()}


@pytest.fixture(scope="session")
def demo_answers_model_path() -> Path:
    """The tiny model of `demo_model_path` with `answers_card` packed in instead."""
    return fixture_path("tiny_uint8_answers.tflite")


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


@pytest.fixture()
def answers_app(demo_answers_model_path: Path, demo_samples_dir: Path):
    """Like `app`, over the model whose card has an answers section."""
    return demo_app(demo_answers_model_path, demo_samples_dir)


@pytest.fixture()
def answers_client(answers_app):
    return answers_app.test_client()
