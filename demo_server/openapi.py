"""The OpenAPI 3.1 document of the JSON API (its schemas are plain JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

from contract.answers import (
    DOMAIN_FIELD,
    PHOTO_AND_ANSWERS,
    PHOTO_ONLY,
    AnswerSpec,
    request_domains,
)
from contract.images import HEADROOM
from contract.photo_check import HIGHLIGHT, MESSAGES, REASONS, RULE, SHADOW, SIZE
from contract.questionnaire import NUMBER
from demo_server.config import ServerConfig
from demo_server.images import ACCEPTED_MIME_TYPES
from demo_server.screening import CLASSIFIED, NOT_A_LESION, NOT_A_LESION_MESSAGE
from demo_server.segmenter import LESION_SCHEMAS

_NUM = {"type": "number"}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_NUM = {"type": ["number", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}


def _obj(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    required = [name for name in properties if name not in optional]
    return {"type": "object", "properties": properties, "required": required}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_LESION_CHECK = {
    **_nullable(_ref("LesionCheck")),
    "description": "The lesion gate's verdict; null when the server runs without a gate.",
}
_CLASSIFIED = {
    "const": CLASSIFIED,
    "description": f"`{CLASSIFIED}`, or `{NOT_A_LESION}` (see NotALesion) when the lesion gate "
    "rejects the photo.",
}
_GATE_MS = {**_NULLABLE_NUM, "description": "Time in the lesion gate; null without a gate."}


SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": {**_STR, "description": "Stable machine-readable code."},
                    "message": {**_STR, "description": "What is wrong, for a person."},
                }
            )
        }
    ),
    "ModelSummary": _obj(
        {
            "id": {**_STR, "description": "The value of ?model= that picks it."},
            "name": _STR,
            "version": _STR,
        }
    ),
    "ModelList": _obj(
        {
            "models": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _STR,
                        "name": _STR,
                        "version": _STR,
                        "default": {
                            "type": "boolean",
                            "description": "Used when a request names no model.",
                        },
                        "file": _obj({"name": _STR, "size_bytes": _INT}),
                    }
                ),
            }
        }
    ),
    "ImageSummary": _obj(
        {
            "format": {**_STR, "description": "JPEG, MPO, PNG, WEBP or HEIF."},
            "mode": {**_STR, "description": "Pillow mode before conversion to RGB."},
            "width": {**_INT, "description": "After applying EXIF orientation."},
            "height": _INT,
        }
    ),
    "Score": _obj(
        {
            "code": _STR,
            "display_name": _STR,
            "probability": {**_NUM, "minimum": 0, "maximum": 1},
            "malignant": {"type": "boolean"},
        }
    ),
    "LesionCheck": _obj(
        {
            "is_lesion": {
                "type": "boolean",
                "description": "False when distance is above threshold: not a skin-lesion photo.",
            },
            "distance": {
                **_NUM,
                "description": "Outlier score: the largest, over several feature layers, of "
                "the squared Mahalanobis distance from lesion photos divided by that layer's "
                "own limit.",
            },
            "threshold": _NUM,
        }
    ),
    "PhotoCheck": {
        **_obj(
            {
                "retake": {
                    "type": "boolean",
                    "description": "True when a reason to retake the photo was found: show the "
                    "messages first, and the result only if the person checks anyway.",
                },
                "reasons": {"type": "array", "items": {"enum": list(REASONS)}},
                "messages": {
                    "type": "array",
                    "items": _STR,
                    "description": f"One per reason, for a person, e.g. {MESSAGES[REASONS[0]]!r}",
                },
                "sharpness": {
                    **_NUM,
                    "description": f"Variance of the Laplacian of the grey photo stretched to "
                    f"{SIZE} x {SIZE}; `blurry` below {RULE.min_sharpness:g}.",
                },
                "brightness": {
                    **_NUM,
                    "description": f"Mean grey level (0-255); `dark` below "
                    f"{RULE.min_brightness:g}.",
                },
                "shadows": {
                    **_NUM,
                    "description": f"Share of pixels at grey level {SHADOW} or below; `dark` "
                    f"above {RULE.max_shadows:g}.",
                },
                "highlights": {
                    **_NUM,
                    "description": f"Share of pixels at grey level {HIGHLIGHT} or above; "
                    f"`bright` above {RULE.max_highlights:g}.",
                },
                "area_fraction": {
                    **_NULLABLE_NUM,
                    "description": "The spot's share of the frame (the segmenter's, when it "
                    f"found one spot; else null); `small` below {RULE.min_area_fraction:g}.",
                },
            }
        ),
        "description": "The photo check (contract.photo_check), classify only.",
    },
    "NotALesion": _obj(
        {
            "lesion_check": {"allOf": [_ref("LesionCheck"), _obj({"is_lesion": {"const": False}})]},
            "verdict": {"const": NOT_A_LESION},
            "message": {**_STR, "description": f"For a person, e.g. {NOT_A_LESION_MESSAGE!r}"},
            "photo_check": {
                **_ref("PhotoCheck"),
                "description": "classify only: when it asks to retake, show that first.",
            },
            "model": _ref("ModelSummary"),
            "image": _ref("ImageSummary"),
            "timing_ms": _obj(
                {"decode": _NUM, "photo_check": _NUM, "gate": _NUM, "total": _NUM},
                optional=("photo_check",),
            ),
            "disclaimer": _STR,
        },
        optional=("photo_check",),
    ),
    "Classification": _obj(
        {
            "lesion_check": _LESION_CHECK,
            "verdict": _CLASSIFIED,
            "photo_check": _ref("PhotoCheck"),
            "scores": {
                "type": "array",
                "items": _ref("Score"),
                "description": "Every class, calibrated, highest first.",
            },
            "top": _ref("Score"),
            "p_malignant": {**_NUM, "minimum": 0, "maximum": 1},
            "triage": _obj(
                {
                    "level": {"enum": ["see_dermatologist", "low_concern"]},
                    "message": _STR,
                    "threshold": _NUM,
                    "threshold_domain": {
                        "type": ["string", "null"],
                        "description": "The kind of photo whose own threshold was used; null: "
                        "the request stated none (or the card has none for it), so the "
                        "threshold that holds for every kind was used.",
                    },
                    "referred_by_photo": {
                        "type": "boolean",
                        "description": "True when the photo alone refers and the answers "
                        "would not have: with answers, a photo's referral stands (the answers "
                        "can add a referral, never cancel one).",
                    },
                }
            ),
            "unsure": {
                "type": "boolean",
                "description": "True when the top calibrated probability is below unsure_below.",
            },
            "unsure_below": _NUM,
            "unsure_message": {"type": ["string", "null"]},
            "calibration": _obj(
                {
                    "temperature": _NUM,
                    "threshold": {**_NUM, "description": "The triage threshold used."},
                    "source": {
                        "enum": [PHOTO_ONLY, PHOTO_AND_ANSWERS],
                        "description": "Which of the card's calibrations was used: photo only "
                        "(no answer the domain's model uses) or photo plus answers.",
                    },
                },
                optional=("threshold", "source"),
            ),
            "answers": {
                **_ref("Answers"),
                "description": "Only when the model's card has an answers section.",
            },
            "lesion": {
                **_ref("Lesion"),
                "description": "Only when the server has a lesion segmenter: where the spot "
                "is, and whether the photo shows one spot, none or several.",
            },
            "model": _ref("ModelSummary"),
            "image": _ref("ImageSummary"),
            "timing_ms": _obj(
                {
                    "decode": _NUM,
                    "photo_check": {**_NUM, "description": "Measuring the photo check."},
                    "gate": _GATE_MS,
                    "inference": _NUM,
                    "segment": {**_NUM, "description": "Only with a lesion segmenter."},
                    "total": _NUM,
                },
                optional=("segment",),
            ),
            "disclaimer": _STR,
        },
        optional=("answers", "lesion"),
    ),
    "Answers": _obj(
        {
            "domain": {**_STR, "description": "The domain whose answers' model was used."},
            "answered": {
                **_INT,
                "minimum": 0,
                "description": "How many of that model's questions were answered.",
            },
            "questions": {**_INT, "minimum": 1, "description": "How many questions it uses."},
            "used": {
                "type": "object",
                "additionalProperties": _STR,
                "description": "The answers it used, normalised (age as its bin, e.g. 30-44).",
            },
            "not_used": {
                "type": "array",
                "items": _STR,
                "description": "Questions answered that this domain's model does not use.",
            },
        }
    ),
    "Explanation": _obj(
        {
            "lesion_check": _LESION_CHECK,
            "verdict": _CLASSIFIED,
            "method": {"const": "occlusion"},
            "target": _obj({"code": _STR, "display_name": _STR, "probability": _NUM}),
            "grid_size": _INT,
            "grid": {
                "type": "array",
                "items": {"type": "array", "items": _NUM},
                "description": "Drop of the target's raw probability when each cell is "
                "covered with grey; rows top to bottom.",
            },
            "max_drop": _NUM,
            "heatmap_png": {
                **_STR,
                "description": "data: URL of a transparent PNG; stretch it over the photo.",
            },
            "batched": {"type": "boolean"},
            "model": _ref("ModelSummary"),
            "image": _ref("ImageSummary"),
            "timing_ms": _obj({"gate": _GATE_MS, "total": _NUM}),
            "disclaimer": _STR,
        }
    ),
    "Tensor": _obj(
        {
            "shape": {"type": "array", "items": _INT},
            "dtype": _STR,
            "quantization": _obj({"scale": _NUM, "zero_point": _INT}),
        }
    ),
    "ModelInfo": _obj(
        {
            "id": _STR,
            "name": _STR,
            "version": _STR,
            "labels": {
                "type": "array",
                "items": _obj(
                    {"code": _STR, "display_name": _STR, "malignant": {"type": "boolean"}}
                ),
            },
            "input": {"allOf": [_ref("Tensor"), _obj({"height": _INT, "width": _INT})]},
            "output": _ref("Tensor"),
            "calibration": _obj({"temperature": _NUM}),
            "triage": _obj(
                {
                    "malignant_threshold": {
                        **_NUM,
                        "description": "For a photo whose kind the request does not state.",
                    },
                    "by_domain": {
                        "type": "object",
                        "additionalProperties": _NUM,
                        "description": "Each kind of photo's own threshold (may be empty).",
                    },
                }
            ),
            "unsure_below": _NUM,
            "lesion_gate": _ref("LesionGateInfo"),
            "lesion_segmenter": _ref("LesionSegmenterInfo"),
            "file": _obj({"name": _STR, "sha256": _STR, "size_bytes": _INT}),
            "model_card": {"type": "object", "description": "model_card.json, as packed."},
            "disclaimer": _STR,
        }
    ),
    "LesionGateInfo": _obj(
        {
            "loaded": {
                "type": "boolean",
                "description": "Whether photos are checked for looking like a skin lesion "
                "before they are classified.",
            },
            "threshold": _NULLABLE_NUM,
            "interpreters": _NULLABLE_INT,
            "image_size": _NULLABLE_INT,
            "file": _nullable(_obj({"name": _STR, "sha256": _STR, "size_bytes": _INT})),
        }
    ),
    **LESION_SCHEMAS,
    "Health": _obj(
        {
            "status": {"const": "ok"},
            "model": _ref("ModelSummary"),
            "interpreters": _INT,
            "lesion_gate": _obj(
                {
                    "loaded": {"type": "boolean"},
                    "threshold": _NULLABLE_NUM,
                    "interpreters": _NULLABLE_INT,
                }
            ),
            "rss_bytes": {"type": ["integer", "null"]},
        }
    ),
}


def _json(schema: str | dict[str, Any], description: str) -> dict[str, Any]:
    body = _ref(schema) if isinstance(schema, str) else schema
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "No image, an empty file, two `image` parts (`several_images`), or an answer "
        "that is invalid or that the model does not take.",
        413: "Over a limit: the request body (`request_too_large`), a form field or the "
        "number of form parts (`form_too_large`), the image's pixel count "
        "(`too_many_pixels`), or the time or memory its decoding would take (`too_costly`: "
        "a JPEG's scans x pixels, the estimated decode memory).",
        415: "Not an image in a supported format.",
        422: "A truncated or damaged image.",
        500: "Unexpected server error (never with details).",
        503: "Busy (`busy`): every interpreter is in use, or large images are being decoded "
        "and others already wait; try again after `Retry-After` seconds.",
    }
    out = {str(s): _json("Error", reasons[s]) for s in statuses}
    if "503" in out:
        out["503"]["headers"] = {
            "Retry-After": {"description": "Seconds to wait before trying again.", "schema": _INT}
        }
    return out


def _classify_fields(answers: AnswerSpec | None) -> dict[str, Any]:
    """classify's multipart fields besides `image`: the kind of photo, and the answers to the
    card's questions ("" means unanswered / not stated)."""
    fields: dict[str, Any] = {}
    for question in answers.questions.values() if answers else ():
        if question.kind == NUMBER:
            number = {"type": "number", "minimum": question.minimum, "maximum": question.maximum}
            schema: dict[str, Any] = {"anyOf": [number, {"const": ""}]}
        else:
            schema = {"enum": ["", *question.choices]}
        fields[question.name] = {**schema, "description": f"{question.text} Empty: unanswered."}
    answers_model = (
        f" and whose answers' model to use (empty: {answers.default_domain})" if answers else ""
    )
    fields[DOMAIN_FIELD] = {
        "enum": ["", *request_domains(answers)],
        "description": "The kind of photo: picks the triage threshold (empty: the one that "
        f"holds for every kind){answers_model}.",
    }
    return fields


