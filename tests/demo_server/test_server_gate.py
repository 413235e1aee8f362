"""The "not a skin lesion" gate wired into demo_server, with the shipped models/lesion_gate.tflite.

The classifier is the tiny random test model (its answers mean nothing); the gate is the real
one, so lesion photos from sample_images/ must pass it and a cat or a blank page must not.
"""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from demo_server.config import DEFAULT_LESION_GATE_PATH, ServerConfig
from demo_server.extensions import LESION_GATE
from demo_server.model import ModelError

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "models" / "lesion_gate.tflite"
SAMPLES = REPO / "sample_images"
LESIONS = ("nv_dermoscopic_ISIC_0030871.jpg", "mel_phone_PAT_233_354_828.jpg")
NOT_A_LESION_KEYS = {
    "lesion_check",
    "verdict",
    "message",
    "model",
    "image",
    "timing_ms",
    "disclaimer",
}
DIAGNOSIS_KEYS = {"scores", "top", "p_malignant", "triage", "unsure", "unsure_message"}
MESSAGE = (
    "This does not look like a skin-lesion photo. "
    "Take a sharp, close, well-lit photo of one skin spot."
)

needs_gate = pytest.mark.skipif(
    not GATE.is_file(),
    reason=f"the shipped gate {GATE.relative_to(REPO)} is not in the repo "
    "(python -m export.lesion_gate writes it)",
)


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def cat_jpeg() -> bytes:
    skimage_data = pytest.importorskip(
        "skimage.data", reason="scikit-image (its cat photo) is not installed"
    )

    return jpeg(Image.fromarray(skimage_data.chelsea()))


def white_jpeg() -> bytes:
    return jpeg(Image.new("RGB", (640, 480), (255, 255, 255)))


NON_LESIONS = {"cat": cat_jpeg, "white": white_jpeg}


def post(client, path: str, data: bytes, multipart: bool):
    if multipart:
        return client.post(path, data={"image": (io.BytesIO(data), "photo.jpg")})
    return client.post(path, data=data, content_type="image/jpeg")


def jsonschema():
    """The jsonschema module (a [test] extra), or a skip saying so: tests validate last."""
    return pytest.importorskip("jsonschema", reason="jsonschema is not installed (a [test] extra)")


def validate_200(document: dict, path: str, body: dict) -> None:
    """Validate a body against the documented 200 schema of an upload operation."""
    operation = document["paths"][path]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema().validate(body, {**document, **schema}, cls=jsonschema().Draft202012Validator)


def validate(document: dict, schema_name: str, body: dict) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema().validate(body, schema, cls=jsonschema().Draft202012Validator)


@pytest.fixture(scope="module")
def gated_app(demo_model_path):
    from demo_server import create_app

    return create_app(
        {
            "TESTING": True,
            "MODEL_PATH": demo_model_path,
            "SAMPLES_DIR": SAMPLES,
            "INTERPRETERS": 2,
            "LESION_GATE_PATH": GATE,
        }
    )


@pytest.fixture()
def client(gated_app):
    return gated_app.test_client()


@pytest.fixture(scope="module")
def document(gated_app) -> dict:
    return gated_app.test_client().get("/api/v1/openapi.json").get_json()


# --- classify / explain ---------------------------------------------------------------------


@needs_gate
@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "raw"])
@pytest.mark.parametrize("name", LESIONS)
def test_lesion_photo_is_classified(client, document, name, multipart):
    response = post(client, "/api/v1/classify", (SAMPLES / name).read_bytes(), multipart)
    assert response.status_code == 200
    body = response.get_json()
    assert body["verdict"] == "classified"
    check = body["lesion_check"]
    assert check["is_lesion"] is True and check["distance"] <= check["threshold"]
    assert len(body["scores"]) == 7 and body["top"]["code"] and body["triage"]["level"]
    assert body["timing_ms"]["gate"] > 0
    assert body["timing_ms"]["total"] >= body["timing_ms"]["gate"] + body["timing_ms"]["inference"]
    validate(document, "Classification", body)
    validate_200(document, "/api/v1/classify", body)


@needs_gate
@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "raw"])
@pytest.mark.parametrize("name", sorted(NON_LESIONS))
def test_non_lesion_gets_no_scores(client, document, name, multipart):
    response = post(client, "/api/v1/classify", NON_LESIONS[name](), multipart)
    assert response.status_code == 200
    body = response.get_json()
    # classify measures the photo check before the gate (explain does not)
    assert set(body) == NOT_A_LESION_KEYS | {"photo_check"} and not DIAGNOSIS_KEYS & set(body)
    assert body["verdict"] == "not_a_lesion" and body["message"] == MESSAGE
    assert ("bright" in body["photo_check"]["reasons"]) == (name == "white")
    check = body["lesion_check"]
    assert check["is_lesion"] is False and check["distance"] > check["threshold"]
    assert body["disclaimer"].startswith("Test disclaimer")
    assert body["image"]["format"] == "JPEG"
    assert set(body["timing_ms"]) == {"decode", "photo_check", "gate", "total"}
    validate(document, "NotALesion", body)
    validate_200(document, "/api/v1/classify", body)


@needs_gate
@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "raw"])
def test_explain_on_a_non_lesion_is_the_same_200_answer_without_heatmap(
    client, document, multipart
):
    data = cat_jpeg()
    body = post(client, "/api/v1/explain", data, multipart).get_json()
    assert set(body) == NOT_A_LESION_KEYS and body["verdict"] == "not_a_lesion"
    assert "heatmap_png" not in body and "grid" not in body and "target" not in body
    classified = post(client, "/api/v1/classify", data, multipart).get_json()
    assert body["lesion_check"] == classified["lesion_check"]
    validate_200(document, "/api/v1/explain", body)


