"""The OpenAPI document matches the behaviour: schemathesis over every operation it lists.

The document is loaded from the app itself (`/api/v1/openapi.json`), every operation is run with
all of schemathesis's default checks (status codes, content types, response schemas, no 5xx,
schema-valid data accepted, schema-invalid data rejected, 405 + `Allow` for other methods).

JSON Schema cannot say "a decodable JPEG", so the upload media types get strategies that draw
real, varied images (size, colour mode, pixels): positive cases then reach the 200 responses and
their schemas. Arbitrary bytes are checked separately: they must get a documented JSON 4xx.
"""

from __future__ import annotations

import io

import numpy as np
import pillow_heif
import pytest
from PIL import Image

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (a [test] extra)"
)
pytest.importorskip("hypothesis", reason="hypothesis is not installed (a [test] extra)")

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
)

# Property-based runs over every operation: seconds each.
pytestmark = pytest.mark.slow

pillow_heif.register_heif_opener()

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
MODES = {
    "JPEG": ("RGB", "L", "CMYK"),
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "I;16"),
    "WEBP": ("RGB", "RGBA"),
    "HEIF": ("RGB", "RGBA"),
}


@st.composite
def encoded_images(draw: st.DrawFn, fmt: str) -> bytes:
    """A small image of random pixels in one of the format's colour modes, encoded as `fmt`."""
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    mode = draw(st.sampled_from(MODES[fmt]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    image = image.convert("I;16") if mode == "I;16" else image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


# Registered once for the process (schemathesis keeps one registry of media-type strategies).
_IMAGES = {fmt: encoded_images(fmt) for fmt in MODES}
for _media_type, _fmt in [
    ("image/jpeg", "JPEG"),
    ("image/png", "PNG"),
    ("image/webp", "WEBP"),
    ("image/heic", "HEIF"),
    ("image/heif", "HEIF"),
]:
    schemathesis.openapi.media_type(_media_type, _IMAGES[_fmt])
schemathesis.openapi.media_type("application/octet-stream", st.one_of(*_IMAGES.values()))


@pytest.fixture()
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture()
def answers_api_schema(answers_app):
    """The app over a model whose card has answers: classify documents one field per question."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", answers_app)


api = schemathesis.pytest.from_fixture("api_schema")
answers_api = schemathesis.pytest.from_fixture("answers_api_schema")
# Schemathesis leaves out the operation that served the document unless a filter names it.
every_operation = api.include(path_regex="^/")
uploads = api.include(method="POST")


def test_every_documented_operation_is_tested(api_schema):
    documented = {
        f"{method.upper()} {path}"
        for path, item in api_schema.raw_schema["paths"].items()
        for method in item
    }
    tested = {op.ok().label for op in api_schema.include(path_regex="^/").get_all_operations()}
    assert tested == documented
    assert "GET /api/v1/openapi.json" in tested


def _validate(case):
    """All checks; but a drawn field value that multipart cannot carry as one part (None, an
    object, or a list: one part per item, none when empty) is not what the server receives, so
    whether the request was valid cannot be judged from the drawing: then only the response is
    checked (a negative draw with `sex: []` arrives as no `sex` at all, which is valid)."""
    fields = case.body if case.media_type == "multipart/form-data" else None
    if isinstance(fields, dict) and any(
        value is None or isinstance(value, (list, dict))
        for name, value in fields.items()
        if name != "image"
    ):
        return case.call_and_validate(
            excluded_checks=[positive_data_acceptance, negative_data_rejection]
        )
    return case.call_and_validate()


@every_operation.parametrize()
@SETTINGS
def test_api_conforms_to_its_openapi_document(case):
    _validate(case)


@answers_api.include(method="POST", path="/api/v1/classify").parametrize()
@settings(SETTINGS, max_examples=100)  # 25 spread over 8 media types rarely draw answers
def test_classify_with_answers_conforms_to_its_openapi_document(case):
    # Valid answers (any documented choice, any age 0-120, "" for unanswered) are accepted and
    # the answer matches the schema; anything else the document forbids is a 4xx.
    _validate(case)


def _truncated(data: bytes) -> st.SearchStrategy[bytes]:
    # At most half: an image missing only its last bytes (say a PNG's IEND) may still decode.
    return st.integers(1, max(1, len(data) // 2)).map(lambda n: data[:n])


# Arbitrary bytes, and real images cut in half or more: never a 5xx, always a documented 4xx.
NOT_IMAGES = st.one_of(
    st.binary(max_size=512),
    st.one_of(*_IMAGES.values()).flatmap(_truncated),
)


@uploads.parametrize()
@uploads.given(data=NOT_IMAGES)
@SETTINGS
def test_uploads_that_are_not_images_get_documented_errors(case, data):
    case.body = {"image": data} if case.media_type == "multipart/form-data" else data
    # The body is no longer the one drawn, so the checks that judge its validity do not apply.
    response = case.call_and_validate(
        excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )
    assert response.status_code in {400, 415, 422}, response.text
