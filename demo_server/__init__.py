"""Phone-like demo server for the skin-lesion screening model (LiteRT only, never TensorFlow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from contract.images import DecodeBudget
from demo_server.admission import Slots
from demo_server.compression import EXTENSION as GZIP_CACHE
from demo_server.compression import GzipCache
from demo_server.config import ServerConfig
from demo_server.errors import register_error_handlers
from demo_server.extensions import CLASSIFIERS, DECODER, LESION_GATE, SETTINGS, classifiers
from demo_server.images import Decoder
from demo_server.lesion_gate import GateError, LesionGate
from demo_server.model import Classifier, ModelError
from demo_server.security import FORM_LIMITS, InMemoryRequest, add_security_headers
from demo_server.segmenter import EXTENSION as SEGMENTER
from demo_server.segmenter import SegmenterError, load_segmenter


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Application factory: loads the model once, then wires blueprints, errors and headers.

    ``config`` is a Flask-style mapping (``MODEL_PATH``, ``MAX_CONTENT_LENGTH``, ``TESTING``...);
    see ``ServerConfig`` for the server's own keys. Raises ``ModelError`` if the model or the
    lesion gate (``LESION_GATE_PATH``; None means no gate) is unusable.
    """
    from demo_server import api, manifest, pages

    settings = ServerConfig.from_mapping(config or {})
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False
    # No redirects built from the client's Host header: `//static//x` is a 404, not a 308.
    app.url_map.merge_slashes = False
    app.config.update(FORM_LIMITS)
    app.config.update(settings.flask_config())
    app.config.update(config or {})
    app.extensions[SETTINGS] = settings
    app.extensions[CLASSIFIERS] = _load_classifiers(settings)
    if settings.page_model and settings.page_model not in app.extensions[CLASSIFIERS]:
        served = ", ".join(app.extensions[CLASSIFIERS])
        raise ModelError(f"the page's model {settings.page_model!r} is not served ({served})")
    app.extensions[LESION_GATE] = _load_gate(settings)
    try:  # SEGMENTER_PATH: the lesion segmenter (outline, one / no / several spots); None: none
        app.extensions[SEGMENTER] = load_segmenter(
            settings.segmenter_path, settings.interpreters, settings.pool_timeout_s
        )
    except SegmenterError as exc:
        raise ModelError(f"lesion segmenter {settings.segmenter_path}: {exc}") from None
    app.extensions[DECODER] = _decoder(settings, _largest_input_side(app))
    if settings.gzip_cache_bytes > 0:
        app.extensions[GZIP_CACHE] = GzipCache(settings.gzip_cache_bytes)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.health_bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(manifest.bp)
    register_error_handlers(app)
    add_security_headers(app)
    return app


def _load_classifiers(settings: ServerConfig) -> dict[str, Classifier]:
    """The default classifier first, then the others; two files with one id are refused."""
    loaded: dict[str, Classifier] = {}
    for path in dict.fromkeys((settings.model_path, *settings.more_model_paths)):
        try:
            classifier = Classifier.from_file(
                path,
                interpreters=settings.interpreters,
                pool_timeout_s=settings.pool_timeout_s,
                batch_size=settings.explain_grid**2,
            )
        except ModelError as exc:
            message = str(exc)
            named = message if str(path) in message else f"classifier {path}: {message}"
            raise ModelError(named) from None
        if classifier.model_id in loaded:
            raise ModelError(f"two classifier files are named {path.name}: rename one")
        loaded[classifier.model_id] = classifier
    return loaded


def _largest_input_side(app: Flask) -> int:
    """The largest side any loaded model resizes an upload to: uploads are decoded no smaller
    than contract.images.HEADROOM times it."""
    metas = [model.metadata for model in classifiers(app).values()]
    sides = [max(meta.input_height, meta.input_width) for meta in metas]
    for extra in (app.extensions[LESION_GATE], app.extensions[SEGMENTER]):
        sides += [extra.image_size] if extra is not None else []
    return max(sides)


def _decoder(settings: ServerConfig, need: int) -> Decoder:
    budget = DecodeBudget(
        max_pixels=settings.max_pixels,
        max_bytes=settings.max_decode_bytes,
        max_scan_pixels=settings.max_scan_pixels,
        need=need,
    )
    slots = Slots(settings.decode_slots, settings.decode_queue, settings.decode_wait_s)
    return Decoder(budget, slots)


def _load_gate(settings: ServerConfig) -> LesionGate | None:
    """The gate gets its own pool, sized like the classifier's (one interpreter per thread)."""
    if settings.lesion_gate_path is None:
        return None
    try:
        return LesionGate.from_file(
            settings.lesion_gate_path,
            interpreters=settings.interpreters,
            threads=1,
            pool_timeout_s=settings.pool_timeout_s,
        )
    except GateError as exc:
        raise ModelError(f"lesion gate {settings.lesion_gate_path}: {exc}") from None
