"""The API's `photo_check` field (contract.photo_check): measured on the upload, the spot's size
from the segmenter, in the OpenAPI document; the tiny models, no TensorFlow, no browser."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter
from test_server_segmentation import _validate, classify, make_app, photo

from contract.photo_check import MESSAGES, RULE, check, measure

SAMPLE = Path(__file__).resolve().parents[2] / "sample_images" / "mel_phone_PAT_233_354_828.jpg"


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_sharp_sample_passes_and_its_blurred_and_dark_copies_are_retaken(client):
    image = Image.open(SAMPLE).convert("RGB")
    copies = {
        (): image,
        ("blurry",): image.filter(ImageFilter.GaussianBlur(12)),
        ("dark",): ImageEnhance.Brightness(image).enhance(0.25),
        # washed out: its edges are gone too
        ("blurry", "bright"): ImageEnhance.Brightness(image).enhance(2.5),
    }
    document = client.get("/api/v1/openapi.json").get_json()
    for reasons, copy in copies.items():
        data = jpeg(copy)
        body = classify(client, data)
        found = body["photo_check"]
        assert tuple(found["reasons"]) == reasons
        assert found["retake"] == bool(reasons)
        assert found["messages"] == [MESSAGES[r] for r in reasons]
        assert found["area_fraction"] is None  # no segmenter in this app
        # the server's field is the contract's on the decoded upload
        assert found == check(measure(Image.open(io.BytesIO(data)).convert("RGB"))).as_json()
        assert body["verdict"] == "classified" and body["timing_ms"]["photo_check"] > 0
        _validate(document, "Classification", body)


def test_a_small_spot_asks_to_move_closer(demo_model_path, demo_samples_dir):
    client = make_app(demo_model_path, demo_samples_dir).test_client()
    # one spot of 14 x 10 of 200 x 160 pixels: 0.4% of the frame, found by the tiny segmenter
    small = classify(client, photo(((90, 70, 14, 10),)))
    assert small["lesion"]["verdict"] == "one"
    assert small["photo_check"]["area_fraction"] < RULE.min_area_fraction
    assert "small" in small["photo_check"]["reasons"]
    large = classify(client, photo(((40, 30, 120, 100),)))
    assert large["lesion"]["verdict"] == "one"
    assert large["photo_check"]["area_fraction"] == pytest.approx(
        large["lesion"]["area_fraction"], abs=1e-6
    )
    assert "small" not in large["photo_check"]["reasons"]
