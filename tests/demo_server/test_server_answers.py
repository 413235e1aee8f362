"""Optional answers about the person and the spot: formula, validation, API, pages, schema.

`answers_client` serves the tiny test network with a card that has an `answers` section
(tests/fixtures/demo_cards.demo_answers_card); `client` serves the same network with the plain
card. The formula itself and the checks of a malformed section are tested in tests/contract/.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from demo_server.extensions import default_classifier
from demo_server.model import Classifier
from demo_server.screening import screen

LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
# A fixed "photo" output for the hand computations (Classifier.predict is replaced by it).
RAW = np.array([0.05, 0.10, 0.20, 0.02, 0.15, 0.43, 0.05])


def jpeg_bytes(width: int = 120, height: int = 90) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (180, 110, 90)).save(out, format="JPEG")
    return out.getvalue()


def classify(client, **fields):
    data = {"image": (io.BytesIO(jpeg_bytes()), "photo.jpg"), **fields}
    return client.post("/api/v1/classify", data=data)


def ok(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_error(response, code: str) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    return error["message"]


def jsonschema():
    """The jsonschema module (a test extra), or a skip saying so."""
    return pytest.importorskip("jsonschema", reason="jsonschema is not installed (a [test] extra)")


def validate(document: dict, schema_name: str, instance: dict) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema().validate(instance, schema, cls=jsonschema().Draft202012Validator)


def by_code(body: dict) -> dict[str, float]:
    return {s["code"]: s["probability"] for s in body["scores"]}


def lse(z: np.ndarray) -> float:
    return float(np.log(np.exp(z).sum()))


def expected_probabilities(raw, classes, bias, pushes, strength, temperature) -> np.ndarray:
    """The card's formula written out by hand: z = b + the weights of the answered features."""
    b = np.array(bias)
    z = b + np.array([pushes.get(c, 0.0) for c in classes])
    r = np.zeros(len(LABELS))
    for i, code in enumerate(classes):
        r[LABELS.index(code)] = (z[i] - lse(z)) - (b[i] - lse(b))
    logits = (np.log(np.maximum(raw, 1e-6)) + strength * r) / temperature
    return np.exp(logits) / np.exp(logits).sum()


@pytest.fixture()
def fixed_raw(monkeypatch):
    monkeypatch.setattr(Classifier, "predict", lambda self, pixels: RAW.copy())


@pytest.fixture()
def openapi(answers_client) -> dict:
    return ok(answers_client.get("/api/v1/openapi.json"))


# --- the formula ----------------------------------------------------------------------------


def test_phone_answers_match_the_formula_by_hand(answers_client, openapi, fixed_raw):
    body = ok(classify(answers_client, age="80", sex="female", itch="yes"))
    # Phone model: age=75+ adds 2 to akiec, itch=yes 3 to bcc, sex has zero weights.
    expected = expected_probabilities(
        RAW,
        ["akiec", "bcc", "bkl", "mel", "nv"],
        [-1.0, -0.5, -0.2, -1.2, 0.8],
        {"akiec": 2.0, "bcc": 3.0},
        strength=0.8,
        temperature=0.8,
    )
    assert by_code(body) == pytest.approx(dict(zip(LABELS, expected, strict=True)), abs=2e-6)
    assert body["top"]["code"] == "bcc"
    p_malignant = expected[[0, 1, 4]].sum()
    assert body["p_malignant"] == pytest.approx(p_malignant, abs=2e-6)
    assert body["triage"]["threshold"] == 0.21
    assert body["triage"]["level"] == (
        "see_dermatologist" if p_malignant >= 0.21 else "low_concern"
    )
    assert body["calibration"] == {
        "temperature": 0.8,
        "threshold": 0.21,
        "source": "photo_and_answers",
    }
    assert body["answers"] == {
        "domain": "phone",
        "answered": 3,
        "questions": 9,
        "used": {"age": "75+", "sex": "female", "itch": "yes"},
        "not_used": [],
    }
    validate(openapi, "Classification", body)  # last: skipped without jsonschema


