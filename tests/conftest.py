"""Shared pytest fixtures. Keep each helper's fixtures grouped under its own banner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# --------------------------------------------------------------------------------------------
# demo_server fixtures live in tests/demo_server/conftest.py, over the tiny model files
# committed in tests/fixtures/ (made by tests/fixtures/make_demo_models.py with TensorFlow).
# Here only the export stage's conversion of a tiny Keras model, for the export tests;
# TensorFlow is imported when the fixture's function is called, never at import time.
# --------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_converter():
    """`convert_for_io(model, io_type, size)` of tests/fixtures/make_demo_models.py: the export
    stage's own conversion for a model whose input/output is uint8, int8 or float32."""
    if str(FIXTURES) not in sys.path:
        sys.path.insert(0, str(FIXTURES))
    from make_demo_models import convert_for_io

    return convert_for_io


# --------------------------------------------------------------------------------------------
# Real-data fixtures (train / export tests). The images live in ../shared/data beside the
# project. Without them these tests skip with the reason, unless SKINLESION_REQUIRE_DATA=1
# (set by .ci/run), which turns the skip into a failure.
# --------------------------------------------------------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def skip_unless_required(reason: str) -> None:
    """Skip with the reason; fail instead where SKINLESION_REQUIRE_DATA=1 (CI)."""
    if os.environ.get("SKINLESION_REQUIRE_DATA") == "1":
        pytest.fail(reason + "; SKINLESION_REQUIRE_DATA=1 makes this an error")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = Path(os.environ.get("SKINLESION_DATA", SHARED_DATA))
    if not (root / "ham10000" / "HAM10000_metadata.csv").is_file():
        skip_unless_required(
            f"real images not found at {root} (set SKINLESION_DATA to their folder)"
        )
    return root


# --------------------------------------------------------------------------------------------
# The emulated aarch64 runtime (export.arm): built once by `python -m export.arm --setup`
# (.ci/run does it). Without it the ARM tests skip with the reason, unless
# SKINLESION_REQUIRE_DATA=1, which turns the skip into a failure as for the real images.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def arm_runtime():
    from export.arm_runtime import RuntimeMissing, find_runtime

    try:
        return find_runtime()
    except RuntimeMissing as error:
        skip_unless_required(str(error))


# --------------------------------------------------------------------------------------------
# Colour constancy (issue 32, lever 3b): a committed tiny model whose card asks for a step on
# its input pixels, as a card training writes with --colour-constancy. No TensorFlow: only
# the packed files are replaced, the network's bytes are kept.
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def with_colour_step(tmp_path: Path):
    """`with_colour_step(step, name="tiny_uint8.tflite")`: a copy of that fixture whose card's
    input.colour_constancy is `step`."""
    import json

    from contract.model_file import MODEL_CARD_FILE, read_associated_files
    from export.metadata import append_files, without_files

    def make(step: str, name: str = "tiny_uint8.tflite") -> Path:
        model = (FIXTURES / name).read_bytes()
        files = read_associated_files(model)
        card = json.loads(files[MODEL_CARD_FILE])
        card["input"]["colour_constancy"] = step
        files[MODEL_CARD_FILE] = json.dumps(card, indent=2).encode()
        path = tmp_path / f"{step}_{name}"
        path.write_bytes(append_files(without_files(model), files))
        return path

    return make
