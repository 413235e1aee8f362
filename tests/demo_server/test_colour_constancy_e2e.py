"""Colour constancy in a real browser (issue 32, lever 3b): a model whose card names the step
gets, on the device, the input bytes the server feeds it. Needs what test_ondevice_e2e.py
needs (chromium, Playwright, `npm ci --prefix web`); skipped without them, except in CI."""

from __future__ import annotations

import numpy as np
import pytest
from ondevice_support import (
    Server,
    browser_ready,
    launched_browser,
    next_result,
    phone_page,
    wait_ready,
)

from contract.colour_constancy import SHADES_OF_GREY_P6
from contract.images import resize_to_input
from demo_server.images import decode_upload
from demo_server.model import Classifier

pytestmark = pytest.mark.slow  # a browser: seconds


def test_the_device_feeds_the_corrected_pixels_the_server_feeds(with_colour_step, demo_samples_dir):
    browser_ready()
    model = with_colour_step(SHADES_OF_GREY_P6)
    server = Server(
        {"MODEL_PATH": model, "SAMPLES_DIR": demo_samples_dir, "LESION_GATE_PATH": None}
    )
    try:
        with launched_browser() as browser, phone_page(browser) as (page, problems):
            page.goto(server.url + "/")
            wait_ready(page)
            device = next_result(page, lambda: page.locator(".sample").first.tap())
            assert device["mode"] == "device"
            name = page.evaluate("() => window.skinSpotCheck.device().meta.colourConstancy")
            fed = page.evaluate("() => Array.from(window.skinSpotCheck.device().lastInput)")
            assert not problems, problems
    finally:
        server.close()
    assert name == SHADES_OF_GREY_P6
    classifier = Classifier.from_file(model, interpreters=1)
    sample = sorted(demo_samples_dir.glob("*.jpg"))[0]  # the first sample the page shows
    image = decode_upload(sample.read_bytes(), 10**7).image
    served = classifier.to_pixels(image)
    assert np.array_equal(np.array(fed, np.uint8).reshape(served.shape), served)
    meta = classifier.metadata
    assert not np.array_equal(served, resize_to_input(image, meta.input_height, meta.input_width))
