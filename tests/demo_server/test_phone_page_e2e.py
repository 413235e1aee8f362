"""The page on a phone (Debian's chromium, phone viewports 320 to 430 px): it fits the screen
without sideways scrolling, axe-core finds no serious or critical accessibility violation,
with the shipped classifiers to choose from, the gate and the segmenter, before and after an
on-device answer; chromium finds it installable (its manifest parsed without errors); and a
.tflite picked from disk is benchmarked in the page without any request carrying it.

Needs chromium, Playwright for Python and `npm ci --prefix web` (LiteRT.js and axe-core);
skipped without them, except in CI (SKINLESION_REQUIRE_DATA=1 or CI=true).
"""

from __future__ import annotations

import hashlib

import pytest
from ondevice_support import (
    CHROMIUM_ARGS,
    PHONE,
    SMALL,
    Server,
    assert_image_never_left,
    browser_ready,
    chromium,
    horizontal_overflow,
    launched_browser,
    next_result,
    phone_at,
    serious_accessibility_violations,
    shipped_config,
    wait_ready,
    watch_requests,
)

pytestmark = pytest.mark.slow  # a browser and the shipped models: seconds per test

WIDTHS = (320, 360, 390, 430)  # from the smallest phones in use to the largest


@pytest.fixture(scope="module")
def lab():
    """The server as the CLI runs it (the small classifier the page's default, the ensemble to
    choose, the gate and the segmenter) and a browser."""
    browser_ready()
    served = Server(shipped_config())
    try:
        with launched_browser() as browser:
            yield served, browser
    finally:
        served.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_fits_the_phone_and_axe_finds_nothing_serious(lab, width):
    server, browser = lab
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


def test_chromium_finds_the_page_installable(lab, tmp_path):
    """Chromium's own verdict (DevTools Page.getInstallabilityErrors) once the service worker
    controls the page. A profile on disk: an incognito context is never installable."""
    server, browser = lab
    context = browser.browser_type.launch_persistent_context(
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


def picked_benchmark(page, path) -> dict | None:
    """Pick `path` in the benchmark's file input: the page's figures (None after an error)."""
    count = int(page.locator("#bench-file-result").get_attribute("data-count") or 0)
    page.set_input_files("#bench-file", str(path))
    page.locator(f"#bench-file-result[data-count='{count + 1}']").wait_for(
        state="attached", timeout=120_000
    )
    return page.evaluate("() => window.skinSpotCheck.lastPickedBenchmark")


def test_a_model_picked_from_disk_is_benchmarked_and_never_sent(lab, tmp_path, demo_variant_paths):
    """The tiny test model and the small shipped file, picked from disk, get p50 / p90, load
    time and memory (and export.bench's figures where the server knows the file); a file that
    is no model and one with an int8 input get a clear message; no request carries a file."""
    server, browser = lab
    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_bytes(b"not a model at all")
    context = browser.new_context(**phone_at(390))
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        wait_ready(page)
        requests = watch_requests(page)
        server.log.seen.clear()
        for path, native in (
            (demo_variant_paths["uint8"], "No native figures"),
            (SMALL, "Native LiteRT"),
        ):
            result = picked_benchmark(page, path)
            data = path.read_bytes()
            assert result["name"] == path.name and result["size_bytes"] == len(data)
            assert result["sha256"] == hashlib.sha256(data).hexdigest()
            assert result["runs"] == 50 and result["warmup"] == 10
            assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"]
            assert result["load_ms"] > 0 and result["memory"]["wasm_mb"] > 0
            text = page.locator("#bench-file-result").inner_text()
            assert path.name in text and "p90" in text and "WebAssembly memory" in text
            assert native in page.locator("#bench-file-native").inner_text()
        assert "skin_lesion_small_int8.tflite" in page.locator("#bench-file-native").inner_text()
        again = picked_benchmark(page, demo_variant_paths["uint8"])  # kept or loaded again
        assert (
            again["sha256"] == hashlib.sha256(demo_variant_paths["uint8"].read_bytes()).hexdigest()
        )
        assert picked_benchmark(page, not_a_model) is None
        assert "not a TFLite model" in page.locator("#bench-file-result").inner_text()
        assert picked_benchmark(page, demo_variant_paths["int8"]) is None
        assert "cannot feed its int8 input" in page.locator("#bench-file-result").inner_text()
        assert_image_never_left(requests, server)
        assert not [
            url for _, url, _ in requests if ".tflite" in url and "/ondevice/models/" not in url
        ]
    finally:
        context.close()
