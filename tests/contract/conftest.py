"""tests/contract: the TensorFlow-free contract package, unit by unit (numpy and Pillow only).

The answers card of the demo server's test model (tests/fixtures/demo_cards.py) is the one
well-formed card these tests start from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

from demo_cards import demo_answers_card  # noqa: E402


@pytest.fixture()
def answers_card() -> dict:
    """A card with an `answers` section, fresh for each test (tests may change it)."""
    return demo_answers_card()
