"""A first visit on a phone: a fresh profile opens the page (no service worker: every request is
the page's own, so all are counted) and taps the first sample as soon as the page has loaded.

In the default run: a tap before the model has loaded always draws an answer. Until issue 36's
fix about one such visit in ten never did: when the tapped photo was ready before the page had
imported ondevice.mjs, the check waited for the service worker to become ready, and a blocked
(or failed) worker never does. The test repeats the visit, half of the times with ondevice.mjs
held back by the server so that the tap always comes first.

A measurement, run when asked for, on the loopback or on an emulated 4G link (Chromium's
network emulation: 9 Mbit/s down, 1.5 Mbit/s up, 60 ms): the bytes moved before the first
on-device result and the time to it, with the byte budgets checked:
`SKINLESION_FIRST_VISIT_LINK=4g python -m pytest -q tests/demo_server/test_first_visit_e2e.py`
(or `=loopback`). The figures go to test-artifacts/ondevice.json ("first_visit");
docs/on_device.md quotes them. Needs chromium, Playwright and `npm ci --prefix web`.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlparse

import pytest
from ondevice_support import (
    LOAD_TIMEOUT_MS,
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
    },
}
LINK = os.environ.get("SKINLESION_FIRST_VISIT_LINK", "")
pytestmark = pytest.mark.slow


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


def shown(page) -> list[str]:
    """The page's status lines: the check's, the model's, the mode's."""
    return [page.locator(f"#{i}").inner_text() for i in ("status", "device-status", "mode-note")]


def first_visit(browser, url: str, link: dict | None) -> dict:
    """Bytes received (CDP's encodedDataLength: headers and bodies as they came) by kind, up
    to the first on-device result, the seconds from navigation to it, and whether the page
    had its on-device model object when tapped."""
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
        model_object_at_tap = page.evaluate("() => Boolean(window.skinSpotCheck.device())")
        page.locator(".sample").first.tap()
        try:
            page.wait_for_function(
                ANSWER_OR_ERROR, timeout=SLOW_LINK_MS if link else LOAD_TIMEOUT_MS
            )
        except Exception as err:  # Playwright's TimeoutError: what the page showed instead
            raise AssertionError(f"no answer: {shown(page)}, {problems}") from err
        seconds = time.perf_counter() - start
        result = page.evaluate("() => window.skinSpotCheck.lastResult")
        assert result and result["mode"] == "device", (shown(page), problems)
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
            "model_object_at_tap": model_object_at_tap,
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
# sends uncompressed (29.6 MB) and with gzip (19.8 MB) for the ensemble, and the page's default
# on a phone, the small classifier with gzip (8.7 MB): the target, 10 MB, is its budget.
CASES = {
    "uncompressed-ensemble": (0, "?model=skin_lesion_int8_mixed", 31e6),
    "compressed-ensemble": (None, "?model=skin_lesion_int8_mixed", 21e6),
    "page-default": (None, "", 10e6),
}


@pytest.mark.skipif(not LINK, reason="a measurement: set SKINLESION_FIRST_VISIT_LINK")
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


class HeldModule:
    """WSGI middleware: the page's on-device module arrives `seconds` late (0: on time), so a
    tap at once has its photo before the page has a model object to load."""

    def __init__(self, app, seconds: float = 0.0):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").endswith("/ondevice.mjs"):
            time.sleep(self.seconds)
        return self.app(environ, start_response)


# Half held: the old hang took every held visit, and one natural visit in ten at most.
# SKINLESION_FIRST_VISITS=N repeats it N times (docs/on_device.md's counts).
VISITS = int(os.environ.get("SKINLESION_FIRST_VISITS", "12"))
HOLD_S = 1.5


def test_a_tap_while_the_model_loads_always_draws_an_answer(browser):
    """Fresh profiles, service workers blocked (their `ready` never settles), loopback: the
    first sample, tapped as soon as the page has loaded, draws an on-device answer on every
    visit, those whose tap comes before the page has its model object included."""
    server = Server(shipped_config())
    held = HeldModule(server.app.wsgi_app)
    server.app.wsgi_app = held
    try:
        for n in range(VISITS):
            held.seconds = HOLD_S if n % 2 else 0.0
            visit = first_visit(browser, server.url + "/", None)  # fails on no answer
            if held.seconds:  # the order the hang needed, or this visit tested nothing
                assert not visit["model_object_at_tap"], (n, visit)
    finally:
        server.close()
