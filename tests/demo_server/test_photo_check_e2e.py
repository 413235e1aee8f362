"""The photo check and the spot history in a real browser (Debian's chromium, phone viewport),
with the models `python -m demo_server` serves (classifier, gate, segmenter).

- A blurred and a darkened copy of a sample (made here) get their retake messages on the
  device, before any verdict, and the same `photo_check` from the API; "Check anyway" shows
  the result.
- Two saved checks of one spot survive a reload with the server stopped and the browser
  offline, side by side with date, result, thumbnail and the spot's share of the frame; the
  export is a file made in the page; "delete everything" removes them; the layout keeps to
  320 px without sideways scrolling, and axe-core finds no serious violation.
- No request carries a photo or the history.

Needs chromium, Playwright and `npm ci --prefix web`; skipped without them, except in CI.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from ondevice_support import (
    ARTIFACTS,
    REPO,
    Server,
    assert_image_never_left,
    browser_ready,
    horizontal_overflow,
    launched_browser,
    next_result,
    phone_at,
    phone_page,
    serious_accessibility_violations,
    shipped_config,
    wait_ready,
    watch_requests,
)
from PIL import Image, ImageEnhance, ImageFilter

pytestmark = pytest.mark.slow  # a browser and the shipped models

SAMPLE = REPO / "sample_images" / "bcc_phone_PAT_394_1562_579.jpg"
SPOT = "left shoulder"


@pytest.fixture(scope="module")
def server():
    browser_ready()
    server = Server(shipped_config())
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(server):
    with launched_browser() as browser:
        yield browser


def worsened(tmp_path: Path) -> dict[str, Path]:
    """The issue's blurred copy (Gaussian, radius 12) and a darkened one, as JPEG files."""
    image = Image.open(SAMPLE).convert("RGB")
    copies = {
        "blurry": image.filter(ImageFilter.GaussianBlur(12)),
        "dark": ImageEnhance.Brightness(image).enhance(0.25),
    }
    paths = {}
    for reason, copy in copies.items():
        buffer = io.BytesIO()
        copy.save(buffer, "JPEG", quality=92)
        paths[reason] = tmp_path / f"{reason}.jpg"
        paths[reason].write_bytes(buffer.getvalue())
    return paths


def test_blurred_and_dark_copies_are_retaken_on_the_device_and_by_the_api(
    server, browser, tmp_path
):
    copies = worsened(tmp_path)
    api = {reason: server.classify(path.read_bytes()) for reason, path in copies.items()}
    for reason, answer in api.items():
        assert answer["photo_check"]["retake"], reason
        assert reason in answer["photo_check"]["reasons"], reason
    with phone_page(browser) as (page, problems):
        page.goto(server.url + "/")
        wait_ready(page)
        requests = watch_requests(page)
        server.log.seen.clear()
        for reason, path in copies.items():
            device = next_result(page, lambda p=path: page.set_input_files("#gallery", str(p)))
            assert device["mode"] == "device"
            assert device["photo_check"] == api[reason]["photo_check"], reason
            assert device["verdict"] == api[reason]["verdict"], reason
            # The retake comes first, whatever the gate said; no verdict is shown.
            assert page.locator("#retake").is_visible(), reason
            for message in device["photo_check"]["messages"]:
                assert message in page.locator("#retake").inner_text()
            assert not page.locator("#diagnosis").is_visible()
            assert not page.locator("#not-lesion").is_visible()
            assert "Retake suggested" in page.locator("#status").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#result").screenshot(path=str(ARTIFACTS / f"photo_check_{reason}.png"))
            count = int(page.locator("#result").get_attribute("data-count"))
            page.locator("#check-anyway").tap()
            page.locator(f"#result[data-count='{count + 1}']").wait_for(state="attached")
            assert not page.locator("#retake").is_visible()
            shown = "#diagnosis" if device["verdict"] == "classified" else "#not-lesion"
            assert page.locator(shown).is_visible(), reason
        assert_image_never_left(requests, server)
        # Server mode (the photo uploaded, downsized): the API's photo_check, the same card.
        page.goto(server.url + "/?mode=server")
        answer = next_result(page, lambda: page.set_input_files("#gallery", str(copies["blurry"])))
        assert answer["mode"] == "server" and answer["photo_check"]["reasons"] == ["blurry"]
        assert page.locator("#retake").is_visible()
        assert not problems, problems


def history(page) -> list[str]:
    """The saved checks of the spot shown, as the page lists them."""
    return page.locator("#history-checks li").all_inner_texts()


def save(page, spot: str) -> None:
    count = int(page.locator("#history").get_attribute("data-count") or 0)
    page.fill("#spot-name", spot)
    page.locator("#save-check button[type=submit]").tap()
    page.locator(f"#history[data-count='{count + 1}']").wait_for(state="attached")


def test_two_checks_of_a_spot_survive_an_offline_reload_and_are_deleted(browser, tmp_path):
    server = Server(shipped_config())
    context = browser.new_context(**phone_at(320), accept_downloads=True)
    try:
        page = context.new_page()
        requests = watch_requests(page)
        page.goto(server.url + "/")
        wait_ready(page)
        page.locator("#device-status", has_text="works offline").wait_for(timeout=30_000)
        assert page.locator("#history-empty").is_visible()
        assert "never sent" in page.locator("#history").inner_text()
        for i in (0, 3):
            result = next_result(page, lambda i=i: page.locator(".sample").nth(i).tap())
            assert not result["photo_check"]["retake"]
            save(page, SPOT)
        assert len(history(page)) == 2
        assert horizontal_overflow(page)["excess"] <= 0, horizontal_overflow(page)
        assert serious_accessibility_violations(page) == []

        server.close()
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        page.locator("#history-checks li").nth(1).wait_for()
        page.locator("#history").screenshot(path=str(ARTIFACTS / "photo_check_history_320.png"))
        assert page.locator("#history-spot").input_value() == SPOT
        entries = history(page)
        assert len(entries) == 2
        assert all("share of the photo" in entry for entry in entries)
        thumbs = page.locator("#history-checks img")
        assert thumbs.count() == 2
        assert all(
            thumbs.nth(i).get_attribute("src").startswith("data:image/jpeg") for i in range(2)
        )

        with page.expect_download() as download:
            page.locator("#history-export").tap()
        exported = json.loads(Path(download.value.path()).read_text())
        assert [check["spot"] for check in exported["checks"]] == [SPOT, SPOT]
        assert all(check["thumbnail"].startswith("data:image/jpeg") for check in exported["checks"])

        page.locator("#history-delete").tap()
        page.locator("#history-delete-confirm").tap()
        page.locator("#history-empty").wait_for()
        page.reload()
        wait_ready(page)
        page.locator("#history[data-count='1']").wait_for(state="attached")
        assert page.locator("#history-empty").is_visible()
        assert history(page) == []

        # Not one request carried a body (no photo, no history), none went to the API.
        assert all(method == "GET" and not body for method, _, body in requests), requests
        assert not [url for _, url, _ in requests if "/api/" in url]
        assert not [url for _, url, _ in requests if "shoulder" in url]
        assert all(method == "GET" for method, _, _ in server.log.seen), server.log.seen
    finally:
        context.close()
        server.close()
