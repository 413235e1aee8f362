"""The JSON API: classify, explain, model metadata, OpenAPI document; and /healthz."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from contract.answers import AnswerEffect, refuse_answers, request_domains, stated_domain
from contract.framing import ONE
from contract.photo_check import PhotoMeasures, check, measure
from contract.questionnaire import AnswerError
from demo_server import explain as occlusion
from demo_server.errors import ApiError, busy
from demo_server.extensions import classifiers
from demo_server.extensions import current_classifier as classifier
from demo_server.extensions import current_decoder as decoder
from demo_server.extensions import current_lesion_gate as lesion_gate
from demo_server.extensions import current_settings as settings
from demo_server.images import DecodedImage
from demo_server.lesion_gate import GateResult
from demo_server.model import PoolBusy
from demo_server.openapi import openapi_document
from demo_server.screening import (
    CLASSIFIED,
    NOT_A_LESION,
    NOT_A_LESION_MESSAGE,
    disclaimer,
    lesion_check_json,
    screen,
    screening_json,
)
from demo_server.segmenter import SegmentedUpload, lesion_json, segment_upload, segmenter_info_json
from demo_server.system import process_rss_bytes

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health_bp = Blueprint("health", __name__)


def _upload_bytes() -> bytes:
    """The image from the multipart field ``image``, or else the raw request body.

    Two ``image`` parts are refused: which one answered would depend on their order.
    """
    if request.mimetype == "multipart/form-data":
        uploads = request.files.getlist("image")
        if not uploads:
            raise ApiError(400, "no_image", "No multipart field named 'image' in the request.")
        if len(uploads) > 1:
            raise ApiError(
                400,
                "several_images",
                f"The request has {len(uploads)} multipart fields named 'image'; send one "
                "image per request.",
            )
        data = uploads[0].read()
        if not data:
            raise ApiError(400, "empty_file", "The uploaded file is empty.")
        return data
    data = request.get_data(cache=False)
    if not data:
        raise ApiError(
            400,
            "no_image",
            "No image: send it as the multipart field 'image' or as the raw request body.",
        )
    return data


def _answers_and_domain() -> tuple[AnswerEffect | None, str | None]:
    """The optional multipart fields sent with the image, checked against the card: what the
    answers do, and the kind of photo the request states (`domain`: it picks the triage
    threshold; None when not stated).

    The effect is None when the card has no answers section (then any answer is a 400).
    Answers live only in this request: never stored, never logged.
    """
    form = request.form.to_dict(flat=False) if request.mimetype == "multipart/form-data" else {}
    spec = classifier().metadata.answers
    try:
        if spec is None:
            refuse_answers(form)
            effect = None
        else:
            effect = spec.effect(spec.read(form))
        return effect, stated_domain(form, request_domains(spec))
    except AnswerError as error:
        raise ApiError(400, error.code, str(error)) from None


def _decoded_upload() -> tuple[DecodedImage, float]:
    start = time.perf_counter()
    decoded = decoder().decode(_upload_bytes())
    return decoded, (time.perf_counter() - start) * 1000.0


def _model_summary() -> dict[str, str]:
    model = classifier()
    return {"id": model.model_id, "name": model.metadata.name, "version": model.metadata.version}


def _image_summary(decoded: DecodedImage) -> dict[str, Any]:
    return {
        "format": decoded.format,
        "mode": decoded.original_mode,
        "width": decoded.size[0],
        "height": decoded.size[1],
    }


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


def _gate_check(decoded: DecodedImage) -> tuple[GateResult | None, float | None]:
    """The "not a skin lesion" gate's verdict and its time in ms (None, None without a gate)."""
    gate = lesion_gate()
    if gate is None:
        return None, None
    start = time.perf_counter()
    try:
        result = gate.check(decoded.image)
    except PoolBusy:
        raise busy() from None
    return result, _ms_since(start)


@dataclass(frozen=True)
class _Upload:
    """A decoded upload and the lesion gate's verdict on it (None without a gate)."""

    decoded: DecodedImage
    check: GateResult | None
    decode_ms: float
    gate_ms: float | None
    measures: PhotoMeasures | None = None  # the photo check's, classify only
    measure_ms: float | None = None

    @property
    def rejected(self) -> bool:
        return self.check is not None and not self.check.is_lesion


