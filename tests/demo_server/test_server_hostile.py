"""Hostile uploads and request shapes (issue 33), through the app: each is a clear 4xx, costly
decodes are rationed (503 busy with Retry-After), and ordinary uploads still answer."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from demo_server import create_app
from demo_server import images as server_images
from demo_server.admission import Full, Slots
from demo_server.attack import deep_png, lossless_webp, progressive_jpeg_bomb
from demo_server.extensions import DECODER, default_classifier
from demo_server.model import ModelError

NO_GATE = {"LESION_GATE_PATH": None}


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (180, 110, 90)).save(out, "JPEG")
    return out.getvalue()


def upload(client, data: bytes, fields=None, path: str = "/api/v1/classify"):
    return client.post(path, data={"image": (io.BytesIO(data), "photo.jpg"), **(fields or {})})


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["error"]


def make_app(model_path, **config):
    return create_app({"MODEL_PATH": model_path, **NO_GATE, **config})


# --- the decode budget -------------------------------------------------------------------------


def test_a_jpeg_repeating_scans_is_a_413_before_decoding(demo_model_path):
    client = make_app(demo_model_path, MAX_SCAN_PIXELS=50_000_000).test_client()
    error = error_of(upload(client, progressive_jpeg_bomb(side=1000, repeats=100)), 413)
    assert error["code"] == "too_costly" and "110 scans over 1000x1000" in error["message"]
    assert upload(client, jpeg()).status_code == 200


def test_a_file_too_costly_to_decode_is_a_413_naming_the_memory(demo_model_path):
    client = make_app(demo_model_path, MAX_DECODE_BYTES=20 * 2**20).test_client()
    error = error_of(upload(client, lossless_webp(side=1500)), 413)
    assert error["code"] == "too_costly" and "limit of 20 MB" in error["message"]


def test_a_deep_png_far_larger_than_needed_is_classified_from_a_reduced_decode(
    demo_model_path,
):
    app = make_app(demo_model_path)
    response = upload(app.test_client(), deep_png(side=2500))
    assert response.status_code == 200, response.get_data(as_text=True)
    image = response.get_json()["image"]
    # The answer describes the upload as sent; the decode behind it was reduced.
    assert (image["format"], image["mode"], image["width"], image["height"]) == (
        "PNG",
        "I;16",
        2500,
        2500,
    )
    decoded = app.extensions[DECODER].decode(deep_png(side=2500))
    assert decoded.size == (2500, 2500) and decoded.image.width < 2500  # the tiny model: 64 px


def test_heavy_decodes_wait_for_a_slot_then_get_503_with_retry_after(demo_model_path, monkeypatch):
    app = make_app(demo_model_path, DECODE_SLOTS=1, DECODE_QUEUE=1, DECODE_WAIT_S=0.2)
    client = app.test_client()
    monkeypatch.setattr(server_images, "HEAVY_DECODE_BYTES", 0)  # every decode is heavy here
    slots = app.extensions[DECODER].heavy
    with slots.hold():
        response = upload(client, jpeg())
        assert error_of(response, 503)["code"] == "busy"
        assert response.headers["Retry-After"] == "1"
    assert upload(client, jpeg()).status_code == 200


def test_ordinary_decodes_never_wait_for_heavy_ones(demo_model_path):
    app = make_app(demo_model_path, DECODE_SLOTS=1, DECODE_QUEUE=0, DECODE_WAIT_S=0)
    with app.extensions[DECODER].heavy.hold():
        assert upload(app.test_client(), jpeg()).status_code == 200


def test_interpreter_pool_busy_says_when_to_retry(demo_model_path):
    app = make_app(demo_model_path, INTERPRETERS=1, POOL_TIMEOUT_S=0.01)
    with default_classifier(app)._pool.lease():
        response = upload(app.test_client(), jpeg())
    assert error_of(response, 503)["code"] == "busy"
    assert response.headers["Retry-After"] == "1"


# --- admission ------------------------------------------------------------------------------------


def test_slots_bound_holders_and_waiters():
    slots = Slots(size=1, max_waiting=1, wait_s=5)
    release = threading.Event()
    outcomes: list[str] = []

    def take() -> None:
        with slots.hold():
            outcomes.append("held")
            release.wait(5)

    holder = threading.Thread(target=take)
    holder.start()
    waiter = threading.Thread(target=take)
    deadline = time.monotonic() + 5
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.01)
    waiter.start()
    while slots.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slots.waiting == 1
    with pytest.raises(Full), slots.hold():  # one waits already: refused at once
        pass
    release.set()
    holder.join(5)
    waiter.join(5)
    assert outcomes == ["held", "held"] and slots.waiting == 0


def test_slots_give_up_after_the_wait():
    slots = Slots(size=1, max_waiting=4, wait_s=0.05)
    with slots.hold(), pytest.raises(Full), slots.hold():
        pass
    with slots.hold():  # released after the refusal
        pass


# --- request shapes -------------------------------------------------------------------------------


def test_two_image_parts_are_a_400_of_their_own(client):
    response = client.post(
        "/api/v1/classify",
        data={"image": [(io.BytesIO(jpeg()), "a.jpg"), (io.BytesIO(jpeg()), "b.jpg")]},
    )
    error = error_of(response, 400)
    assert error["code"] == "several_images" and "2 multipart fields" in error["message"]


def test_form_limits_are_named(client):
    big_field = upload(client, jpeg(), {"age": "1" * 600_000})
    error = error_of(big_field, 413)
    assert error["code"] == "form_too_large" and "500,000 bytes" in error["message"]
    parts = upload(client, jpeg(), {f"x{i}": "1" for i in range(150)})
    assert "100 parts" in error_of(parts, 413)["message"]
    # The body limit keeps its own message.
    too_big = client.post("/api/v1/classify", data=b"\xff" * (11 * 2**20))
    assert error_of(too_big, 413)["code"] == "request_too_large"


def test_an_unknown_model_id_is_quoted_short(client):
    response = client.post("/api/v1/classify?model=" + "m" * 200_000, data=jpeg())
    error = error_of(response, 400)
    assert error["code"] == "unknown_model" and "(cut)" in error["message"]
    assert len(response.get_data()) < 1000


@pytest.mark.parametrize("age", ["٣٠", "３０"])
def test_age_takes_ascii_digits_only(answers_client, age):
    error = error_of(upload(answers_client, jpeg(), {"age": age}), 400)
    assert error["code"] == "invalid_answer"
    assert upload(answers_client, jpeg(), {"age": "30"}).status_code == 200


def test_double_slashes_are_not_redirected_to_the_clients_host(client):
    # The path as waitress hands it over (the test client would read "//static" as a host).
    for path in ("//static//x", "/samples//x", "/api/v1//models"):
        response = client.get(
            "/", environ_overrides={"PATH_INFO": path}, headers={"Host": "evil.example"}
        )
        assert response.status_code == 404 and "Location" not in response.headers


def test_a_classifier_that_fails_to_load_is_named(tmp_path, demo_model_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" * 100)
    with pytest.raises(ModelError, match="broken.tflite"):
        create_app({"MODEL_PATH": demo_model_path, "MORE_MODEL_PATHS": (broken,), **NO_GATE})