def test_dermoscopic_answers_use_that_domains_model(answers_client, fixed_raw):
    body = ok(classify(answers_client, domain="dermoscopic", age="20", site="face", itch="yes"))
    expected = expected_probabilities(
        RAW,
        list(LABELS),
        [-1.0, -0.8, 0.0, -2.0, -0.5, 1.5, -2.0],
        {"bkl": 2.0, "nv": 1.5},  # site=face and age=0-29
        strength=1.0,
        temperature=0.8,
    )
    assert by_code(body) == pytest.approx(dict(zip(LABELS, expected, strict=True)), abs=2e-6)
    assert body["answers"] == {
        "domain": "dermoscopic",
        "answered": 2,
        "questions": 3,
        "used": {"age": "0-29", "site": "face"},
        "not_used": ["itch"],
    }


def test_no_answers_is_the_photo_only_result_to_the_byte(answers_app, answers_client, app, client):
    pixels = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    same_raw = default_classifier(answers_app).predict(pixels)
    assert same_raw.tolist() == default_classifier(app).predict(pixels).tolist()

    plain = ok(classify(client))
    empty = {name: "" for name in ("age", "sex", "site", "itch", "domain")}
    unused = {"domain": "dermoscopic", "itch": "yes"}  # answered, but not a dermoscopic question
    for fields in ({}, empty, unused):
        body = ok(classify(answers_client, **fields))
        for key in ("scores", "top", "p_malignant", "unsure"):
            assert json.dumps(body[key]) == json.dumps(plain[key]), (fields, key)
        # A stated kind of photo gets its own threshold (the card's dermoscopic one is 0.35).
        threshold = 0.35 if fields is unused else 0.3
        assert body["triage"]["threshold"] == threshold
        assert body["triage"]["threshold_domain"] == ("dermoscopic" if fields is unused else None)
        refer = body["p_malignant"] >= threshold
        assert body["triage"]["level"] == ("see_dermatologist" if refer else "low_concern")
        assert body["calibration"] == {
            "temperature": 1.5,
            "threshold": threshold,
            "source": "photo_only",
        }
        assert body["answers"]["answered"] == 0
    assert plain["calibration"] == {"temperature": 1.5} and "answers" not in plain
    answered = ok(classify(answers_client, itch="yes", bleed="yes"))
    assert answered["scores"] != plain["scores"]  # the comparison above can tell them apart


def test_screen_refuses_ratios_for_a_model_without_answers(app):
    meta = default_classifier(app).metadata
    with pytest.raises(ValueError, match="no answers section"):
        screen(RAW, meta, 0.5, np.zeros(len(LABELS)))


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "bin_"),
    [("0", "0-29"), ("29.9", "0-29"), ("30", "30-44"), ("74.99", "60-74"), ("75", "75+")]
    + [("120", "75+"), ("4.5e1", "45-59")],
)
def test_age_bins(answers_client, age, bin_):
    assert ok(classify(answers_client, age=age))["answers"]["used"] == {"age": bin_}


@pytest.mark.parametrize(
    ("age", "why"),
    [("-1", "out of range"), ("120.5", "out of range"), ("abc", "not a number")]
    + [("nan", "not a number"), ("inf", "not a number"), ("30 years", "not a number")],
)
def test_bad_ages_are_400(answers_client, age, why):
    message = assert_error(classify(answers_client, age=age), "invalid_answer")
    assert "'age' must be a number from 0 to 120, or empty" in message
    assert repr(age) in message and why in message


def test_unknown_choice_lists_the_allowed_ones(answers_client, openapi):
    response = classify(answers_client, sex="purple")
    message = assert_error(response, "invalid_answer")
    assert "'purple' is not a choice for 'sex'" in message
    assert "female, male" in message
    site = assert_error(classify(answers_client, site="moon"), "invalid_answer")
    assert "face, scalp, neck, trunk, back, arm, hand, leg, foot, genital" in site
    # Choices are exact: no guessing at spelling or case.
    assert_error(classify(answers_client, itch="Yes"), "invalid_answer")
    validate(openapi, "Error", response.get_json())


def test_unknown_domain_lists_the_domains(answers_client):
    message = assert_error(classify(answers_client, domain="microscope"), "unknown_domain")
    assert "'microscope'" in message and "phone, dermoscopic" in message


def test_a_field_sent_twice_is_400(answers_client):
    data = {"image": (io.BytesIO(jpeg_bytes()), "p.jpg"), "itch": ["yes", "no"]}
    message = assert_error(answers_client.post("/api/v1/classify", data=data), "invalid_answer")
    assert "'itch' at most once" in message


