"""Where create_app keeps the loaded models and settings, and how request code finds them."""

from __future__ import annotations

from flask import Flask, current_app, has_request_context, request

from demo_server.config import ServerConfig
from demo_server.errors import ApiError
from demo_server.images import Decoder
from demo_server.lesion_gate import LesionGate
from demo_server.model import Classifier

CLASSIFIERS = "demo_server.classifiers"  # model id -> Classifier; the first is the default
LESION_GATE = "demo_server.lesion_gate"
SETTINGS = "demo_server.config"
DECODER = "demo_server.decoder"
MODEL_PARAM = "model"  # the query parameter that picks a classifier
# An unknown ?model= value is quoted back at most this long (it is the client's own text).
QUOTED_CHARS = 64


def classifiers(app: Flask | None = None) -> dict[str, Classifier]:
    """Every classifier the server (``app``, else the current one) runs, by model id, the
    default first."""
    return (app or current_app).extensions[CLASSIFIERS]


def default_classifier(app: Flask | None = None) -> Classifier:
    return next(iter(classifiers(app).values()))


def current_classifier() -> Classifier:
    """The classifier the request names with ``?model=ID``, else the default; an unknown id is
    a 400 that lists the ids (so a client never gets another model's answer unawares)."""
    wanted = request.args.get(MODEL_PARAM) if has_request_context() else None
    if wanted is None:
        return default_classifier()
    found = classifiers().get(wanted)
    if found is None:
        ids = ", ".join(classifiers())
        shown = repr(wanted[:QUOTED_CHARS]) + (" (cut)" if len(wanted) > QUOTED_CHARS else "")
        raise ApiError(400, "unknown_model", f"No model {shown} here; the models are: {ids}.")
    return found


def page_default_classifier() -> Classifier:
    """The classifier the page shows when its address names none: the server's page_model,
    else the default (create_app checks that page_model is served)."""
    wanted = current_settings().page_model
    return classifiers()[wanted] if wanted else default_classifier()


def page_classifier() -> Classifier:
    """The page's classifier: the one ``?model=ID`` names, else ``page_default_classifier``."""
    if has_request_context() and request.args.get(MODEL_PARAM) is not None:
        return current_classifier()
    return page_default_classifier()


def current_lesion_gate() -> LesionGate | None:
    """The "not a skin lesion" gate, or None when the server runs without one."""
    return current_app.extensions[LESION_GATE]


def current_decoder() -> Decoder:
    """The uploads' decode budget and the slots heavy decodes share."""
    return current_app.extensions[DECODER]


def current_settings() -> ServerConfig:
    return current_app.extensions[SETTINGS]
