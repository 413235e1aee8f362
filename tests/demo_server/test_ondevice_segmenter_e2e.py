"""On-device mode with a lesion segmenter, in a real browser (Debian's chromium, phone
viewport): the page runs gate -> segmenter -> (crop) -> classifier itself and draws the outline
the server's API returns for the same photo, with the photo never leaving the page.

The tiny segmenter fixture (tests/fixtures/segmenter/, "darker than mid-grey is a lesion")
gives predictable spots: one, none, several, a speck beside one, one on the border, a photo
stored sideways; its "crop before classifying" twin checks the crop. With the shipped models in
models/, every sample photo is also compared. Needs chromium, Playwright for Python and
`npm ci --prefix web`; skipped without them, except in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ondevice_support import (
    ARTIFACTS,
    PHONE,
    REPO,
    Server,
    assert_image_never_left,
    browser_ready,
    launched_browser,
    next_result,
    phone_page,
    record,
    wait_ready,
    watch_requests,
)
from test_server_segmentation import CROP_SEGMENTER, SEGMENTER, photo

pytestmark = pytest.mark.slow  # a browser: seconds per test

MODELS = REPO / "models"
SHIPPED = {
    "MODEL_PATH": MODELS / "skin_lesion_int8_mixed.tflite",
    "LESION_GATE_PATH": MODELS / "lesion_gate.tflite",
    "SEGMENTER_PATH": MODELS / "lesion_segmenter.tflite",
}
TOLERANCE = 0.02  # the on-device bound on every probability (docs/on_device.md)
PHOTOS = {
    "one spot.png": {},
    "no spot.png": {"spots": ()},
    "two spots.png": {"spots": ((20, 20, 30, 30), (140, 100, 28, 28))},
    "spot and speck.png": {"spots": ((60, 40, 40, 40), (150, 120, 10, 10))},
    "spot on the border.png": {"spots": ((0, 60, 50, 40),)},
    "sideways.jpg": {"exif_rotate": True},
    "large.jpg": {"spots": ((700, 500, 300, 260),), "size": (1600, 1200), "fmt": "JPEG"},
}


@pytest.fixture(scope="module")
def browser():
    browser_ready()
    with launched_browser() as browser:
        yield browser


@pytest.fixture()
def phone(browser):
    with phone_page(browser) as page_and_problems:
        yield page_and_problems


def tiny_server(model: Path, samples: Path, segmenter: Path) -> Server:
    return Server(
        {
            "MODEL_PATH": model,
            "SAMPLES_DIR": samples,
            "LESION_GATE_PATH": None,
            "SEGMENTER_PATH": segmenter,
        }
    )


def drawn(page) -> dict:
    """What the page shows of the spot: the outline's vertices (when shown) and the note."""
    shown = page.locator("#outline").is_visible()
    points = page.locator("#outline-shape").get_attribute("points") or ""
    vertices = [[float(v) for v in p.split(",")] for p in points.split()]
    message = page.locator("#lesion-message").inner_text().strip()
    return {
        "outline": vertices if shown else [],
        "message": message if page.locator("#lesion-note").is_visible() else None,
    }


def assert_same_answer(device: dict, server: dict, name: str) -> None:
    """The same lesion field to the last digit, and the same classification."""
    assert device["mode"] == "device", name
    assert device["lesion"] == server["lesion"], name
    assert device["image"]["width"] == server["image"]["width"], name
    assert device["image"]["height"] == server["image"]["height"], name
    assert device["top"]["code"] == server["top"]["code"], name
    want = {s["code"]: s["probability"] for s in server["scores"]}
    got = {s["code"]: s["probability"] for s in device["scores"]}
    assert max(abs(got[c] - want[c]) for c in want) <= TOLERANCE, f"{name}: {got} vs {want}"
    assert device["timing_ms"]["segment"] > 0, name


def assert_drawn_as_returned(page, server: dict, name: str) -> None:
    """The outline drawn over the photo is the API's, vertex for vertex, and the note its
    message (a polygon needs three vertices)."""
    lesion = server["lesion"]
    shown = drawn(page)
    assert shown["outline"] == (lesion["outline"] if len(lesion["outline"]) >= 3 else []), name
    assert shown["message"] == lesion["message"], name


