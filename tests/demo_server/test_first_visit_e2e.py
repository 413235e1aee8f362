"""A first visit on a phone: the bytes moved before the first on-device result, and the time to
it. A fresh profile opens the page (no service worker: every request is the page's own, so all
are counted) and taps the first sample as soon as the page has loaded.

A measurement, run when asked for, on the loopback or on an emulated 4G link (Chromium's
network emulation: 9 Mbit/s down, 1.5 Mbit/s up, 60 ms), with the byte budgets checked:
`SKINLESION_FIRST_VISIT_LINK=4g python -m pytest -q tests/demo_server/test_first_visit_e2e.py`
(or `=loopback`).
Not part of the default run: about one visit in ten taps the first sample and draws no answer
within minutes (seen loaded and idle, with and without throttling; issue 36 keeps it open), and
a test that fails by chance is no test. The figures go to test-artifacts/ondevice.json
("first_visit"); docs/on_device.md quotes them. Needs chromium, Playwright and `npm ci --prefix
web`.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlparse

import pytest
from ondevice_support import (
    PHONE,
    Server,
    browser_ready,
    launched_browser,
    record,
    shipped_config,
)

SLOW_LINK_MS = 300_000  # 37 MB at 9 Mbit/s take 33 s; a loaded machine adds its share
LINKS = {
    "loopback": None,
    "4g": {
        "offline": False,
        "latency": 60,
        "downloadThroughput": 9e6 / 8,
        "uploadThroughput": 1.5e6 / 8,
    }
}
LINK = os.environ.get("SKINLESION_FIRST_VISIT_LINK", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LINK, reason="a measurement: set SKINLESION_FIRST_VISIT_LINK"),
]


# The page drew an answer, or says why it could not.
ANSWER_OR_ERROR = "() => document.querySelector('#result').dataset.count || \
document.querySelector('#status.error')"


def kind(url: str) -> str:
    """What a request fetched, for the table of where the bytes go."""
    path = urlparse(url).path
    if path.startswith("/ondevice/models/"):
        return path.rsplit("/", 1)[1].removesuffix(".tflite")
    if path.endswith(".wasm"):
        return "webassembly"
    if path.startswith("/ondevice/lib/"):
        return "runtime javascript"
    if path.startswith("/samples/"):
        return "sample images"
    return "page, styles, scripts, icons"


def first_visit(browser, url: str, link: dict | None) -> dict:
    """Bytes received (CDP's encodedDataLength: headers and bodies as they came) by kind, up
    to the first on-device result, and the seconds from navigation to it."""
    context = browser.new_context(**PHONE, service_workers="block")
    try:
        page = context.new_page()
        devtools = context.new_cdp_session(page)
        devtools.send("Network.enable")
        if link:
            devtools.send("Network.emulateNetworkConditions", link)
        urls: dict[str, str] = {}
        received: dict[str, int] = {}
        devtools.on(
            "Network.responseReceived",
            lambda e: urls.__setitem__(e["requestId"], e["response"]["url"]),
        )
        devtools.on(
            "Network.loadingFinished",
            lambda e: received.__setitem__(e["requestId"], int(e["encodedDataLength"])),
        )
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        start = time.perf_counter()
        page.goto(url)
        page.locator(".sample").first.tap()
        page.wait_for_function(ANSWER_OR_ERROR, timeout=SLOW_LINK_MS)
        seconds = time.perf_counter() - start
        result = page.evaluate("() => window.skinSpotCheck.lastResult")
        shown = [
            page.locator(f"#{i}").inner_text() for i in ("status", "device-status", "mode-note")
        ]
        assert result and result["mode"] == "device", (shown, problems)
        by_kind: dict[str, int] = {}
        for request_id, size in dict(received).items():
            name = kind(urls.get(request_id, ""))
            by_kind[name] = by_kind.get(name, 0) + size
        return {
            "bytes": sum(by_kind.values()),
            "bytes_by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            "seconds_to_first_result": round(seconds, 2),
            "model": result["model"],
            "timing_ms": result["timing_ms"],
        }
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser():
    browser_ready()
    shipped_config()  # skip (fail in CI) before starting a browser when a model is missing
    with launched_browser() as browser:
        yield browser


# Bytes before the first result, measured (docs/on_device.md) and rounded up: what the server
# sent before this issue (37.0 MB), with gzip (26.6 MB), and the page's default on a phone: the
# small classifier, gzip (15.6 MB). The target is 10 MB: the float16 gate alone is
# 8.2 MB of it compressed.
CASES = {
    "uncompressed-ensemble": (0, "?model=skin_lesion_int8_mixed", 38e6),
    "compressed-ensemble": (None, "?model=skin_lesion_int8_mixed", 28e6),
    "page-default": (None, "", 16e6),
}


@pytest.mark.parametrize("case", CASES)
def test_first_visit_bytes_and_time(browser, case):
    if LINK not in LINKS:
        pytest.fail(f"SKINLESION_FIRST_VISIT_LINK={LINK!r}: one of {sorted(LINKS)}, or unset")
    gzip_cache_bytes, query, budget = CASES[case]
    server = Server({**shipped_config(), "GZIP_CACHE_BYTES": gzip_cache_bytes})
    try:
        visit = first_visit(browser, server.url + "/" + query, LINKS.get(LINK))
    finally:
        server.close()
    visit["load_average_1min"] = round(os.getloadavg()[0], 2)
    record(f"first_visit_{LINK}_{case}", visit)
    assert visit["bytes"] <= budget, visit
    if gzip_cache_bytes is None:  # the runtime's WebAssembly: 9.45 MB, about 2.9 gzipped
        assert visit["bytes_by_kind"]["webassembly"] < 3.5e6, visit