def _screened_upload(photo_check: bool = False) -> _Upload:
    """Decode, measure for the photo check (when asked: before the gate, whose verdict is not
    to be shown first for a blurred or dark photo), then the gate."""
    decoded, decode_ms = _decoded_upload()
    measures, measure_ms = None, None
    if photo_check:
        measure_start = time.perf_counter()
        measures = measure(decoded.image)
        measure_ms = _ms_since(measure_start)
    check, gate_ms = _gate_check(decoded)
    return _Upload(decoded, check, decode_ms, gate_ms, measures, measure_ms)


def _photo_check(upload: _Upload, area_fraction: float | None = None) -> dict[str, Any]:
    """The `photo_check` field and its timing (nothing for explain, which measures nothing)."""
    if upload.measures is None:
        return {}
    return {"photo_check": check(upload.measures, area_fraction).as_json()}


def _check_timing(upload: _Upload) -> dict[str, float]:
    return {} if upload.measure_ms is None else {"photo_check": upload.measure_ms}


def _not_a_lesion(upload: _Upload, start: float) -> Response:
    """The answer for a photo the gate rejects: no scores, no top class, no triage."""
    return jsonify(
        lesion_check=lesion_check_json(upload.check),
        verdict=NOT_A_LESION,
        message=NOT_A_LESION_MESSAGE,
        **_photo_check(upload),
        model=_model_summary(),
        image=_image_summary(upload.decoded),
        timing_ms={
            "decode": round(upload.decode_ms, 2),
            **_check_timing(upload),
            "gate": upload.gate_ms,
            "total": _ms_since(start),
        },
        disclaimer=disclaimer(classifier().metadata),
    )


def _gate_info(with_file: bool) -> dict[str, Any]:
    gate = lesion_gate()
    info: dict[str, Any] = {
        "loaded": gate is not None,
        "threshold": gate.threshold if gate else None,
        "interpreters": gate.pool_size if gate else None,
    }
    if with_file:
        info["image_size"] = gate.image_size if gate else None
        info["file"] = (
            {"name": gate.file_name, "sha256": gate.file_sha256, "size_bytes": gate.file_size}
            if gate
            else None
        )
    return info


def _segment_timing(segmented: SegmentedUpload) -> dict[str, float]:
    """timing_ms.segment, only when a segmenter is loaded."""
    return {} if segmented.ms is None else {"segment": round(segmented.ms, 2)}


@bp.post("/classify")
def classify() -> ResponseReturnValue:
    """Screen one image: every class's calibrated probability, P(malignant) and triage.

    Optional multipart fields answer the card's questions (see answers.py); they change the
    result through the card's formula and calibration for photo plus answers. The optional
    field ``domain`` says what kind of photo it is: triage then uses that kind's own threshold
    (contract.triage), else the one that holds for every kind. With a lesion
    gate loaded, a photo that does not look like a skin lesion gets the
    ``not_a_lesion`` verdict instead (still 200, with no scores, top class or triage). Both
    answers carry ``photo_check`` (contract.photo_check): when it asks to retake the photo, a
    client shows that first, and the result only if the person checks anyway.
    """
    start = time.perf_counter()
    effect, domain = _answers_and_domain()  # before decoding: a bad answer is cheap to refuse
    upload = _screened_upload(photo_check=True)
    if upload.rejected:
        return _not_a_lesion(upload, start)
    decoded, check = upload.decoded, upload.check
    try:  # with a segmenter: where the spot is, and the photo to classify (cropped or whole)
        segmented = segment_upload(decoded.image, decoded.size)
    except PoolBusy:
        raise busy() from None
    model = classifier()
    infer_start = time.perf_counter()
    try:
        raw = model.predict(model.to_pixels(segmented.image))
    except PoolBusy:
        raise busy() from None
    inference_ms = (time.perf_counter() - infer_start) * 1000.0
    ratios = effect.log_ratios if effect is not None else None
    result = screen(raw, model.metadata, settings().unsure_below, ratios, domain)
    body: dict[str, Any] = {"lesion_check": lesion_check_json(check), "verdict": CLASSIFIED}
    framing = segmented.framing
    area = framing.area_fraction if framing is not None and framing.verdict == ONE else None
    body.update(_photo_check(upload, area))
    if framing is not None:
        body["lesion"] = lesion_json(framing, segmented.cropped)
    body.update(screening_json(result, model.metadata, settings().unsure_below))
    if effect is not None:
        body["answers"] = effect.as_json()
    body.update(
        model=_model_summary(),
        image=_image_summary(decoded),
        timing_ms={
            "decode": round(upload.decode_ms, 2),
            **_check_timing(upload),
            "gate": upload.gate_ms,
            "inference": round(inference_ms, 2),
            **_segment_timing(segmented),
            "total": _ms_since(start),
        },
        disclaimer=disclaimer(model.metadata),
    )
    return jsonify(body)


