"""Several classifiers on one server (the shipped ensemble and the small single network): a
request picks one with ?model=ID; without it, the default answers."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from demo_server import create_app
from demo_server.__main__ import build_parser, main, page_model
from demo_server.config import ModelLocation
from demo_server.extensions import classifiers
from demo_server.model import ModelError


@pytest.fixture()
def two_models_app(demo_variant_paths, demo_samples_dir):
    """The uint8 file by default, the float32 one on request."""
    return create_app(
        {
            "TESTING": True,
            "MODEL_PATH": demo_variant_paths["uint8"],
            "MORE_MODEL_PATHS": [demo_variant_paths["float32"]],
            "SAMPLES_DIR": demo_samples_dir,
            "INTERPRETERS": 1,
            "LESION_GATE_PATH": None,
        }
    )


@pytest.fixture()
def two_models(two_models_app):
    return two_models_app.test_client()


def _jpeg() -> bytes:
    pixels = np.random.default_rng(7).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_models_lists_every_classifier_default_first(two_models, demo_variant_paths):
    body = two_models.get("/api/v1/models").get_json()
    assert [(m["id"], m["default"]) for m in body["models"]] == [
        ("tiny_uint8", True),
        ("tiny_float32", False),
    ]
    sizes = [m["file"]["size_bytes"] for m in body["models"]]
    assert sizes == [demo_variant_paths[k].stat().st_size for k in ("uint8", "float32")]


def test_classify_answers_with_the_model_asked_for(two_models, two_models_app):
    photo = _jpeg()
    default = two_models.post("/api/v1/classify", data=photo).get_json()
    chosen = two_models.post("/api/v1/classify?model=tiny_float32", data=photo).get_json()
    assert default["model"]["id"] == "tiny_uint8" and chosen["model"]["id"] == "tiny_float32"
    served = classifiers(two_models_app)
    pixels = served["tiny_float32"].to_pixels(Image.open(io.BytesIO(photo)).convert("RGB"))
    raw = served["tiny_float32"].predict(pixels)
    assert not np.array_equal(raw, served["tiny_uint8"].predict(pixels))  # two different files
    chosen_max = max(s["probability"] for s in chosen["scores"])
    assert chosen["top"]["probability"] == chosen_max
    explain = two_models.post("/api/v1/explain?model=tiny_float32", data=photo).get_json()
    assert explain["model"]["id"] == "tiny_float32"
    info = two_models.get("/api/v1/model?model=tiny_float32").get_json()
    assert info["id"] == "tiny_float32" and info["file"]["name"] == "tiny_float32.tflite"


def test_an_unknown_model_is_a_400_naming_the_models(two_models):
    response = two_models.post("/api/v1/classify?model=nope", data=_jpeg())
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "unknown_model"
    assert "tiny_uint8" in error["message"] and "tiny_float32" in error["message"]
    assert two_models.get("/api/v1/model?model=nope").status_code == 400
    assert two_models.get("/api/v1/model?model=").status_code == 400  # empty is not "default"


def test_openapi_offers_the_models_as_a_query_parameter(two_models):
    document = two_models.get("/api/v1/openapi.json").get_json()
    for path, method in (("classify", "post"), ("explain", "post"), ("model", "get")):
        (parameter,) = document["paths"][f"/api/v1/{path}"][method]["parameters"]
        assert parameter["name"] == "model" and parameter["in"] == "query"
        assert parameter["schema"]["enum"] == ["tiny_uint8", "tiny_float32"]
    assert "/api/v1/models" in document["paths"]


def test_page_offers_the_models_and_keeps_the_choice(two_models):
    plain = two_models.get("/").get_data(as_text=True)
    assert '<select name="model" id="model-choice">' in plain
    assert '<option value="tiny_uint8" selected>' in plain
    assert '<body data-model="">' in plain
    chosen = two_models.get("/?model=tiny_float32").get_data(as_text=True)
    assert '<option value="tiny_float32" selected>' in chosen
    assert '<body data-model="tiny_float32">' in chosen
    assert 'href="/model?model=tiny_float32"' in chosen
    card = two_models.get("/model?model=tiny_float32").get_data(as_text=True)
    assert "tiny_float32.tflite" not in plain and re.search(r"<h1>tiny-test-model", card)


def test_one_model_shows_no_choice(client):
    html = client.get("/").get_data(as_text=True)
    assert "model-choice" not in html and '<body data-model="">' in html


def test_two_files_with_one_name_are_refused(demo_variant_paths, tmp_path):
    other = tmp_path / "tiny_uint8.tflite"
    shutil.copy(demo_variant_paths["float32"], other)
    with pytest.raises(ModelError, match="two classifier files are named tiny_uint8.tflite"):
        create_app(
            {
                "MODEL_PATH": demo_variant_paths["uint8"],
                "MORE_MODEL_PATHS": [other],
                "LESION_GATE_PATH": None,
            }
        )


def test_cli_serves_the_small_model_it_finds_unless_told_not_to(tmp_path, capsys):
    small = tmp_path / "skin_lesion_small_int8.tflite"
    small.write_bytes(b"x")
    found = ModelLocation(small, "SKINLESION_SMALL_MODEL", from_env=False, tried=(small,))
    assert build_parser(small_model=found).parse_args([]).more_models == (small,)
    assert build_parser(small_model=found).parse_args(["--more-models", ""]).more_models == ()
    parsed = build_parser(small_model=found).parse_args(["--more-models", "a.tflite,b.tflite"])
    assert [p.name for p in parsed.more_models] == ["a.tflite", "b.tflite"]
    missing = tmp_path / "missing.tflite"
    with pytest.raises(SystemExit) as exit_info:
        main(["--more-models", str(missing), "--no-lesion-gate", "--no-lesion-segmenter"])
    assert exit_info.value.code == 2
    assert f"model file not found: {missing}" in capsys.readouterr().err


def test_ondevice_mode_downloads_the_chosen_model(demo_variant_paths, demo_samples_dir, tmp_path):
    from test_ondevice_routes import app_for, fake_web

    app = app_for(
        demo_variant_paths["uint8"],
        demo_samples_dir,
        fake_web(tmp_path / "web"),
        MORE_MODEL_PATHS=[demo_variant_paths["float32"]],
    )
    client = app.test_client()
    html = client.get("/?model=tiny_float32").get_data(as_text=True)
    config = json.loads(re.search(r'id="ondevice-config">(.*?)</script>', html).group(1))
    entry = config["classifier"]
    assert entry["sha256"] == classifiers(app)["tiny_float32"].metadata.file_sha256
    assert client.get(entry["url"]).data == demo_variant_paths["float32"].read_bytes()
    assert "/?model=tiny_float32" in config["shell"]


def test_the_small_model_is_looked_for_in_its_companion_folder(tmp_path):
    from demo_server.config import locate_small_model

    small = tmp_path / "models" / "small" / "skin_lesion_small_int8.tflite"
    small.parent.mkdir(parents=True)
    small.write_bytes(b"x")
    assert locate_small_model(environ={}, cwd=tmp_path).path == small
    named = tmp_path / "elsewhere.tflite"
    found = locate_small_model(environ={"SKINLESION_SMALL_MODEL": str(named)}, cwd=tmp_path)
    assert found.path == named and found.from_env


def test_the_page_can_show_another_model_than_the_apis_default(
    demo_variant_paths, demo_samples_dir, tmp_path
):
    """PAGE_MODEL (the small file, as the CLI serves it): plain page addresses show it and its
    API calls name it; the API's default stays; ?model= still picks the other on the page."""
    from test_ondevice_routes import app_for, fake_web

    app = app_for(
        demo_variant_paths["uint8"],
        demo_samples_dir,
        fake_web(tmp_path / "web"),
        MORE_MODEL_PATHS=[demo_variant_paths["float32"]],
        PAGE_MODEL="tiny_float32",
    )
    client = app.test_client()
    plain = client.get("/").get_data(as_text=True)
    assert '<option value="tiny_float32" selected>' in plain
    assert '<body data-model="tiny_float32">' in plain  # the API's calls name it
    assert 'href="/model"' in plain  # plain links keep meaning "the page's default"
    config = json.loads(re.search(r'id="ondevice-config">(.*?)</script>', plain).group(1))
    assert config["classifier"]["sha256"] == classifiers(app)["tiny_float32"].metadata.file_sha256
    other = client.get("/?model=tiny_uint8").get_data(as_text=True)
    assert '<option value="tiny_uint8" selected>' in other
    assert '<body data-model="">' in other and 'href="/model?model=tiny_uint8"' in other
    models = client.get("/api/v1/models").get_json()["models"]
    assert [m["id"] for m in models if m["default"]] == ["tiny_uint8"]


def test_a_page_model_that_is_not_served_is_refused(demo_variant_paths):
    with pytest.raises(ModelError, match="the page's model 'nope' is not served"):
        create_app(
            {
                "MODEL_PATH": demo_variant_paths["uint8"],
                "PAGE_MODEL": "nope",
                "LESION_GATE_PATH": None,
            }
        )


def test_the_cli_shows_the_small_model_on_the_page_when_it_serves_it(tmp_path):
    small = tmp_path / "skin_lesion_small_int8.tflite"
    found = ModelLocation(small, "SKINLESION_SMALL_MODEL", from_env=False, tried=(small,))
    assert page_model(None, (small,), found) == "skin_lesion_small_int8"
    assert page_model(None, (), found) is None  # --more-models "": not served, not shown
    assert page_model("", (small,), found) is None  # --page-model "": the API's default
    assert page_model("other", (small,), found) == "other"
    assert build_parser(small_model=found).parse_args(["--page-model", "x"]).page_model == "x"
