"""demo_server routes through the Flask test client: results, pages, samples and every error."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from demo_server.config import ServerConfig
from demo_server.extensions import default_classifier
from demo_server.openapi import openapi_document

NO_GATE = {"LESION_GATE_PATH": None}  # these tests must not depend on models/lesion_gate.tflite


def jpeg_bytes(width: int = 120, height: int = 90, color=(180, 110, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


def png_bytes(width: int = 80, height: int = 60) -> bytes:
    rng = np.random.default_rng(2)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def upload(client, data: bytes, path: str = "/api/v1/classify", name: str = "photo.jpg"):
    return client.post(path, data={"image": (io.BytesIO(data), name)})


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]
    return error


def validate(document: dict, schema_name: str, instance: dict) -> None:
    """Validate a response against a schema of the served OpenAPI document.

    Skips the test without jsonschema (a [test] extra), so tests call it after their other
    checks."""
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (a [test] extra)"
    )
    schema = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture()
def openapi(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


# --- classify -------------------------------------------------------------------------------


def test_classify_multipart_returns_every_class_and_screening(client, openapi):
    response = upload(client, jpeg_bytes())
    assert response.status_code == 200
    body = response.get_json()
    assert [s["code"] for s in sorted(body["scores"], key=lambda s: s["code"])] == [
        "akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"
    ]  # fmt: skip
    probabilities = [s["probability"] for s in body["scores"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert body["top"] == body["scores"][0]
    malignant = sum(s["probability"] for s in body["scores"] if s["malignant"])
    assert body["p_malignant"] == pytest.approx(malignant, abs=1e-4)
    expected = "see_dermatologist" if body["p_malignant"] >= 0.3 else "low_concern"
    assert body["triage"]["level"] == expected
    assert body["unsure"] == (body["top"]["probability"] < 0.5)
    assert body["model"] == {"id": "tiny_uint8", "name": "tiny-test-model", "version": "0.0.1-test"}
    assert body["disclaimer"].startswith("Test disclaimer")
    assert body["image"] == {"format": "JPEG", "mode": "RGB", "width": 120, "height": 90}
    assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0
    assert response.headers["Cache-Control"] == "no-store"
    # Without a lesion gate every image is classified.
    assert body["verdict"] == "classified" and body["lesion_check"] is None
    assert body["timing_ms"]["gate"] is None
    validate(openapi, "Classification", body)


def test_classify_raw_body_gives_the_same_scores_as_multipart(client):
    data = png_bytes()
    multipart = upload(client, data).get_json()
    raw = client.post("/api/v1/classify", data=data, content_type="image/png").get_json()
    assert raw["scores"] == multipart["scores"]
    assert raw["image"]["format"] == "PNG"


def test_unsure_threshold_is_configurable(demo_model_path, demo_samples_dir):
    from demo_server import create_app

    app = create_app(
        {"MODEL_PATH": demo_model_path, "UNSURE_BELOW": 0.01, "INTERPRETERS": 1, **NO_GATE}
    )
    body = upload(app.test_client(), jpeg_bytes()).get_json()
    assert body["unsure"] is False and body["unsure_message"] is None
    assert body["unsure_below"] == 0.01


# --- explain --------------------------------------------------------------------------------


def test_explain_returns_grid_and_png_overlay(client, openapi):
    pixels = np.zeros((96, 96, 3), dtype=np.uint8)
    pixels[20:60, 30:70] = (120, 40, 30)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    response = upload(client, out.getvalue(), "/api/v1/explain")
    assert response.status_code == 200
    body = response.get_json()
    assert body["grid_size"] == 7 and len(body["grid"]) == 7
    assert all(len(row) == 7 for row in body["grid"])
    assert body["batched"] is True
    assert body["verdict"] == "classified" and body["lesion_check"] is None
    classify = upload(client, out.getvalue()).get_json()
    assert body["target"]["code"] == classify["top"]["code"]
    prefix = "data:image/png;base64,"
    assert body["heatmap_png"].startswith(prefix)
    overlay = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png"][len(prefix) :])))
    assert overlay.mode == "RGBA"
    validate(openapi, "Explanation", body)


def test_explain_rejects_bad_uploads_like_classify(client):
    assert_error(upload(client, b"not an image", "/api/v1/explain"), 415, "unsupported_image")


# --- model, openapi, health -----------------------------------------------------------------


def test_model_endpoint_reports_card_and_input(client, openapi):
    response = client.get("/api/v1/model")
    assert response.status_code == 200
    body = response.get_json()
    assert body["input"]["height"] == body["input"]["width"] == 64
    assert body["input"]["dtype"] == "uint8" and body["output"]["dtype"] == "uint8"
    assert body["calibration"] == {"temperature": 1.5}
    assert body["triage"] == {"malignant_threshold": 0.3, "by_domain": {}}
    assert body["model_card"]["intended_use"] == "Testing the demo server only."
    assert body["lesion_gate"] == {
        "loaded": False,
        "threshold": None,
        "interpreters": None,
        "image_size": None,
        "file": None,
    }
    assert [label["malignant"] for label in body["labels"]] == [
        True, True, False, False, True, False, False
    ]  # fmt: skip
    validate(openapi, "ModelInfo", body)


def test_healthz_reports_memory(client, openapi):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["interpreters"] == 2
    assert body["lesion_gate"] == {"loaded": False, "threshold": None, "interpreters": None}
    assert body["rss_bytes"] > 1_000_000
    validate(openapi, "Health", body)


def test_openapi_lists_exactly_the_api_routes(app, openapi):
    routes = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") or rule.rule == "/healthz"
    }
    assert set(openapi["paths"]) == routes
    assert openapi["openapi"].startswith("3.")
    assert openapi == openapi_document(ServerConfig.from_mapping(app.config), None, ["tiny_uint8"])


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (b"hello, not an image", 415, "unsupported_image"),
        (jpeg_bytes()[:200], 422, "corrupt_image"),
    ],
)
def test_errors_match_the_openapi_error_schema(client, openapi, data, status, code):
    response = upload(client, data)
    assert_error(response, status, code)
    operation = openapi["paths"]["/api/v1/classify"]["post"]
    assert str(status) in operation["responses"]
    validate(openapi, "Error", response.get_json())


# --- errors ---------------------------------------------------------------------------------


def test_no_image_field(client):
    response = client.post("/api/v1/classify", data={"photo": (io.BytesIO(jpeg_bytes()), "a.jpg")})
    assert "'image'" in assert_error(response, 400, "no_image")["message"]


def test_empty_raw_body(client):
    assert_error(client.post("/api/v1/classify"), 400, "no_image")


def test_empty_file(client):
    assert_error(upload(client, b""), 400, "empty_file")


def test_not_an_image(client):
    message = assert_error(upload(client, b"%PDF-1.4 ..." * 20), 415, "unsupported_image")
    assert "JPEG" in message["message"]


def test_unsupported_image_format(client):
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, format="BMP")
    assert_error(upload(client, out.getvalue()), 415, "unsupported_image")


def test_truncated_jpeg(client):
    data = jpeg_bytes(400, 300)
    assert_error(upload(client, data[: len(data) // 2]), 422, "corrupt_image")


def test_truncated_png(client):
    data = png_bytes(200, 200)
    assert_error(upload(client, data[: len(data) // 2]), 422, "corrupt_image")


def test_request_over_size_limit(demo_model_path):
    from demo_server import create_app

    app = create_app(
        {"MODEL_PATH": demo_model_path, "MAX_CONTENT_LENGTH": 50_000, "INTERPRETERS": 1, **NO_GATE}
    )
    client = app.test_client()
    big = b"\xff" * 60_000
    message = assert_error(upload(client, big), 413, "request_too_large")["message"]
    assert "50,000" in message
    raw = client.post("/api/v1/classify", data=big, content_type="image/jpeg")
    assert_error(raw, 413, "request_too_large")
    assert client.get("/healthz").status_code == 200


def test_pixel_count_over_limit(demo_model_path):
    from demo_server import create_app

    app = create_app(
        {"MODEL_PATH": demo_model_path, "MAX_PIXELS": 10_000, "INTERPRETERS": 1, **NO_GATE}
    )
    response = upload(app.test_client(), png_bytes(101, 100))
    assert "10,100" in assert_error(response, 413, "too_many_pixels")["message"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds no pixel data (a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7_000, 20_000])  # over our 40 MP; over Pillow's own bomb limit
def test_decompression_bomb_is_rejected_before_decoding(client, side):
    assert_error(upload(client, png_header_only(side, side)), 413, "too_many_pixels")


def test_unknown_route_and_wrong_method(client):
    assert_error(client.get("/api/v1/nope"), 404, "not_found")
    assert_error(client.get("/api/v1/classify"), 405, "method_not_allowed")


def test_wrong_method_is_405_naming_the_allowed_ones(client):
    # schemathesis found the JSON 405 without `Allow` (RFC 9110 requires it).
    response = client.put("/api/v1/classify")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in {m.strip() for m in response.headers["Allow"].split(",")}


def test_unexpected_error_is_generic_500_without_details(app, monkeypatch):
    from demo_server.model import Classifier

    def explode(self, pixels):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(Classifier, "predict", explode)
    response = upload(app.test_client(), jpeg_bytes())
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)
    assert error["message"] == "Something went wrong on the server."


def test_pool_exhausted_is_503(demo_model_path):
    from demo_server import create_app

    app = create_app(
        {"MODEL_PATH": demo_model_path, "INTERPRETERS": 1, "POOL_TIMEOUT_S": 0.01, **NO_GATE}
    )
    classifier = default_classifier(app)
    with classifier._pool.lease():
        assert_error(upload(app.test_client(), jpeg_bytes()), 503, "busy")
    assert upload(app.test_client(), jpeg_bytes()).status_code == 200


def test_server_keeps_serving_after_errors(client):
    for data in (b"", b"junk", jpeg_bytes()[:100]):
        assert upload(client, data).status_code in (400, 415, 422)
    assert upload(client, jpeg_bytes()).status_code == 200


# --- pages, samples, headers ----------------------------------------------------------------


def test_index_page(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'accept="image/*"' in html and 'capture="environment"' in html
    assert "not a diagnosis" in html
    assert "Test disclaimer" in html
    assert "/samples/mel_1.jpg" in html and "/samples/nv_1.jpg" in html
    assert "/samples/ATTRIBUTION.md" in html
    assert "notes.txt" not in html
    # The "not a skin-lesion photo" state is in the page, hidden until the API says so.
    assert re.search(r'<div id="not-lesion"[^>]*\bhidden\b', html)
    assert "This does not look like a skin-lesion photo." in html
    assert (
        "<script>" not in html and "onclick" not in html and "http" not in html.split("</head>")[0]
    )


def test_index_without_samples(demo_model_path, tmp_path):
    from demo_server import create_app

    app = create_app(
        {"MODEL_PATH": demo_model_path, "SAMPLES_DIR": tmp_path / "missing", **NO_GATE}
    )
    html = app.test_client().get("/").get_data(as_text=True)
    assert "try a sample" not in html


def test_model_page_shows_the_card(client):
    html = client.get("/model").get_data(as_text=True)
    for text in (
        "Testing the demo server only.",
        "Knows nothing about skin.",
        "Random noise",
        "balanced_accuracy",
        "0.51",
        "recall",
        "Melanoma",
        "temperature 1.5",
        "30%",
    ):
        assert text in html, text
    assert "runs without the lesion gate" in html


def test_model_page_shows_the_uncertainty_of_each_metric(client):
    html = client.get("/model").get_data(as_text=True)
    assert '<td>0.625 <span class="interval">(0.438–0.812)</span></td>' in html
    assert "<td>0.900</td>" in html  # no interval recorded for it, none shown
    assert "95% interval from resampling whole" in html


def test_samples_are_served_only_from_their_folder(client):
    response = client.get("/samples/mel_1.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    attribution = client.get("/samples/ATTRIBUTION.md")
    assert attribution.status_code == 200 and attribution.mimetype == "text/plain"
    for path in (
        "/samples/notes.txt",
        "/samples/missing.jpg",
        "/samples/..%2Fconftest.py",
        "/samples/../demo_server/__init__.py",
    ):
        assert client.get(path).status_code == 404, path


def test_static_assets_are_local(client):
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


@pytest.mark.parametrize("path", ["/", "/model", "/api/v1/model", "/healthz", "/api/v1/nope"])
def test_security_headers(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


def test_sample_captions_use_display_names():
    from demo_server.pages import caption

    names = {"mel": "Melanoma", "nv": "Melanocytic nevus (mole)"}
    assert caption("mel_phone_PAT_233_354_828", names) == "Melanoma (phone)"
    assert caption("nv_dermoscopic_ISIC_0030871", names) == "Melanocytic nevus (mole) (dermoscopic)"
    assert caption("mel_1", names) == "Melanoma"
    assert caption("my_photo", names) == "my photo"


def test_malformed_multipart_is_a_client_error(client):
    for content_type, body in [
        ("multipart/form-data; boundary=xyz", b"garbage"),
        ("multipart/form-data", b"garbage"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="image"',
        ),
    ]:
        response = client.post("/api/v1/classify", data=body, content_type=content_type)
        assert_error(response, 400, "no_image")


def test_uploads_are_never_written_to_disk_or_logged(client, monkeypatch, caplog):
    import tempfile

    import werkzeug.formparser

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for module in (tempfile, werkzeug.formparser):
        for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
            monkeypatch.setattr(module, name, no_disk, raising=False)
    big = png_bytes(700, 700)  # over Werkzeug's 500 KB in-memory threshold
    assert len(big) > 1_000_000
    with caplog.at_level("DEBUG"):
        assert upload(client, big).status_code == 200
        assert upload(client, big, "/api/v1/explain").status_code == 200
        assert upload(client, b"junk").status_code == 415
    # Pillow logs PNG chunk names at DEBUG; nothing else may log, and nothing logs pixels.
    assert not [r for r in caplog.records if not r.name.startswith("PIL.")]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_classify_accepts_phone_formats_with_exif_orientation(client, fmt):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: a portrait phone photo stored landscape
    out = io.BytesIO()
    Image.new("RGB", (80, 40), (150, 90, 70)).save(out, format=fmt, exif=exif.tobytes())
    body = upload(client, out.getvalue()).get_json()
    assert body["image"]["format"] == fmt
    assert (body["image"]["width"], body["image"]["height"]) == (40, 80)


def test_page_assets_work_offline():
    from pathlib import Path

    import demo_server

    package = Path(demo_server.__file__).parent
    external = re.compile(r"""(src|href)=["']?(https?:)?//|url\(|@import|fetch\(["']https?:""")
    for path in [*package.glob("static/*"), *package.glob("templates/*")]:
        if path.suffix == ".png":  # the app icons: pixels, no addresses
            continue
        text = path.read_text()
        assert not external.search(text), path
        assert "<script>" not in text and " style=" not in text, path