def test_answers_to_a_model_without_answers_are_400(client):
    for field, value in (("age", "40"), ("itch", "yes"), ("sex", "female")):
        message = assert_error(classify(client, **{field: value}), "answers_not_supported")
        assert "does not take answers" in message and field in message
    # Empty fields are unanswered, and other fields are ignored as before (domain included).
    assert ok(classify(client, age="", sex="", domain="phone", note="hi"))["calibration"] == {
        "temperature": 1.5
    }


def test_unknown_fields_are_ignored_as_before(answers_client):
    assert ok(classify(answers_client, note="hello"))["answers"]["answered"] == 0


@pytest.mark.parametrize(
    ("fields", "answered", "of"),
    [
        ({"age": "50", "sex": "male"}, 2, 9),
        ({"grew": "no", "hurt": "", "elevation": "yes"}, 2, 9),
        ({"domain": "dermoscopic", "age": "50", "itch": "no"}, 1, 3),
    ],
)
def test_partly_answered_requests_report_the_count(answers_client, fields, answered, of):
    body = ok(classify(answers_client, **fields))
    assert (body["answers"]["answered"], body["answers"]["questions"]) == (answered, of)
    assert body["calibration"]["source"] == "photo_and_answers"


def test_a_card_without_answers_has_no_spec(app):
    assert default_classifier(app).metadata.answers is None


def test_answers_are_never_logged(answers_client, caplog):
    with caplog.at_level("DEBUG"):
        assert classify(answers_client, age="87.25", site="genital").status_code == 200
        assert classify(answers_client, age="87.5x", sex="purple").status_code == 400
    assert not [r for r in caplog.records if not r.name.startswith("PIL.")]
    assert "87.25" not in caplog.text and "genital" not in caplog.text


def test_explain_ignores_answers(answers_client):
    data = {"image": (io.BytesIO(jpeg_bytes()), "p.jpg"), "itch": "yes"}
    assert "answers" not in ok(answers_client.post("/api/v1/explain", data=data))


# --- OpenAPI --------------------------------------------------------------------------------


