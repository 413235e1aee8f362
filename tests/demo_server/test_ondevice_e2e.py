"""On-device mode in a real browser (Debian's chromium, phone viewport): the shipped models run
in the page with LiteRT.js, offline, agreeing with the server, and the photo never leaves.

Needs chromium, Playwright for Python, and `npm ci --prefix web`; skipped without them, except
in CI (SKINLESION_REQUIRE_DATA=1 or CI=true), where they are required. The figures measured
here (agreement, timings) go to test-artifacts/ondevice.json; docs/on_device.md quotes them.
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from ondevice_support import (
    ARTIFACTS,
    LOAD_TIMEOUT_MS,
    PHONE,
    REPO,
    Server,
    assert_image_never_left,
    browser_ready,
    launched_browser,
    next_result,
    phone_page,
    record,
    skip_or_fail,
    wait_ready,
    watch_requests,
)
from PIL import Image, ImageOps

pytestmark = pytest.mark.slow  # a browser and the shipped models: seconds per test

MODEL = REPO / "models" / "skin_lesion_int8_mixed.tflite"
GATE = REPO / "models" / "lesion_gate.tflite"
SAMPLES = REPO / "sample_images"
TOLERANCE = 0.02  # the bound on every probability, device vs server


@pytest.fixture(scope="module")
def ready():
    """Everything the browser tests need, or skip (fail in CI)."""
    browser_ready()
    if not (MODEL.is_file() and GATE.is_file()):
        skip_or_fail("models/ lacks the shipped classifier or lesion gate")


@pytest.fixture(scope="module")
def shipped(ready):
    server = Server({"MODEL_PATH": MODEL, "LESION_GATE_PATH": GATE, "SAMPLES_DIR": SAMPLES})
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(ready):
    with launched_browser() as browser:
        yield browser


@pytest.fixture()
def phone(browser):
    with phone_page(browser) as page_and_problems:
        yield page_and_problems


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.jpg"))


def probabilities(result: dict) -> dict[str, float]:
    return {s["code"]: s["probability"] for s in result["scores"]}


def compare(device: dict, server: dict, name: str) -> float:
    """Assert the issue's agreement; return the largest probability difference."""
    assert device["mode"] == "device", name
    assert device["verdict"] == server["verdict"], name
    if server["lesion_check"] is None:
        assert device["lesion_check"] is None, name
    else:
        assert device["lesion_check"]["is_lesion"] == server["lesion_check"]["is_lesion"], name
    if server["verdict"] != "classified":
        return 0.0
    assert device["top"]["code"] == server["top"]["code"], name
    got, want = probabilities(device), probabilities(server)
    worst = max(abs(got[code] - want[code]) for code in want)
    assert worst <= TOLERANCE, f"{name}: {got} vs {want}"
    assert device["triage"]["level"] == server["triage"]["level"], name
    assert device["unsure"] == server["unsure"], name
    assert device["calibration"] == server["calibration"], name
    return worst


def test_every_sample_on_the_device_with_the_api_blocked_agrees_with_the_server(shipped, phone):
    page, problems = phone
    files = sample_files()
    expected = {path.name: shipped.classify(path.read_bytes()) for path in files}
    page.goto(shipped.url + "/")
    wait_ready(page)
    assert page.locator("input[name=mode][value=device]").is_checked()
    # From here on the server's classify route is blocked, and every request is recorded.
    page.route("**/api/v1/classify", lambda route: route.abort())
    requests = watch_requests(page)
    shipped.log.seen.clear()
    buttons = page.locator(".sample")
    names = [Path(buttons.nth(i).get_attribute("data-src")).name for i in range(buttons.count())]
    assert names == [path.name for path in files]
    differences = {}
    for i, name in enumerate(names):
        device = next_result(page, buttons.nth(i).tap)
        differences[name] = compare(device, expected[name], name)
        assert "Checked on this device" in page.locator("#mode-used").inner_text()
        assert "Ran on this device in" in page.locator("#timing").inner_text()
        assert page.locator("#scores li").count() == len(device["scores"])
    assert_image_never_left(requests, shipped)
    record("sample_max_probability_difference", differences)
    record("sample_max_probability_difference_overall", max(differences.values()))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ondevice_mobile_result.png"), full_page=True)
    assert not problems, problems


