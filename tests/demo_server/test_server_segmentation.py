"""The lesion segmenter in the server: outline, box and area in the classify answer; "no spot"
and "several spots" ask for a closer photo; the crop when the file says so (no TensorFlow).

The segmenter is tests/fixtures/tiny_segmenter.tflite (made by make_segmenter_fixture.py): it
calls every pixel darker than mid-grey a lesion, so the outcomes are predictable.
"""

from __future__ import annotations

import importlib.util
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo_server import create_app
from demo_server.__main__ import build_parser, main
from demo_server.config import ModelLocation, ServerConfig
from demo_server.model import ModelError
from demo_server.openapi import openapi_document
from demo_server.segmenter import (
    NO_LESION_MESSAGE,
    SEVERAL_MESSAGE,
    LesionSegmenter,
    SegmenterError,
)


def _validate(document: dict, schema_name: str, instance: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a [test] extra")
    schema = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "segmenter"
SEGMENTER = FIXTURES / "tiny_segmenter.tflite"
CROP_SEGMENTER = FIXTURES / "tiny_segmenter_crop.tflite"


def photo(spots=((60, 40, 30, 20),), size=(200, 160), fmt="PNG", exif_rotate=False) -> bytes:
    """Light skin-coloured background with dark rectangles (left, top, width, height)."""
    width, height = size
    pixels = np.full((height, width, 3), (225, 190, 170), np.uint8)
    for left, top, w, h in spots:
        pixels[top : top + h, left : left + w] = (40, 25, 20)
    image = Image.fromarray(pixels)
    out = io.BytesIO()
    if exif_rotate:  # stored sideways, EXIF says turn it 90 degrees clockwise to view
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=95, exif=exif)
    else:
        image.save(out, fmt)
    return out.getvalue()


def make_app(model_path, samples_dir, segmenter=SEGMENTER):
    return create_app(
        {
            "TESTING": True,
            "MODEL_PATH": model_path,
            "SAMPLES_DIR": samples_dir,
            "INTERPRETERS": 2,
            "LESION_GATE_PATH": None,
            "SEGMENTER_PATH": segmenter,
        }
    )


@pytest.fixture()
def seg_app(demo_model_path, demo_samples_dir):
    return make_app(demo_model_path, demo_samples_dir)


@pytest.fixture()
def seg_client(seg_app):
    return seg_app.test_client()


