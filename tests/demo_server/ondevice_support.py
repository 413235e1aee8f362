"""What the on-device tests need from the machine (Node, LiteRT.js installed in web/, chromium
and Playwright), and what the browser tests share: the server in a thread, the phone page,
waiting for its answers, and the measured figures they keep.

Without the tools the tests skip with the reason, except in CI (`SKINLESION_REQUIRE_DATA=1`, as
.ci/run sets, or `CI=true`), where a missing piece is a failure: CI installs them
(`npm ci --prefix web`) and must not pass without running these tests.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import waitress

from contract.tensors import TensorSpec
from demo_server import create_app

try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - the [test] extra installs it
    sync_api = None

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
HARNESS = WEB / "contract_harness.mjs"
ARTIFACTS = REPO / "test-artifacts"
LOAD_TIMEOUT_MS = 90_000
MEASURED: dict[str, object] = {}
CHROMIUM = "/usr/bin/chromium"
# Debian's chromium as root, headless, without the background traffic this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--headless",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def required() -> bool:
    """True in CI, where a missing tool or asset fails the test instead of skipping it."""
    return (
        os.environ.get("SKINLESION_REQUIRE_DATA") == "1"
        or os.environ.get("CI", "").lower() == "true"
    )


def skip_or_fail(reason: str) -> None:
    if required():
        pytest.fail(reason + " (CI requires it: SKINLESION_REQUIRE_DATA=1 or CI=true)")
    pytest.skip(reason)


def node() -> str:
    """The node executable, or skip (fail in CI)."""
    path = shutil.which("node")
    if path is None:
        skip_or_fail("node is not installed (the on-device modules are tested with Node >= 20)")
    return path


def run_harness(tmp_path: Path, request: dict) -> dict:
    """What the page's modules answer, run in Node by web/contract_harness.mjs, to `request`."""
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run(
        [node(), str(HARNESS), str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def spec_json(spec: TensorSpec) -> dict:
    """A tensor's details as modelfile.mjs gives them."""
    return {
        "shape": list(spec.shape),
        "dtype": spec.dtype.name,
        "scale": spec.scale,
        "zeroPoint": spec.zero_point,
    }


def web_assets() -> Path:
    """web/, with the LiteRT.js version package.json pins installed, or skip (fail in CI)."""
    try:
        wanted = json.loads((WEB / "package.json").read_text())["dependencies"]["@litertjs/core"]
        core = WEB / "node_modules" / "@litertjs" / "core"
        installed = json.loads((core / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        skip_or_fail("LiteRT.js is not installed in web/ (run: npm ci --prefix web)")
    if installed != wanted:
        skip_or_fail(f"web/ has @litertjs/core {installed}, package.json pins {wanted}: npm ci")
    return WEB


def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


def browser_ready() -> None:
    """Playwright, chromium and LiteRT.js in web/, or skip (fail in CI)."""
    if sync_api is None:
        skip_or_fail("Playwright for Python is not installed (pip install playwright)")
    web_assets()
    chromium()


@contextmanager
def launched_browser() -> Iterator[object]:
    """Headless chromium, driven by Playwright."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def phone_page(browser) -> Iterator[tuple[object, list[str]]]:
    """A fresh phone-sized context (empty caches, no service worker): its page, and the console
    errors and page errors it collects."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        yield page, problems
    finally:
        context.close()


def record(key: str, value: object) -> None:
    """Keep a measured figure for test-artifacts/ondevice.json (written after each test)."""
    MEASURED[key] = value
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "ondevice.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps(old | MEASURED, indent=2) + "\n")


class RequestLog:
    """WSGI middleware: method, path and body size of every request that reaches the server."""

    def __init__(self, app):
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.seen.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), length))
        return self.app(environ, start_response)


class Server:
    """The demo server on a free port, in a thread, with its request log."""

    def __init__(self, config: dict):
        self.app = create_app({"INTERPRETERS": 2, **config})
        self.log = RequestLog(self.app.wsgi_app)
        self.app.wsgi_app = self.log
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=0, threads=6)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)

    def classify(self, data: bytes, fields: dict | None = None) -> dict:
        """The API's answer for these bytes (through the app itself, not the browser)."""
        form = {"image": (io.BytesIO(data), "photo"), **(fields or {})}
        response = self.app.test_client().post("/api/v1/classify", data=form)
        assert response.status_code == 200, response.get_json()
        return response.get_json()