def _answers_description(answers: AnswerSpec | None) -> str:
    if answers is None:
        return " This model takes no answers: answer fields (age, sex, ...) are a 400."
    return (
        " Optional multipart fields answer questions about the person and the spot; each "
        "changes the result (softmax((log p + strength * r) / T), with the card's calibration "
        "for photo plus answers when the domain's model uses at least one answer). Answers are "
        "never stored or logged."
    )


def _upload_operation(
    summary: str, schema: str, config: ServerConfig, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An upload route: 200 is `schema`, or NotALesion when the lesion gate rejects the photo.

    `fields` are more multipart fields besides `image` (the answers, for classify)."""
    # JSON Schema cannot say "a decodable image": the media types say which files are accepted
    # (the format is sniffed from the bytes; anything else is a 415 or 422).
    file = {
        "type": "string",
        "format": "binary",
        "description": "A JPEG, PNG, WebP or HEIC/HEIF image.",
    }
    raw_types = (*ACCEPTED_MIME_TYPES, "application/octet-stream")
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": _obj({"image": file, **(fields or {})}, optional=tuple(fields or ())),
            "encoding": {"image": {"contentType": ", ".join(raw_types)}},
        }
    }
    content.update({mime: {"schema": file} for mime in raw_types})
    return {
        "summary": summary,
        "description": (
            f"The image as multipart field `image` or as the raw body; at most "
            f"{config.max_request_bytes:,} bytes and {config.max_pixels:,} pixels. EXIF "
            "orientation is honoured; alpha is composited on white. An image more than "
            f"{2 * HEADROOM} times larger than the largest model input on its shorter side is "
            "decoded reduced (to no less than "
            f"{HEADROOM} times that input); `image.width` / `height` and the lesion outline "
            "are still the image's own pixels. The image is never stored. "
            "When the server has a lesion gate (see `lesion_gate` in /api/v1/model), a photo "
            f"that does not look like a skin lesion gets verdict `{NOT_A_LESION}` (still 200) "
            "with a message and no result."
        ),
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": _json(
                {"oneOf": [_ref(schema), _ref("NotALesion")]},
                f"OK: `verdict` is `{CLASSIFIED}` ({schema}) or `{NOT_A_LESION}` (NotALesion).",
            ),
            **_errors(400, 413, 415, 422, 500, 503),
        },
    }


def _model_parameter(model_ids: list[str]) -> dict[str, Any]:
    """``?model=ID``: which classifier answers (GET /api/v1/models); the first by default."""
    return {
        "name": "model",
        "in": "query",
        "required": False,
        "description": "The classifier to use (GET /api/v1/models); without it, the default. "
        "An unknown id is a 400.",
        "schema": {"type": "string", "enum": model_ids} if model_ids else _STR,
    }


def openapi_document(
    config: ServerConfig, answers: AnswerSpec | None = None, model_ids: list[str] | None = None
) -> dict[str, Any]:
    """The document served at /api/v1/openapi.json (limits filled in from the config).

    `answers` is the default model's answers section: its questions become classify's fields.
    `model_ids` are the classifiers a request may pick with ?model=.
    """
    pick = [_model_parameter(model_ids or [])]
    classify = _upload_operation(
        "Screen one photo of a skin spot",
        "Classification",
        config,
        _classify_fields(answers),
    )
    classify["description"] += _answers_description(answers) + (
        " Every answer carries `photo_check`: whether the photo is sharp, well exposed and "
        "shows the spot large enough (measured before the lesion gate). When its `retake` is "
        "true, a client shows its messages first and the result only if the person checks "
        "anyway: a blurred real spot is otherwise often turned away as not a skin lesion."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Skin-lesion screening demo API",
            "version": "1",
            "description": "A screening aid, not a diagnosis: results carry a disclaimer and "
            "point to a dermatologist.",
        },
        "paths": {
            "/api/v1/classify": {"post": {**classify, "parameters": pick}},
            "/api/v1/explain": {
                "post": {
                    **_upload_operation(
                        "Occlusion heatmap of where the model looked", "Explanation", config
                    ),
                    "parameters": pick,
                }
            },
            "/api/v1/model": {
                "get": {
                    "summary": "Model card and tensor details",
                    "parameters": pick,
                    "responses": {"200": _json("ModelInfo", "OK"), **_errors(400)},
                }
            },
            "/api/v1/models": {
                "get": {
                    "summary": "The classifiers this server runs",
                    "responses": {"200": _json("ModelList", "OK")},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and memory",
                    "responses": {"200": _json("Health", "OK")},
                }
            },
        },
        "components": {"schemas": SCHEMAS},
    }