def classify(client, data: bytes) -> dict:
    response = client.post(
        "/api/v1/classify",
        data={"image": (io.BytesIO(data), "photo.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_one_spot_gets_its_outline_box_and_area(seg_client):
    body = classify(seg_client, photo())
    lesion = body["lesion"]
    assert lesion["verdict"] == "one" and lesion["found"] == 1 and lesion["message"] is None
    box = lesion["box"]  # the spot is x 60-90, y 40-60 in a 200 x 160 photo
    assert abs(box["left"] - 60) <= 4 and abs(box["top"] - 40) <= 4
    assert abs(box["width"] - 30) <= 6 and abs(box["height"] - 20) <= 6
    assert lesion["area_fraction"] == pytest.approx(30 * 20 / (200 * 160), rel=0.3)
    xs, ys = zip(*lesion["outline"], strict=True)
    assert len(xs) >= 4 and min(xs) >= 55 and max(xs) <= 95 and min(ys) >= 35 and max(ys) <= 65
    assert lesion["cropped"] is False
    assert body["verdict"] == "classified" and body["scores"]  # still classified
    assert body["timing_ms"]["segment"] > 0
    _validate(openapi_document(ServerConfig()), "Classification", body)


def test_outline_is_in_the_upright_photo_coordinates(seg_client):
    body = classify(seg_client, photo(exif_rotate=True))
    assert body["image"]["width"] == 200 and body["image"]["height"] == 160
    box = body["lesion"]["box"]
    assert abs(box["left"] - 60) <= 4 and abs(box["top"] - 40) <= 4


@pytest.mark.parametrize("exif_rotate", [False, True])
def test_a_photo_decoded_reduced_is_answered_in_its_own_pixels(seg_client, exif_rotate: bool):
    """A photo far larger than the models need is decoded smaller (contract.images), but the
    answer's size, box and outline are the photo's own, as the client drew them."""
    scale = 12  # 2400 x 1920: over HEADROOM x the largest input of these test models
    spot = (60 * scale, 40 * scale, 30 * scale, 20 * scale)
    body = classify(seg_client, photo((spot,), (200 * scale, 160 * scale), "JPEG", exif_rotate))
    assert (body["image"]["width"], body["image"]["height"]) == (200 * scale, 160 * scale)
    box = body["lesion"]["box"]
    assert abs(box["left"] - spot[0]) <= 4 * scale and abs(box["top"] - spot[1]) <= 4 * scale
    assert abs(box["width"] - spot[2]) <= 6 * scale and abs(box["height"] - spot[3]) <= 6 * scale
    xs, ys = zip(*body["lesion"]["outline"], strict=True)
    assert min(xs) >= 55 * scale and max(xs) <= 95 * scale and max(ys) <= 65 * scale


def test_no_spot_asks_for_a_closer_photo(seg_client):
    lesion = classify(seg_client, photo(spots=()))["lesion"]
    assert lesion == {
        "verdict": "no_lesion",
        "found": 0,
        "area_fraction": 0.0,
        "box": None,
        "outline": [],
        "message": NO_LESION_MESSAGE,
        "cropped": False,
    }


def test_several_spots_ask_for_one(seg_client):
    body = classify(seg_client, photo(spots=((20, 20, 30, 30), (140, 100, 28, 28))))
    lesion = body["lesion"]
    assert lesion["verdict"] == "several" and lesion["found"] == 2
    assert lesion["message"] == SEVERAL_MESSAGE and "closer photo" in lesion["message"]
    assert abs(lesion["box"]["left"] - 20) <= 4  # the larger spot
    assert body["scores"]
    _validate(openapi_document(ServerConfig()), "Classification", body)


def test_a_small_speck_beside_the_spot_is_still_one(seg_client):
    lesion = classify(seg_client, photo(spots=((60, 40, 40, 40), (150, 120, 10, 10))))["lesion"]
    assert lesion["verdict"] == "one" and lesion["found"] == 2


def test_without_a_segmenter_the_answer_is_unchanged(client):
    body = classify(client, photo())
    assert "lesion" not in body and "segment" not in body["timing_ms"]
    info = client.get("/api/v1/model").get_json()["lesion_segmenter"]
    assert info == {"loaded": False, "image_size": None, "crop_before_classifying": None,
                    "file": None}  # fmt: skip


def test_model_endpoint_describes_the_segmenter(seg_client):
    body = seg_client.get("/api/v1/model").get_json()
    info = body["lesion_segmenter"]
    assert info["loaded"] is True and info["image_size"] == 64
    assert info["crop_before_classifying"] is False
    assert info["file"]["name"] == "tiny_segmenter.tflite" and len(info["file"]["sha256"]) == 64
    _validate(openapi_document(ServerConfig()), "ModelInfo", body)


def test_crop_before_classifying_changes_what_the_classifier_sees(
    demo_model_path, demo_samples_dir, seg_client
):
    crop_client = make_app(demo_model_path, demo_samples_dir, CROP_SEGMENTER).test_client()
    data = photo(spots=((20, 100, 24, 24),), size=(240, 200))
    plain, cropped = classify(seg_client, data), classify(crop_client, data)
    assert plain["lesion"]["cropped"] is False and cropped["lesion"]["cropped"] is True
    assert plain["scores"] != cropped["scores"]
    # No spot: nothing to crop, the whole photo is classified either way.
    empty = photo(spots=())
    assert classify(crop_client, empty)["scores"] == classify(seg_client, empty)["scores"]
    assert classify(crop_client, empty)["lesion"]["cropped"] is False


def test_segmenter_rejects_a_file_without_its_json(tmp_path, demo_model_path, demo_samples_dir):
    with pytest.raises(SegmenterError, match="lesion_segmenter.json"):
        LesionSegmenter.from_file(demo_model_path)  # a classifier, not a segmenter
    with pytest.raises(ModelError, match="lesion segmenter"):
        make_app(demo_model_path, demo_samples_dir, tmp_path / "missing.tflite")


def test_cli_finds_names_or_drops_the_segmenter(tmp_path, capsys, demo_model_path):
    found = ModelLocation(SEGMENTER, "SKINLESION_SEGMENTER", False, (SEGMENTER,))
    parser = build_parser(segmenter=found)
    assert parser.parse_args([]).segmenter == SEGMENTER
    assert parser.parse_args(["--no-lesion-segmenter"]).segmenter is None
    other = tmp_path / "s.tflite"
    assert parser.parse_args(["--lesion-segmenter", str(other)]).segmenter == other
    with pytest.raises(SystemExit):
        main(["--model", str(demo_model_path), "--lesion-segmenter", str(other)])
    assert "lesion segmenter file not found" in capsys.readouterr().err


def test_segmenter_is_fast_enough_for_the_request_budget():
    segmenter = LesionSegmenter.from_file(SEGMENTER)
    image = Image.open(io.BytesIO(photo(size=(1024, 768)))).convert("RGB")
    segmenter.locate(image)
    start = time.perf_counter()
    for _ in range(20):
        segmenter.locate(image)
    assert (time.perf_counter() - start) / 20 < 0.05  # the framing is a few ms, not tens


# --- the OpenAPI document with a segmenter loaded: schemathesis over classify and model ------
# Only with the [test] extras (schemathesis, hypothesis); without them the tests above still run.

if importlib.util.find_spec("schemathesis") and importlib.util.find_spec("hypothesis"):
    import schemathesis

    # Importing the main schemathesis test registers its image strategies for the upload media
    # types (one registry per process), so drawn uploads are real images that reach the 200s.
    from test_server_schemathesis import SETTINGS

    @pytest.fixture()
    def segmenter_api_schema(seg_app):
        return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", seg_app)

    segmenter_api = schemathesis.pytest.from_fixture("segmenter_api_schema")

    @pytest.mark.slow
    @segmenter_api.include(path_regex="^/api/v1/(classify|model)$").parametrize()
    @SETTINGS
    def test_api_with_a_segmenter_conforms_to_its_openapi_document(case):
        # Every drawn image gets a `lesion` field (one, no_lesion or several: random pixels
        # give all three) that must match the Lesion schema.
        case.call_and_validate()