@bp.post("/explain")
def explain() -> ResponseReturnValue:
    """Occlusion sensitivity: where covering the image lowers the top class's probability.

    A photo the lesion gate rejects gets the same 200 ``not_a_lesion`` answer as classify.
    """
    start = time.perf_counter()
    upload = _screened_upload()
    if upload.rejected:
        return _not_a_lesion(upload, start)
    decoded, check = upload.decoded, upload.check
    model = classifier()
    try:
        result = occlusion.occlusion_map(
            model, model.to_pixels(decoded.image), settings().explain_grid
        )
    except PoolBusy:
        raise busy() from None
    meta = model.metadata
    png = occlusion.heatmap_png(result.drops)
    return jsonify(
        lesion_check=lesion_check_json(check),
        verdict=CLASSIFIED,
        method="occlusion",
        target={
            "code": meta.labels[result.target],
            "display_name": meta.display_names[result.target],
            "probability": round(result.base_probability, 6),
        },
        grid_size=result.drops.shape[0],
        grid=[[round(float(v), 6) for v in row] for row in result.drops],
        max_drop=round(float(result.drops.max()), 6),
        heatmap_png="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        batched=result.batched,
        model=_model_summary(),
        image=_image_summary(decoded),
        timing_ms={"gate": upload.gate_ms, "total": _ms_since(start)},
        disclaimer=disclaimer(meta),
    )


@bp.get("/model")
def model_info() -> ResponseReturnValue:
    """The model card and tensor details, as read from the model file itself."""
    meta = classifier().metadata
    return jsonify(
        id=classifier().model_id,
        name=meta.name,
        version=meta.version,
        labels=[
            {"code": code, "display_name": name, "malignant": code in meta.malignant_labels}
            for code, name in zip(meta.labels, meta.display_names, strict=True)
        ],
        input={"height": meta.input_height, "width": meta.input_width, **meta.input.as_json()},
        output=meta.output.as_json(),
        calibration={"temperature": meta.temperature},
        triage=meta.triage.as_json(),
        unsure_below=settings().unsure_below,
        lesion_gate=_gate_info(with_file=True),
        lesion_segmenter=segmenter_info_json(),
        file={"name": meta.file_name, "sha256": meta.file_sha256, "size_bytes": meta.file_size},
        model_card=meta.card.to_json() if meta.card else {},
        disclaimer=disclaimer(meta),
    )


@bp.get("/models")
def models() -> ResponseReturnValue:
    """The classifiers this server runs; a request picks one with ``?model=ID``."""
    entries = []
    for position, model in enumerate(classifiers().values()):
        meta = model.metadata
        entries.append(
            {
                "id": model.model_id,
                "name": meta.name,
                "version": meta.version,
                "default": position == 0,
                "file": {"name": meta.file_name, "size_bytes": meta.file_size},
            }
        )
    return jsonify(models=entries)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document(settings(), classifier().metadata.answers, list(classifiers())))


@health_bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness plus the numbers a load test wants (resident memory, pool size)."""
    return jsonify(
        status="ok",
        model=_model_summary(),
        interpreters=classifier().pool_size,
        lesion_gate=_gate_info(with_file=False),
        rss_bytes=process_rss_bytes(),
    )