@needs_gate
def test_explain_on_a_lesion_has_the_heatmap(client, document):
    body = post(client, "/api/v1/explain", (SAMPLES / LESIONS[0]).read_bytes(), True).get_json()
    assert body["verdict"] == "classified" and body["lesion_check"]["is_lesion"] is True
    assert body["heatmap_png"].startswith("data:image/png;base64,")
    validate(document, "Explanation", body)


@needs_gate
def test_gate_pool_exhausted_is_503(demo_model_path):
    from demo_server import create_app

    app = create_app(
        {
            "MODEL_PATH": demo_model_path,
            "INTERPRETERS": 1,
            "POOL_TIMEOUT_S": 0.01,
            "LESION_GATE_PATH": GATE,
        }
    )
    gate = app.extensions[LESION_GATE]
    assert gate.pool_size == 1
    with gate._pool.lease():
        response = post(app.test_client(), "/api/v1/classify", white_jpeg(), True)
        assert response.status_code == 503 and response.get_json()["error"]["code"] == "busy"
    assert post(app.test_client(), "/api/v1/classify", white_jpeg(), True).status_code == 200


# --- model, health, pages -------------------------------------------------------------------


@needs_gate
def test_model_and_health_report_the_gate(client, gated_app, document):
    gate = gated_app.extensions[LESION_GATE]
    model = client.get("/api/v1/model").get_json()
    info = model["lesion_gate"]
    assert info["loaded"] is True and info["threshold"] == pytest.approx(gate.threshold)
    assert info["interpreters"] == 2 and info["image_size"] == 128
    assert info["file"]["name"] == "lesion_gate.tflite"
    assert info["file"]["size_bytes"] == GATE.stat().st_size
    health = client.get("/healthz").get_json()
    assert health["lesion_gate"] == {
        "loaded": True,
        "threshold": gate.threshold,
        "interpreters": 2,
    }
    validate(document, "ModelInfo", model)
    validate(document, "Health", health)


@needs_gate
def test_pages_explain_the_gate(client, gated_app):
    html = client.get("/model").get_data(as_text=True)
    threshold = f"{gated_app.extensions[LESION_GATE].threshold:.2f}"
    assert "Lesion gate" in html and f"above {threshold}" in html
    assert "This does not look like a skin-lesion photo." in html
    index = client.get("/").get_data(as_text=True)
    assert 'id="not-lesion"' in index and 'id="diagnosis"' in index
    assert "<script>" not in index


# --- configuration --------------------------------------------------------------------------


def test_config_default_and_explicit_none(tmp_path):
    expected = DEFAULT_LESION_GATE_PATH if DEFAULT_LESION_GATE_PATH.is_file() else None
    assert ServerConfig().lesion_gate_path == expected
    assert ServerConfig.from_mapping({}).lesion_gate_path == expected
    for off in (None, False, ""):
        assert ServerConfig.from_mapping({"LESION_GATE_PATH": off}).lesion_gate_path is None
    given = ServerConfig.from_mapping({"LESION_GATE_PATH": str(tmp_path / "g.tflite")})
    assert given.lesion_gate_path == tmp_path / "g.tflite"
    # A disabled gate survives the round trip through a Flask config (as __main__ does it).
    disabled = ServerConfig(lesion_gate_path=None)
    assert ServerConfig.from_mapping(disabled.flask_config()).lesion_gate_path is None


def test_unusable_gate_path_is_a_model_error(demo_model_path, tmp_path):
    from demo_server import create_app

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    for path, reason in [
        (tmp_path / "missing.tflite", "cannot read gate file"),
        (junk, "lesion_gate.json"),
        (demo_model_path, "lesion_gate.json"),  # a real .tflite, but not a gate
    ]:
        with pytest.raises(ModelError, match="lesion gate") as excinfo:
            create_app({"MODEL_PATH": demo_model_path, "LESION_GATE_PATH": path})
        assert reason in str(excinfo.value)


# --- the page in a phone-sized browser (skipped without Playwright / chromium) ---------------

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.slow  # a browser: seconds
@needs_gate
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is missing")
def test_page_shows_not_a_lesion_instead_of_bars(gated_app, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    import waitress

    server = waitress.create_server(gated_app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(cat_jpeg())
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--headless"]
            )
            page = browser.new_page(viewport={"width": 390, "height": 844})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(f"http://127.0.0.1:{server.effective_port}/")
            page.set_input_files("#gallery", str(cat))
            page.locator("#not-lesion").wait_for(state="visible", timeout=15_000)
            assert MESSAGE in page.locator("#not-lesion").inner_text()
            assert not page.locator("#diagnosis").is_visible()
            assert not page.locator("#triage").is_visible()
            assert "skin-lesion" in page.locator("#status").inner_text()
            (REPO / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(
                path=str(REPO / "test-artifacts" / "demo_server_not_a_lesion.png"), full_page=True
            )
            # Then a real lesion photo: bars and triage again, the notice gone.
            page.locator(".sample").first.click()
            page.locator("#scores li").first.wait_for(state="visible", timeout=15_000)
            assert page.locator("#not-lesion").is_hidden()
            assert page.locator("#scores li").count() == 7
            assert not problems, problems
            browser.close()
    finally:
        server.close()
        thread.join(5)