def test_answers_on_the_device_agree_with_the_server(shipped, phone):
    page, problems = phone
    page.goto(shipped.url + "/")
    wait_ready(page)
    requests = watch_requests(page)
    shipped.log.seen.clear()
    page.locator("#answers summary").tap()
    page.fill("input[name=age]", "80")
    page.select_option("select[name=itch]", "yes")
    page.select_option("select[name=site]", "face")
    sample = sample_files()[1]
    device = next_result(page, lambda: page.locator(".sample").nth(1).tap())
    assert device["answers"]["used"] == {"age": "75+", "site": "face", "itch": "yes"}
    # The page states the kind of photo (phone unless changed), so its threshold is that kind's.
    fields = {"age": "80", "itch": "yes", "site": "face", "domain": "phone"}
    compare(device, shipped.classify(sample.read_bytes(), fields), sample.name)
    # Another domain: only the formulas run again, not the model.
    device = next_result(page, lambda: page.select_option("#domain", "dermoscopic"))
    assert device["timing_ms"].get("rescreened") is True
    assert device["answers"]["used"] == {"age": "75+", "site": "face"}
    fields = {"age": "80", "site": "face", "domain": "dermoscopic"}
    compare(device, shipped.classify(sample.read_bytes(), fields), sample.name)
    assert "(2 of 3 answered)" in page.locator("#calibration-note").inner_text()
    shipped.log.seen = [s for s in shipped.log.seen if s[1] != "/api/v1/classify" or s[0] == "GET"]
    assert_image_never_left(requests, shipped)
    assert not problems, problems


PIXELS_JS = """async ([b64, size]) => {
  const { decodeToRgb, resizeBilinear } = await import("/static/pixels.mjs");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const photo = await decodeToRgb(new Blob([bytes]));
  const out = resizeBilinear(photo.rgb, photo.width, photo.height, size, size);
  let text = "";
  for (const v of out) text += String.fromCharCode(v);
  return [btoa(text), photo.width, photo.height];
}"""


def photos(tmp_path: Path) -> dict[str, bytes]:
    """The samples, plus a phone-like photo: 4:3, large, stored sideways with an EXIF
    rotation; and a transparent PNG."""
    files = {path.name: path.read_bytes() for path in sample_files()}
    image = Image.open(SAMPLES / "bcc_phone_PAT_394_1562_579.jpg").resize((1600, 1200))
    exif = Image.Exif()
    exif[274] = 6  # Orientation: rotate 90 degrees clockwise to show
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif)
    files["exif_rotated_1600x1200.jpg"] = buffer.getvalue()
    rgba = np.asarray(image.convert("RGBA").resize((400, 300))).copy()
    rgba[..., 3] = np.linspace(0, 255, 400, dtype=np.uint8)[None, :]
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    files["alpha_gradient.png"] = buffer.getvalue()
    return files


def test_model_input_pixels_are_the_contracts(shipped, phone, tmp_path):
    """The browser's decoding (EXIF rotation, alpha on white) and pixels.mjs's resize give the
    input tensor contract.images gives, byte for byte (the figures go to docs/on_device.md)."""
    from contract.images import model_input

    page, problems = phone
    page.goto(shipped.url + "/?mode=server")
    differences = {}
    for name, data in photos(tmp_path).items():
        b64, width, height = page.evaluate(PIXELS_JS, [base64.b64encode(data).decode(), 224])
        got = np.frombuffer(base64.b64decode(b64), dtype=np.uint8).reshape(224, 224, 3)
        want = model_input(data, 224)
        upright = Image.open(io.BytesIO(data))
        upright = ImageOps.exif_transpose(upright)
        assert (width, height) == upright.size, name
        diff = np.abs(got.astype(int) - want.astype(int))
        differences[name] = {"max": int(diff.max()), "bytes_differing": int((diff > 0).sum())}
        if name.endswith(".jpg"):
            assert diff.max() == 0, f"{name}: {differences[name]}"
        assert diff.max() <= 2, f"{name}: {differences[name]}"
    record("model_input_pixel_differences", differences)
    assert not problems, problems


