"""The page on a phone (Debian's chromium, phone viewports 320 to 430 px): it fits the screen
without sideways scrolling, axe-core finds no serious or critical accessibility violation,
with the shipped classifiers to choose from, the gate and the segmenter, before and after an
on-device answer; and chromium finds it installable (its manifest parsed without errors).

Needs chromium, Playwright for Python and `npm ci --prefix web` (LiteRT.js and axe-core);
skipped without them, except in CI (SKINLESION_REQUIRE_DATA=1 or CI=true).
"""

from __future__ import annotations

import pytest
from ondevice_support import (
    CHROMIUM_ARGS,
    PHONE,
    REPO,
    Server,
    browser_ready,
    chromium,
    horizontal_overflow,
    launched_browser,
    next_result,
    phone_at,
    serious_accessibility_violations,
    skip_or_fail,
    sync_api,
    wait_ready,
)

pytestmark = pytest.mark.slow  # a browser and the shipped models: seconds per test

MODELS = REPO / "models"
FILES = {
    "MODEL_PATH": MODELS / "skin_lesion_int8_mixed.tflite",
    "LESION_GATE_PATH": MODELS / "lesion_gate.tflite",
    "SEGMENTER_PATH": MODELS / "lesion_segmenter.tflite",
}
SMALL = MODELS / "small" / "skin_lesion_small_int8.tflite"
WIDTHS = (320, 360, 390, 430)  # from the smallest phones in use to the largest


@pytest.fixture(scope="module")
def server():
    """The shipped classifier with the small one to choose, the gate and the segmenter."""
    browser_ready()
    missing = [path.name for path in (*FILES.values(), SMALL) if not path.is_file()]
    if missing:
        skip_or_fail(f"models/ lacks {missing}")
    served = Server({**FILES, "MORE_MODEL_PATHS": (SMALL,), "SAMPLES_DIR": REPO / "sample_images"})
    yield served
    served.close()


@pytest.fixture(scope="module")
def browser(server):
    with launched_browser() as browser:
        yield browser


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_fits_the_phone_and_axe_finds_nothing_serious(server, browser, width):
    context = browser.new_context(**phone_at(width))
    try:
        page = context.new_page()
        page.goto(server.url + "/model")
        assert horizontal_overflow(page)["excess"] <= 0, horizontal_overflow(page)
        assert not serious_accessibility_violations(page)
        page.goto(server.url + "/")
        assert page.locator("#model-choice option").count() == 2
        assert horizontal_overflow(page)["excess"] <= 0, horizontal_overflow(page)
        wait_ready(page)
        page.locator("#answers summary").tap()
        next_result(page, lambda: page.locator(".sample").first.tap())
        assert horizontal_overflow(page)["excess"] <= 0, horizontal_overflow(page)
        assert not serious_accessibility_violations(page)
    finally:
        context.close()


def test_chromium_finds_the_page_installable(server, tmp_path):
    """Chromium's own verdict (DevTools Page.getInstallabilityErrors) once the service worker
    controls the page. A profile on disk: an incognito context is never installable."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=chromium(), args=CHROMIUM_ARGS, **PHONE
        )
        try:
            page = context.new_page()
            page.goto(server.url + "/")
            wait_ready(page)
            page.locator("#device-status", has_text="works offline").wait_for(timeout=30_000)
            devtools = context.new_cdp_session(page)
            manifest = devtools.send("Page.getAppManifest")
            assert manifest["url"] == server.url + "/manifest.webmanifest"
            assert manifest["errors"] == []
            assert manifest["manifest"]["display"] == "kStandalone"
            assert devtools.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        finally:
            context.close()