def wait_ready(page) -> None:
    page.locator("#device-status", has_text="Model ready").wait_for(timeout=LOAD_TIMEOUT_MS)


def next_result(page, action, timeout_ms: int = LOAD_TIMEOUT_MS) -> dict:
    """Do `action` and return the next answer the page draws."""
    count = int(page.locator("#result").get_attribute("data-count") or 0)
    action()
    page.locator(f"#result[data-count='{count + 1}']").wait_for(
        state="attached", timeout=timeout_ms
    )
    return page.evaluate("() => window.skinSpotCheck.lastResult")


def assert_image_never_left(requests: list, server: Server) -> None:
    """Only GETs left the browser, none to the API, and the server saw no upload."""
    assert all(method == "GET" and not body for method, _, body in requests), requests
    assert not [url for _, url, _ in requests if "/api/" in url]
    assert all(method == "GET" for method, _, _ in server.log.seen), server.log.seen
    assert not [path for _, path, _ in server.log.seen if path.startswith("/api/")]


def watch_requests(page) -> list:
    """Every network request of the page's context (its service worker's included): method,
    URL, body. blob: and data: URLs (the photo shown in the page) are not network requests."""
    requests: list = []

    def seen(request) -> None:
        if request.url.startswith(("http:", "https:", "ws:", "wss:")):
            requests.append((request.method, request.url, request.post_data_buffer))

    page.context.on("request", seen)
    return requests


MODELS = REPO / "models"
SMALL = MODELS / "small" / "skin_lesion_small_int8.tflite"


def shipped_config() -> dict:
    """The server's config as `python -m demo_server` runs it from the checkout: the shipped
    classifier, the small one (the page's default), the gate, the segmenter and the samples;
    skip (fail in CI) when models/ lacks one."""
    files = {
        "MODEL_PATH": MODELS / "skin_lesion_int8_mixed.tflite",
        "LESION_GATE_PATH": MODELS / "lesion_gate.tflite",
        "SEGMENTER_PATH": MODELS / "lesion_segmenter.tflite",
    }
    missing = [path.name for path in (*files.values(), SMALL) if not path.is_file()]
    if missing:
        skip_or_fail(f"models/ lacks {missing}")
    return {
        **files,
        "MORE_MODEL_PATHS": (SMALL,),
        "PAGE_MODEL": SMALL.stem,
        "SAMPLES_DIR": REPO / "sample_images",
    }


AXE = WEB / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def phone_at(width: int) -> dict:
    """The phone context options at another viewport width (same height, touch, 2x pixels)."""
    return {**PHONE, "viewport": {"width": width, "height": PHONE["viewport"]["height"]}}


def horizontal_overflow(page) -> dict:
    """How much wider than the viewport the page is, and the elements that stick out."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [...document.querySelectorAll("body *")]
            .filter((e) => e.getBoundingClientRect().right > width + 0.5)
            .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : ""));
          return { excess: document.documentElement.scrollWidth - width, elements: out };
        }"""
    )


def serious_accessibility_violations(page) -> list[dict]:
    """axe-core (pinned in web/package-lock.json) run in the page: its serious and critical
    violations, each with the first nodes it names."""
    if not AXE.is_file():
        skip_or_fail("axe-core is not installed in web/ (run: npm ci --prefix web)")
    page.evaluate(AXE.read_text())  # evaluated over CDP: the page's CSP does not apply
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in violations
        if v["impact"] in SERIOUS
    ]