def test_openapi_documents_the_answer_fields(openapi):
    operation = openapi["paths"]["/api/v1/classify"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image"]
    assert list(form["properties"]) == [
        "image", "age", "sex", "site", "itch", "grew", "hurt", "changed", "bleed", "elevation",
        "domain",
    ]  # fmt: skip
    age = form["properties"]["age"]["anyOf"]
    assert age == [{"type": "number", "minimum": 0.0, "maximum": 120.0}, {"const": ""}]
    assert form["properties"]["sex"]["enum"] == ["", "female", "male"]
    assert form["properties"]["domain"]["enum"] == ["", "phone", "dermoscopic"]
    assert "never stored or logged" in operation["description"]


def test_openapi_without_answers_lists_the_image_and_the_kind_of_photo(client):
    document = ok(client.get("/api/v1/openapi.json"))
    content = document["paths"]["/api/v1/classify"]["post"]["requestBody"]["content"]
    properties = content["multipart/form-data"]["schema"]["properties"]
    assert list(properties) == ["image", "domain"]
    assert properties["domain"]["enum"] == ["", "dermoscopic", "phone"]
    validate(document, "Classification", ok(classify(client, domain="dermoscopic")))


def test_a_stated_kind_of_photo_without_answers_is_checked(client):
    body = ok(classify(client, domain="phone"))
    # tiny_uint8's card has no per-kind thresholds: the one for any kind is used.
    assert (body["triage"]["threshold"], body["triage"]["threshold_domain"]) == (0.3, None)
    message = assert_error(classify(client, domain="satellite"), "unknown_domain")
    assert message.endswith("send one of dermoscopic, phone, or leave it empty.")


def test_the_schema_checks_the_answers_object(answers_client, openapi):
    body = ok(classify(answers_client, age="50"))
    validate(openapi, "Classification", body)
    body["answers"]["answered"] = "one"
    with pytest.raises(jsonschema().ValidationError):
        validate(openapi, "Classification", body)
    body["answers"]["answered"] = 1
    body["calibration"]["source"] = "guess"
    with pytest.raises(jsonschema().ValidationError):
        validate(openapi, "Classification", body)


# --- pages ----------------------------------------------------------------------------------


def test_index_has_the_collapsed_answers_box(answers_client):
    html = answers_client.get("/").get_data(as_text=True)
    details = re.search(r"<details id=\"answers\"[^>]*>", html)
    assert details and "open" not in details.group(0)
    assert "About the person and the spot (optional)" in html
    for note in ("Answers change the result.", "Leave blank what you do not know.", "not stored"):
        assert note in html
    assert re.search(r'<input type="number" name="age" min="0"\s+max="120"', html)
    for name in ("sex", "site", "itch", "grew", "hurt", "changed", "bleed", "elevation"):
        assert f'<select name="{name}">' in html
    assert html.count('<option value="" selected>Don\'t know</option>') == 8
    assert '<option value="phone" selected>Phone camera</option>' in html
    assert '<option value="dermoscopic">Dermatoscope</option>' in html
    assert 'data-domains="phone"' in html and 'data-domains="phone dermoscopic"' in html
    assert 'id="calibration-note"' in html


def test_index_without_answers_has_no_answers_box_but_asks_the_kind_of_photo(client):
    html = client.get("/").get_data(as_text=True)
    assert "About the person" not in html and 'name="age"' not in html
    assert '<option value="phone" selected>Phone camera</option>' in html
    assert '<option value="dermoscopic">Dermatoscope</option>' in html


def test_model_page_compares_test_figures_with_answers(answers_client, client):
    html = answers_client.get("/model").get_data(as_text=True)
    table = html[html.index("Photo only and photo plus answers (test split)") :]
    table = table[: table.index("</table>")]
    rows = dict(re.findall(r"<tr><th>([^<]+)</th>\s*(.*?)</tr>", table, flags=re.S))
    cells = {label: re.findall(r"<td>(.*?)</td>", row, flags=re.S) for label, row in rows.items()}
    assert cells["Balanced accuracy, overall"] == ["0.550", "0.583"]
    assert cells["Balanced accuracy, dermoscopic"] == ["–", "0.512"]
    assert cells["Balanced accuracy, phone"] == [
        '0.625 <span class="interval">(0.438–0.812)</span>',
        "0.688",
    ]
    assert cells["Malignant sensitivity, phone"] == ["0.900", "0.937"]
    assert cells["Malignant specificity, phone"] == ["0.750", "0.812"]
    assert "as the clinic recorded\n    them" in html
    assert "temperature\n      0.8" in html and "21% instead" in html
    assert "photo plus answers" not in client.get("/model").get_data(as_text=True)


def test_model_page_says_what_to_expect_of_the_triage(answers_client, answers_card):
    from contract.card import ModelCard
    from demo_server.pages import triage_expectations

    html = answers_client.get("/model").get_data(as_text=True)
    table = html[html.index("What to expect from the advice") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", table, flags=re.S)
    cells = [(label, re.findall(r"<td>(.*?)</td>", row, flags=re.S)) for label, row in rows]
    assert cells == [
        ("photo only", ["Dermatoscope", "35%", "val", "0.951", "0.970", "about 2.4"]),
        ("photo only", ["Phone camera", "30%", "val", "0.962", "0.980", "about 3.1"]),
        ("photo plus answers", ["Phone camera", "21%", "val", "0.955", "0.990", "about 1.8"]),
    ]
    assert "95% confidence" in html
    answers_card["triage"]["by_domain"]["phone"]["chosen_on"] = "out-of-fold predictions (...)"
    rows = triage_expectations(ModelCard.from_json(answers_card))
    assert [r["chosen_on"] for r in rows] == ["val", "out of fold", "val"]
    answers_card["triage"]["by_domain"]["phone"]["referrals_per_malignant_found"] = float("nan")
    rows = triage_expectations(ModelCard.from_json(answers_card))
    phone = next(r for r in rows if r["inputs"] == "photo only" and r["domain"] == "Phone camera")
    assert phone["referrals"] is None and phone["lower_bound"] == 0.962  # none found: a dash
    answers_card["triage"].pop("by_domain")
    answers_card["answers"]["triage"].pop("by_domain")
    assert triage_expectations(ModelCard.from_json(answers_card)) == []


def test_model_page_without_per_domain_triage_has_no_expectations(client):
    assert "What to expect from the advice" not in client.get("/model").get_data(as_text=True)