BROWSER_RESIZE_JS = """async ([b64, quality]) => {
  const device = window.skinSpotCheck.device();
  await device.load();
  const { rgbaToRgb } = await import("/static/pixels.mjs");
  const screening = await import("/static/screening.mjs");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const [h, w] = [device.meta.input.shape[1], device.meta.input.shape[2]];
  const bitmap = await createImageBitmap(new Blob([bytes]), { imageOrientation: "from-image",
    colorSpaceConversion: "none", resizeWidth: w, resizeHeight: h, resizeQuality: quality });
  const canvas = new OffscreenCanvas(w, h);
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, w, h);
  context.drawImage(bitmap, 0, 0);
  const run = await device.runClassifier(rgbaToRgb(context.getImageData(0, 0, w, h).data));
  return screening.screen(device.spec, run.values, 0.5, device.config.messages, null);
}"""


def test_what_the_browsers_own_resize_would_change(shipped, phone, tmp_path):
    """Measured, for docs/on_device.md: had the page let the browser stretch the photo to 224 px
    (createImageBitmap's resize) instead of pixels.mjs's Pillow-exact bilinear, how far the
    probabilities would move from the server's. And a photo over the canvas limit (16.7 MP),
    which pixels.mjs reads in strips: exact again."""
    page, problems = phone
    files = photos(tmp_path)
    large = Image.open(SAMPLES / "bcc_phone_PAT_394_1562_579.jpg").resize((5000, 3500))
    exif = Image.Exif()
    exif[274] = 8  # Orientation: rotate 90 degrees counter-clockwise to show
    buffer = io.BytesIO()
    large.save(buffer, "JPEG", quality=90, exif=exif)
    files["large_5000x3500.jpg"] = buffer.getvalue()
    expected = {name: shipped.classify(data) for name, data in files.items()}
    page.goto(shipped.url + "/")
    wait_ready(page)
    measured: dict[str, dict] = {}
    for quality in ("low", "medium", "high"):
        worst, top_changes = 0.0, 0
        for name, data in files.items():
            server = expected[name]
            if server["verdict"] != "classified":
                continue
            got = page.evaluate(BROWSER_RESIZE_JS, [base64.b64encode(data).decode(), quality])
            want = probabilities(server)
            worst = max(worst, *(abs(probabilities(got)[c] - want[c]) for c in want))
            top_changes += got["top"]["code"] != server["top"]["code"]
        measured[f"createImageBitmap resizeQuality={quality}"] = {
            "max_probability_difference": round(worst, 4),
            "top_class_changes": top_changes,
            "photos": len(files),
        }
    page.locator("label", has_text="On this device").tap()
    photo = tmp_path / "large.jpg"
    photo.write_bytes(files["large_5000x3500.jpg"])
    device = next_result(page, lambda: page.set_input_files("#gallery", str(photo)))
    assert device["image"]["strips"] == 2  # over the canvas limit: read in two strips
    assert (device["image"]["width"], device["image"]["height"]) == (3500, 5000)
    measured["17.5 MP photo, rotated by EXIF, read in 2 strips by pixels.mjs"] = {
        "max_probability_difference": round(
            compare(device, expected["large_5000x3500.jpg"], "large"), 4
        ),
    }
    record("browser_resize_instead_of_pillow", measured)
    assert not problems, problems


