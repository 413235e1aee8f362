"""Where create_app keeps the loaded model and settings, and how request code finds them."""

from __future__ import annotations

from flask import current_app

from demo_server.config import ServerConfig
from demo_server.lesion_gate import LesionGate
from demo_server.model import Classifier

CLASSIFIER = "demo_server.classifier"
LESION_GATE = "demo_server.lesion_gate"
SETTINGS = "demo_server.config"


def current_classifier() -> Classifier:
    return current_app.extensions[CLASSIFIER]


def current_lesion_gate() -> LesionGate | None:
    """The "not a skin lesion" gate, or None when the server runs without one."""
    return current_app.extensions[LESION_GATE]


def current_settings() -> ServerConfig:
    return current_app.extensions[SETTINGS]
