"""What the on-device tests need from the machine: Node, and LiteRT.js installed in web/.

Without them the tests skip with the reason, except in CI (`SKINLESION_REQUIRE_DATA=1`, as
.ci/run sets, or `CI=true`), where a missing piece is a failure: CI installs them
(`npm ci --prefix web`) and must not pass without running these tests.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
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