def test_not_a_lesion_and_picked_files_stay_on_the_device(shipped, phone, tmp_path):
    """A picked file (a transparent PNG of a checkerboard) is turned away by the gate in the
    browser as on the server, and nothing is uploaded."""
    page, problems = phone
    pixels = (((np.indices((300, 400)).sum(0) // 20) % 2) * 255).astype(np.uint8)
    rgba = np.dstack([pixels, pixels, pixels, np.where(pixels > 0, 255, 96).astype(np.uint8)])
    photo = tmp_path / "checker.png"
    Image.fromarray(rgba, "RGBA").save(photo)
    server = shipped.classify(photo.read_bytes())
    page.goto(shipped.url + "/")
    wait_ready(page)
    requests = watch_requests(page)
    shipped.log.seen.clear()
    device = next_result(page, lambda: page.set_input_files("#gallery", str(photo)))
    compare(device, server, photo.name)
    assert device["verdict"] == "not_a_lesion"
    assert abs(device["lesion_check"]["distance"] - server["lesion_check"]["distance"]) < 0.05
    # Half its pixels are pure white: the photo check asks for a retake first (too bright).
    assert device["photo_check"]["reasons"] == server["photo_check"]["reasons"] == ["bright"]
    assert page.locator("#retake").is_visible()
    page.locator("#check-anyway").tap()
    assert page.locator("#not-lesion").is_visible()
    assert not page.locator("#diagnosis").is_visible()
    assert not requests, requests  # not one request: the photo is read from the file input
    assert_image_never_left(requests, shipped)
    assert not problems, problems


def test_reload_with_the_network_off_still_classifies(ready, browser):
    """Second visit with no network at all: the server is stopped and the browser offline."""
    server = Server({"MODEL_PATH": MODEL, "LESION_GATE_PATH": GATE, "SAMPLES_DIR": SAMPLES})
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        wait_ready(page)
        page.locator("#device-status", has_text="works offline").wait_for(timeout=30_000)
        online = next_result(page, lambda: page.locator(".sample").nth(2).tap())
        server.close()
        context.set_offline(True)
        page.reload()
        wait_ready(page)
        offline = next_result(page, lambda: page.locator(".sample").nth(2).tap())
        assert offline["mode"] == "device"
        assert offline["scores"] == online["scores"]
        assert "Checked on this device" in page.locator("#mode-used").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ondevice_mobile_offline.png"), full_page=True)
    finally:
        context.close()
        server.close()


@pytest.mark.parametrize("threads", [None, 1], ids=["threads", "one-thread"])
def test_first_result_time_and_benchmark(shipped, browser, threads):
    """The issue's timing: the first result after choosing a photo on a first visit (runtime
    and models loaded on the way), on a second visit (from the cache), and the benchmark;
    with the threads the browser offers (up to 4) and with one (?threads=1)."""
    query = "/" if threads is None else f"/?threads={threads}"
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.goto(shipped.url + query)
        start = time.perf_counter()
        first = next_result(page, lambda: page.locator(".sample").first.tap())
        first_visit_s = time.perf_counter() - start
        assert first["mode"] == "device"
        wait_ready(page)
        page.locator("#device-status", has_text="works offline").wait_for(timeout=30_000)
        second = context.new_page()
        page.close()
        second.goto(shipped.url + query)
        start = time.perf_counter()
        next_result(second, lambda: second.locator(".sample").first.tap())
        cached_visit_s = time.perf_counter() - start
        timing = second.evaluate("() => window.skinSpotCheck.device().timing")
        second.locator("#bench-run").tap()
        second.locator("#bench-result", has_text="p90").wait_for(timeout=LOAD_TIMEOUT_MS)
        bench = second.evaluate("() => window.skinSpotCheck.lastBenchmark")
        assert "Native LiteRT (XNNPACK) for" in second.locator("#bench-native").inner_text()
        assert "p50" in second.locator("#bench-result").inner_text()
        record(
            "timing" if threads is None else f"timing_{threads}_thread",
            {
                "first_result_first_visit_s": round(first_visit_s, 2),
                "first_result_cached_visit_s": round(cached_visit_s, 2),
                "first_visit_timing_ms": first["timing_ms"],
                "cached_visit_load_ms": timing,
                "benchmark": bench,
                "load_average_1min": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            },
        )
        assert first_visit_s < 20  # the target is 3 s here; a loaded CI machine gets slack
    finally:
        context.close()


def test_server_mode_is_the_fallback_and_says_so(shipped, phone):
    page, problems = phone
    page.goto(shipped.url + "/")
    wait_ready(page)
    device = next_result(page, lambda: page.locator(".sample").first.tap())
    assert page.locator("#explain").is_visible()  # "where did it look" runs here too
    with page.expect_response("**/api/v1/classify"):
        server = next_result(page, lambda: page.locator("label", has_text="On the server").tap())
    assert server["mode"] == "server"
    assert page.locator("#mode-used").inner_text() == "Checked on the server."
    assert "on the server" in page.locator("#timing").inner_text()
    assert page.locator("#explain").is_visible()
    # Server mode uploads the photo re-encoded (longest side <= 1024 px, JPEG quality 0.9), which
    # moves the probabilities a little (up to 0.024 on this sample); on the device the original
    # file is read. The answer is the same.
    assert server["top"]["code"] == device["top"]["code"]
    assert server["triage"]["level"] == device["triage"]["level"]
    # The choice is remembered; ?mode= overrides it for one visit.
    page.goto(shipped.url + "/")
    assert page.locator("input[name=mode][value=server]").is_checked()
    page.goto(shipped.url + "/?mode=device")
    assert page.locator("input[name=mode][value=device]").is_checked()
    assert not problems, problems


def test_where_did_it_look_on_the_device_agrees_with_the_server(shipped, phone):
    """Occlusion on the device (50 runs of the classifier in the page, nothing sent): the same
    top class and per-cell drops as POST /api/v1/explain on the same file, and the heatmap."""
    page, problems = phone
    sample = sample_files()[3]
    form = {"image": (io.BytesIO(sample.read_bytes()), "photo")}
    server = shipped.app.test_client().post("/api/v1/explain", data=form).get_json()
    page.goto(shipped.url + "/")
    wait_ready(page)
    requests = watch_requests(page)
    shipped.log.seen.clear()
    next_result(page, lambda: page.locator(".sample").nth(3).tap())
    page.locator("#explain").tap()
    page.locator("#explain-note", has_text="runs on this device").wait_for(timeout=LOAD_TIMEOUT_MS)
    device = page.evaluate("() => window.skinSpotCheck.lastExplanation")
    assert device["target"]["code"] == server["target"]["code"]
    got, want = np.array(device["grid"]), np.array(server["grid"])
    assert got.shape == want.shape == (7, 7)
    worst = float(np.abs(got - want).max())
    assert worst <= TOLERANCE, (got, want)
    assert (server["max_drop"] >= 0.02) == page.locator("#heatmap").is_visible()
    assert device["heatmap_png"].startswith("data:image/png;base64,")
    assert_image_never_left(requests, shipped)
    record(
        "explain_device_vs_server",
        {
            "sample": sample.name,
            "max_drop_difference": worst,
            "device_ms": device["timing_ms"]["total"],
        },
    )
    assert not problems, problems


def test_a_photo_the_browser_cannot_read_is_not_sent_without_asking(shipped, phone, tmp_path):
    page, problems = phone
    junk = tmp_path / "photo.heic"
    junk.write_bytes(b"not really a picture")
    page.goto(shipped.url + "/")
    wait_ready(page)
    requests = watch_requests(page)
    page.set_input_files("#gallery", str(junk))
    page.locator("#status.error").wait_for(timeout=30_000)
    assert "cannot read this photo" in page.locator("#status").inner_text()
    assert not requests
    with page.expect_response("**/api/v1/classify"):
        page.locator("#use-server").tap()
    page.locator("#status", has_text="not an image").wait_for(timeout=30_000)
    assert page.locator("input[name=mode][value=server]").is_checked()
    del problems  # the server's 400 is logged by the browser as a failed resource


def test_tiny_model_unsure_and_answers_on_the_device(
    ready, phone, demo_answers_model_path, demo_samples_dir
):
    """Another model file (the tiny test model, no gate): the unsure state and the answers
    come out of its card on the device as on the server."""
    server = Server(
        {
            "MODEL_PATH": demo_answers_model_path,
            "SAMPLES_DIR": demo_samples_dir,
            "LESION_GATE_PATH": None,
        }
    )
    page, problems = phone
    try:
        data = (demo_samples_dir / "mel_1.jpg").read_bytes()
        page.goto(server.url + "/")
        wait_ready(page)
        device = next_result(page, lambda: page.locator(".sample").first.tap())
        compare(device, server.classify(data), "mel_1.jpg")
        assert device["lesion_check"] is None
        assert device["unsure"] and page.locator("#unsure").is_visible()  # a random model
        page.locator("#answers summary").tap()
        device = next_result(page, lambda: page.select_option("select[name=itch]", "yes"))
        compare(device, server.classify(data, {"itch": "yes"}), "mel_1.jpg, itch")
        assert device["answers"]["used"] == {"itch": "yes"}
        assert not problems, problems
    finally:
        server.close()
