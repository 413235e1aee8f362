"""End to end on a phone-sized headless Chromium, in server mode: pick a sample or a photo, see
the result.

Needs Debian's chromium (apt) and Playwright for Python (pip); skipped without them.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import waitress
from ondevice_support import CHROMIUM, CHROMIUM_ARGS, phone_page
from PIL import Image

from demo_server import create_app

REPO = Path(__file__).resolve().parents[2]
# These tests check the page's server mode (upload, API answer, "where did it look?"); where the
# browser can, the page defaults to running the model itself (test_ondevice_e2e.py).
SERVER_MODE = "/?mode=server"
ARTIFACTS = REPO / "test-artifacts"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
pytestmark = [
    pytest.mark.slow,  # a browser: seconds per test
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]


def _serve(model_path, samples_dir, **config):
    app = create_app(
        {
            "MODEL_PATH": model_path,
            "SAMPLES_DIR": samples_dir,
            "LESION_GATE_PATH": None,
            **config,
        }
    )
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(5)


@pytest.fixture(scope="module")
def server_url(demo_model_path, demo_samples_dir):
    yield from _serve(demo_model_path, demo_samples_dir)


@pytest.fixture(scope="module")
def answers_server_url(demo_answers_model_path, demo_samples_dir):
    """The same page over the model whose card has questions about the person and the spot."""
    yield from _serve(demo_answers_model_path, demo_samples_dir)


@pytest.fixture(scope="module")
def two_models_url(demo_variant_paths, demo_samples_dir):
    """The uint8 file by default, the float32 one to pick."""
    more = [demo_variant_paths["float32"]]
    yield from _serve(demo_variant_paths["uint8"], demo_samples_dir, MORE_MODEL_PATHS=more)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def phone(browser):
    with phone_page(browser) as page_and_problems:
        yield page_and_problems


def test_tap_a_sample_see_the_result_and_where_it_looked(server_url, phone):
    page, problems = phone
    page.goto(server_url + SERVER_MODE)
    page.locator(".sample").first.tap()
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    assert page.locator("#scores li").count() == 7
    assert page.locator("#triage-message").inner_text().strip()
    assert "Test disclaimer" in page.locator("footer .disclaimer").inner_text()
    assert page.locator("#unsure").is_visible()  # a random model is unsure of everything
    page.locator("#explain").tap()
    page.locator("#explain-note").wait_for(state="visible", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo_server_mobile_result.png"), full_page=True)
    assert not problems, problems


def test_a_model_picked_on_the_page_answers(two_models_url, phone):
    page, problems = phone
    page.goto(two_models_url + SERVER_MODE)
    page.locator("#model-choice").select_option("tiny_float32")
    page.locator(".model-choice button").tap()
    page.wait_for_url("**/?model=tiny_float32")
    page.goto(two_models_url + "/?model=tiny_float32&mode=server")
    with page.expect_response("**/api/v1/classify?model=tiny_float32") as answer:
        page.locator(".sample").first.tap()
    assert answer.value.json()["model"]["id"] == "tiny_float32"
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    assert page.locator("footer a", has_text="About the model").get_attribute("href") == (
        "/model?model=tiny_float32"
    )
    assert not problems, problems


def test_heatmap_is_stretched_over_the_photo(server_url, phone):
    """The overlay covers the photo exactly, as the model stretched the photo (API mocked)."""
    page, problems = phone
    overlay = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 160)).save(overlay, "PNG")
    fake = {
        "max_drop": 0.4,
        "heatmap_png": "data:image/png;base64," + base64.b64encode(overlay.getvalue()).decode(),
    }
    page.route("**/api/v1/explain", lambda route: route.fulfill(json=fake))
    page.goto(server_url + SERVER_MODE)
    page.locator(".sample").nth(1).tap()
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    page.locator("#explain").tap()
    page.locator("#heatmap").wait_for(state="visible", timeout=15_000)
    photo, heatmap = page.locator("#photo").bounding_box(), page.locator("#heatmap").bounding_box()
    assert heatmap == pytest.approx(photo, abs=1)
    assert "Red shows" in page.locator("#explain-note").inner_text()
    assert not problems, problems


def test_the_lesion_outline_is_drawn_over_the_photo(server_url, phone):
    """A segmenter's outline (API answer extended here) is drawn in the photo's own coordinates,
    stretched like the photo; "several spots" shows the request for a closer photo."""
    page, problems = phone

    def with_lesion(route):
        response = route.fetch()
        body = response.json()
        w, h = body["image"]["width"], body["image"]["height"]
        body["lesion"] = {
            "verdict": "several",
            "found": 2,
            "area_fraction": 0.25,
            "box": {"left": w // 4, "top": h // 4, "width": w // 2, "height": h // 2},
            "outline": [[w // 4, h // 4], [3 * w // 4, h // 4], [w // 2, 3 * h // 4]],
            "message": "Several spots: take a closer photo of one.",
            "cropped": False,
        }
        route.fulfill(response=response, json=body)

    page.route("**/api/v1/classify", with_lesion)
    page.goto(server_url + SERVER_MODE)
    page.locator(".sample").first.tap()
    page.locator("#outline").wait_for(state="visible", timeout=15_000)
    # Measured in one go: the page scrolls smoothly to the result meanwhile.
    photo, outline, shape = page.evaluate(
        """() => ["photo", "outline", "outline-shape"].map((id) => {
            const r = document.getElementById(id).getBoundingClientRect();
            return {x: r.x, y: r.y, width: r.width, height: r.height};
        })"""
    )
    assert outline == pytest.approx(photo, abs=1)
    assert shape["width"] == pytest.approx(photo["width"] / 2, abs=3)  # from w/4 to 3w/4
    assert shape["x"] == pytest.approx(photo["x"] + photo["width"] / 4, abs=3)
    assert "closer photo of one" in page.locator("#lesion-note").inner_text()
    page.unroute("**/api/v1/classify")
    page.locator(".sample").nth(1).tap()  # an answer without a lesion clears both
    page.locator("#outline").wait_for(state="hidden", timeout=15_000)
    assert page.locator("#lesion-note").is_hidden()
    assert not problems, problems


def test_pick_a_photo_is_downsized_and_classified(server_url, phone, tmp_path):
    page, problems = phone
    photo = tmp_path / "photo.png"
    pixels = np.random.default_rng(8).integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    page.goto(server_url + SERVER_MODE)
    with page.expect_response("**/api/v1/classify") as response_info:
        page.set_input_files("#gallery", str(photo))
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    # What the server received: the browser re-encoded the photo as a 1024 px JPEG.
    received = response_info.value.json()["image"]
    assert received == {"format": "JPEG", "mode": "RGB", "width": 1024, "height": 768}
    assert not problems, problems


def test_error_is_shown_for_a_non_image(server_url, phone, tmp_path):
    page, _ = phone
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not really a picture")
    page.goto(server_url + SERVER_MODE)
    page.set_input_files("#gallery", str(junk))
    page.locator("#status.error").wait_for(timeout=15_000)
    assert "not an image" in page.locator("#status").inner_text()


def test_model_page(server_url, phone):
    page, problems = phone
    page.goto(server_url + "/model")
    assert "Testing the demo server only." in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo_server_mobile_model.png"), full_page=True)
    assert not problems, problems


def test_answers_change_the_result_and_say_so(answers_server_url, phone):
    page, problems = phone
    page.goto(answers_server_url + SERVER_MODE)
    assert not page.locator("#answer-fields").is_visible()  # collapsed until opened
    assert "not stored" in page.locator("#answers summary").inner_text()
    page.locator("#answers summary").tap()
    page.select_option("select[name=itch]", "yes")
    page.fill("input[name=age]", "80")
    with page.expect_response("**/api/v1/classify") as response_info:
        page.locator(".sample").first.tap()
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    body = response_info.value.json()
    assert body["answers"]["used"] == {"age": "75+", "itch": "yes"}
    # The page states the kind of photo, so triage uses the phone's own threshold.
    assert body["triage"]["threshold_domain"] == "phone"
    note = page.locator("#threshold-note").inner_text()
    assert note == "(a dermatologist is advised from 21%, the threshold for this kind of photo)"
    note = page.locator("#calibration-note")
    assert note.inner_text() == "Calibrated on the photo plus your answers (2 of 9 answered)."
    # The dermatoscope's model asks only age, sex and site: the rest is hidden, not sent, and
    # changing the domain checks the same photo again.
    with page.expect_response("**/api/v1/classify") as response_info:
        page.select_option("#domain", "dermoscopic")
    rechecked = response_info.value.json()
    assert rechecked["answers"]["used"] == {"age": "75+"}
    # This card's answers have no dermoscopic threshold of their own: the one for any kind.
    assert (rechecked["triage"]["threshold_domain"], rechecked["triage"]["threshold"]) == (
        None,
        0.21,
    )
    assert not page.locator("select[name=itch]").is_visible()
    page.locator("#calibration-note", has_text="(1 of 3 answered)").wait_for(timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo_server_mobile_answers.png"), full_page=True)
    assert not problems, problems


def test_no_answers_box_without_answers(server_url, phone):
    page, problems = phone
    page.goto(server_url + SERVER_MODE)
    assert page.locator("#answers").count() == 0
    page.select_option("#domain", "dermoscopic")  # the kind of photo is asked without answers too
    with page.expect_response("**/api/v1/classify") as response_info:
        page.locator(".sample").first.tap()
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    # This card has no per-kind thresholds: the stated kind is accepted, the one for any is used.
    assert response_info.value.json()["triage"]["threshold_domain"] is None
    assert page.locator("#threshold-note").inner_text() == "(a dermatologist is advised from 30%)"
    assert not page.locator("#calibration-note").is_visible()
    assert not problems, problems