def test_outline_and_verdicts_on_the_device_are_the_servers(
    phone, demo_model_path, demo_samples_dir, tmp_path
):
    page, problems = phone
    server = tiny_server(demo_model_path, demo_samples_dir, SEGMENTER)
    try:
        page.goto(server.url + "/")
        wait_ready(page)
        requests = watch_requests(page)
        server.log.seen.clear()
        verdicts = set()
        for name, options in PHOTOS.items():
            path = tmp_path / name
            path.write_bytes(photo(**options))
            device = next_result(page, lambda p=path: page.set_input_files("#gallery", str(p)))
            expected = server.classify(path.read_bytes())
            assert_same_answer(device, expected, name)
            assert_drawn_as_returned(page, expected, name)
            verdicts.add(device["lesion"]["verdict"])
        assert verdicts == {"one", "no_lesion", "several"}
        assert "spot outline" in page.locator("#timing").inner_text()
        server.log.seen = [s for s in server.log.seen if s[1] != "/api/v1/classify"]
        assert_image_never_left(requests, server)
        assert not problems, problems
    finally:
        server.close()


def test_crop_before_classifying_on_the_device(phone, demo_model_path, demo_samples_dir, tmp_path):
    """The segmenter file says to crop: the classifier sees the crop on the device too."""
    page, problems = phone
    server = tiny_server(demo_model_path, demo_samples_dir, CROP_SEGMENTER)
    try:
        page.goto(server.url + "/")
        wait_ready(page)
        for name, options in (
            ("spot.png", {"spots": ((20, 100, 24, 24),), "size": (240, 200)}),
            ("no spot.png", {"spots": ()}),
        ):
            path = tmp_path / name
            path.write_bytes(photo(**options))
            device = next_result(page, lambda p=path: page.set_input_files("#gallery", str(p)))
            expected = server.classify(path.read_bytes())
            assert_same_answer(device, expected, name)
            assert device["lesion"]["cropped"] is (name == "spot.png")
            assert device["scores"] == expected["scores"], name
        assert not problems, problems
    finally:
        server.close()


def test_the_segmenter_is_kept_for_offline_use(
    browser, demo_model_path, demo_samples_dir, tmp_path
):
    """Second visit with the server stopped and the browser offline: the segmenter comes from
    the cache and the spot is outlined as before."""
    server = tiny_server(demo_model_path, demo_samples_dir, SEGMENTER)
    context = browser.new_context(**PHONE)
    path = tmp_path / "one spot.png"
    path.write_bytes(photo())
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        wait_ready(page)
        page.locator("#device-status", has_text="works offline").wait_for(timeout=30_000)
        online = next_result(page, lambda: page.set_input_files("#gallery", str(path)))
        server.close()
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        offline = next_result(page, lambda: page.set_input_files("#gallery", str(path)))
        assert offline["mode"] == "device"
        assert offline["lesion"] == online["lesion"] and offline["lesion"]["verdict"] == "one"
        assert drawn(page)["outline"] == online["lesion"]["outline"]
    finally:
        context.close()
        server.close()


def test_every_sample_with_the_shipped_segmenter(phone):
    """The shipped gate, segmenter and classifier on every sample photo: the device's lesion
    field (verdict, box, outline, area) is the server's."""
    if not all(path.is_file() for path in SHIPPED.values()):
        pytest.skip("models/ lacks the shipped classifier, gate or segmenter")
    page, problems = phone
    server = Server({**SHIPPED, "SAMPLES_DIR": REPO / "sample_images"})
    try:
        page.goto(server.url + "/")
        wait_ready(page)
        buttons = page.locator(".sample")
        agreement = {}
        for i in range(buttons.count()):
            name = Path(buttons.nth(i).get_attribute("data-src")).name
            device = next_result(page, buttons.nth(i).tap)
            expected = server.classify((REPO / "sample_images" / name).read_bytes())
            assert device["verdict"] == expected["verdict"], name
            if expected["verdict"] != "classified":
                continue
            assert_same_answer(device, expected, name)
            assert_drawn_as_returned(page, expected, name)
            agreement[name] = {  # the lesion field is the server's (asserted above)
                "verdict": device["lesion"]["verdict"],
                "segment_ms": device["timing_ms"]["segment"],
            }
        record("segmenter_samples_same_lesion_field", agreement)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ondevice_segmenter_outline.png"), full_page=True)
        assert not problems, problems
    finally:
        server.close()
