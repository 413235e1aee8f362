"""The page's on-device JavaScript against the Python contract, on the same inputs.

web/contract_harness.mjs runs the page's modules (demo_server/static/modelfile.mjs,
pixels.mjs, screening.mjs) in Node on inputs made here; every answer is compared with what the
server computes (contract.screening, contract.answers, contract.tensors, contract.model_file,
contract.images' bilinear resize, demo_server.screening's response). A change on either side
that changes an answer fails here. Needs Node (>= 20); skipped without it, except in CI.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from ondevice_support import REPO, run_harness, spec_json
from PIL import Image

from contract.answers import refuse_answers, request_domains, stated_domain
from contract.questionnaire import AnswerError
from contract.tensors import TensorSpec, dequantize_output, quantize_input
from demo_server.lesion_gate import LesionGate
from demo_server.model import Classifier
from demo_server.screening import (
    NOT_A_LESION_MESSAGE,
    TRIAGE_MESSAGES,
    UNSURE_MESSAGE,
    screen,
    screening_json,
)

SHIPPED = REPO / "models" / "skin_lesion_int8_mixed.tflite"
GATE = REPO / "models" / "lesion_gate.tflite"
FIXTURES = REPO / "tests" / "fixtures"
MESSAGES = {
    "triage": TRIAGE_MESSAGES,
    "unsure": UNSURE_MESSAGE,
    "not_a_lesion": NOT_A_LESION_MESSAGE,
}


def classifier_files() -> list[Path]:
    files = [FIXTURES / "tiny_uint8.tflite", FIXTURES / "tiny_uint8_answers.tflite"]
    files += [FIXTURES / "tiny_int8.tflite", FIXTURES / "tiny_float32.tflite"]
    return files + ([SHIPPED] if SHIPPED.is_file() else [])


@pytest.fixture(scope="module")
def classifiers() -> dict[str, Classifier]:
    return {str(p): Classifier.from_file(p, interpreters=1) for p in classifier_files()}


def test_model_files_read_alike(tmp_path, classifiers):
    """Labels, names, card numbers and tensor details, from the same bytes."""
    gates = [str(GATE)] if GATE.is_file() else []
    answer = run_harness(tmp_path, {"models": list(classifiers), "gates": gates})
    for path, model in classifiers.items():
        meta, js = model.metadata, answer["models"][path]
        assert js["labels"] == list(meta.labels)
        assert js["display_names"] == list(meta.display_names)
        assert js["malignant_labels"] == list(meta.malignant_labels)
        assert (js["name"], js["version"]) == (meta.name, meta.version)
        assert (js["temperature"], js["threshold"]) == (meta.temperature, meta.triage.any_domain)
        assert js["thresholds_by_domain"] == dict(meta.triage.by_domain)
        answers = meta.answers
        assert js["answers_thresholds"] == (
            {"any": answers.triage.any_domain, "by_domain": dict(answers.triage.by_domain)}
            if answers
            else None
        )
        assert js["input"] == spec_json(meta.input)
        assert js["output"] == spec_json(meta.output)
        assert js["questions"] == (list(meta.answers.questions) if meta.answers else None)
        assert js["pinned_input"] == list(meta.input.shape)
    for path in gates:
        gate = LesionGate.from_file(Path(path), interpreters=1)
        interpreter = Interpreter(model_path=path)
        js = answer["gates"][path]
        assert (js["threshold"], js["image_size"]) == (gate.threshold, gate.image_size)
        assert js["input"] == spec_json(TensorSpec.from_detail(interpreter.get_input_details()[0]))
        assert js["output"] == spec_json(
            TensorSpec.from_detail(interpreter.get_output_details()[0])
        )


def random_outputs(rng: np.random.Generator, model: Classifier, n: int) -> list[list[float]]:
    """Raw probabilities as the model gives them: on its output's quantization grid when it
    has one, with zeros, near-ties and one-hot extremes among them."""
    classes = len(model.metadata.labels)
    spec = model.metadata.output
    rows = []
    for i in range(n):
        p = rng.dirichlet(np.full(classes, [0.05, 0.3, 1.0, 5.0][i % 4]))
        if i % 11 == 0:
            p = np.eye(classes)[i % classes]
        if i % 13 == 0:
            p = np.full(classes, 1 / classes)
        if spec.dtype.kind != "f":
            scale = spec.scale or 1 / 256
            p = np.round(p / scale) * scale
        rows.append([float(x) for x in p])
    return rows


def random_forms(rng: np.random.Generator, model: Classifier, n: int) -> list[dict[str, str]]:
    """Answers a person could give (valid, invalid and none), as the page's fields send them."""
    spec = model.metadata.answers
    if spec is None:
        stated = [{"domain": "dermoscopic"}, {"domain": "phone"}, {"domain": "satellite"}]
        return [{}] * (n - 5) + stated + [{"age": "40"}, {"itch": "yes", "domain": "phone"}]
    forms: list[dict[str, str]] = [{}]
    ages = ["0", "29", "29.9", "30", "44.5", "75", "120", "1e2", ".5", "+40"]
    for _ in range(n - 8):
        form: dict[str, str] = {}
        for name, question in spec.questions.items():
            if rng.random() < 0.4:
                continue
            if question.kind == "number":
                form[name] = str(rng.choice(ages))
            else:
                form[name] = str(rng.choice(question.choices))
        if rng.random() < 0.7:
            form["domain"] = str(rng.choice(list(spec.models)))
        forms.append(form)
    forms += [
        {"age": "121"},
        {"age": "abc"},
        {"age": "-1"},
        {"sex": "other"},
        {"domain": "satellite"},
        {"site": "face", "domain": "dermoscopic", "itch": "yes"},
        {"itch": "no", "bleed": "yes", "elevation": "no"},
    ]
    return forms


def python_answer(model: Classifier, raw: list[float], form: dict, unsure_below: float) -> dict:
    """What POST /api/v1/classify answers for these raw outputs and answers (api.py's steps)."""
    meta = model.metadata
    fields = {name: [value] for name, value in form.items()}
    try:
        if meta.answers is None:
            refuse_answers(fields)
            effect = None
        else:
            effect = meta.answers.effect(meta.answers.read(fields))
        domain = stated_domain(fields, request_domains(meta.answers))
    except AnswerError as error:
        return {"error": error.code, "message": str(error)}
    ratios = effect.log_ratios if effect is not None else None
    result = screen(np.asarray(raw), meta, unsure_below, ratios, domain)
    body = screening_json(result, meta, unsure_below)
    if effect is not None:
        body["answers"] = effect.as_json()
    body["raw"] = {"probabilities": list(result.probabilities), "top_index": result.top_index}
    return body


def assert_same(js, py, where: str, tolerance: float) -> None:
    """Equal JSON, numbers within `tolerance`."""
    if isinstance(py, dict):
        assert isinstance(js, dict) and set(py) <= set(js), f"{where}: {js} vs {py}"
        for key in py:
            assert_same(js[key], py[key], f"{where}.{key}", tolerance)
    elif isinstance(py, list):
        assert isinstance(js, list) and len(js) == len(py), f"{where}: {js} vs {py}"
        for i, (a, b) in enumerate(zip(js, py, strict=True)):
            assert_same(a, b, f"{where}[{i}]", tolerance)
    elif isinstance(py, float) and not isinstance(py, bool):
        assert js == pytest.approx(py, abs=tolerance, rel=0), f"{where}: {js} vs {py}"
    else:
        assert js == py, f"{where}: {js!r} vs {py!r}"


def test_screening_answers_and_triage_agree(tmp_path, classifiers):
    """Calibration, answers, P(malignant), triage, unsure and the response's wording."""
    rng = np.random.default_rng(21)
    cases = []
    for path, model in classifiers.items():
        if path.endswith(("tiny_int8.tflite", "tiny_float32.tflite")):
            continue  # same cards as tiny_uint8; their tensors are checked above
        forms = random_forms(rng, model, 60)
        outputs = random_outputs(rng, model, len(forms))
        for i, (raw, form) in enumerate(zip(outputs, forms, strict=True)):
            cases.append(
                {"model": path, "raw": raw, "form": form, "unsure_below": [0.5, 0.3][i % 2]}
            )
    answer = run_harness(
        tmp_path, {"models": list(classifiers), "screening": cases, "messages": MESSAGES}
    )
    errors = kept_by_photo = 0
    for i, (case, js) in enumerate(zip(cases, answer["screening"], strict=True)):
        py = python_answer(
            classifiers[case["model"]], case["raw"], case["form"], case["unsure_below"]
        )
        where = f"case {i} ({Path(case['model']).name}, {case['form']})"
        if "error" in py:
            errors += 1
            assert js == py, where
            continue
        raw = py.pop("raw")
        kept_by_photo += py["triage"].get("referred_by_photo", False)
        assert js["raw"]["top_index"] == raw["top_index"], where
        assert_same(js["raw"]["probabilities"], raw["probabilities"], where, 1e-12)
        # The rounded response: 6 decimals on both sides, so at most one unit of the last apart.
        assert_same(js, py, where, 1.01e-6)
    assert errors >= 5  # the invalid answers were refused alike
    assert kept_by_photo >= 1  # a photo's referral that the answers would cancel stood alike


def test_bilinear_resize_is_pillows_to_the_byte(tmp_path):
    """contract.images.resize_to_input and pixels.mjs give identical model input."""
    rng = np.random.default_rng(5)
    sizes = [
        ((200, 150), (224, 224)),
        ((572, 572), (224, 224)),
        ((300, 300), (128, 128)),
        ((1600, 1200), (224, 224)),
        ((1000, 225), (224, 224)),
        ((17, 5), (224, 224)),
        ((1, 1), (64, 64)),
        ((224, 224), (224, 224)),
        ((224, 300), (224, 224)),
        ((300, 224), (224, 224)),
        ((640, 480), (13, 7)),
        # Pillow 13 runs the vertical pass first when the height shrinks over twice the width's
        ((112, 336), (224, 224)),
        ((200, 225), (224, 224)),
        ((300, 400), (224, 224)),
        ((450, 600), (224, 224)),
        ((3, 301), (224, 224)),
    ]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for (w, h), _ in sizes]
    samples = sorted((REPO / "sample_images").glob("*.jpg"))[:3]
    for path in samples:  # smooth photos, not only noise
        image = np.asarray(Image.open(path).convert("RGB"))
        images.append(image)
        sizes.append(((image.shape[1], image.shape[0]), (224, 224)))
    request = {
        "resize": [
            {
                "width": w,
                "height": h,
                "out_width": ow,
                "out_height": oh,
                "pixels": base64.b64encode(image.tobytes()).decode(),
            }
            for ((w, h), (ow, oh)), image in zip(sizes, images, strict=True)
        ]
    }
    answer = run_harness(tmp_path, request)
    for ((w, h), (ow, oh)), image, js in zip(sizes, images, answer["resize"], strict=True):
        expected = np.asarray(Image.fromarray(image).resize((ow, oh), Image.BILINEAR))
        got = np.frombuffer(base64.b64decode(js), dtype=np.uint8).reshape(oh, ow, 3)
        assert np.array_equal(got, expected), f"{w}x{h} -> {ow}x{oh}"


def test_quantization_tables_agree(tmp_path):
    specs = [
        TensorSpec((1, 224, 224, 3), np.dtype("uint8"), 1.0, 0),
        TensorSpec((1, 224, 224, 3), np.dtype("uint8"), 0.0, 0),
        TensorSpec((1, 224, 224, 3), np.dtype("int8"), 0.0, 0),
        TensorSpec((1, 224, 224, 3), np.dtype("int8"), 1.0, -128),
        TensorSpec((1, 224, 224, 3), np.dtype("int8"), 0.0078125, 0),
        TensorSpec((1, 224, 224, 3), np.dtype("uint8"), 0.5, 3),
        TensorSpec((1, 7), np.dtype("uint8"), 0.003917016554623842, 0),
        TensorSpec((1, 7), np.dtype("int8"), 1 / 256, -128),
    ]
    values = {
        "uint8": list(range(256)),
        "int8": list(range(-128, 128)),
    }
    request = {
        "quantize": [
            {"spec": spec_json(s) | {"dtype": s.dtype.name}, "values": values[s.dtype.name]}
            for s in specs
        ]
    }
    answer = run_harness(tmp_path, request)
    pixels = np.arange(256, dtype=np.uint8)
    for spec, js in zip(specs, answer["quantize"], strict=True):
        assert js["table"] == quantize_input(pixels, spec).tolist(), spec
        out = dequantize_output(np.asarray(values[spec.dtype.name], dtype=spec.dtype), spec)
        assert js["dequantized"] == pytest.approx(out.tolist(), abs=0, rel=0), spec


def _colour_inputs() -> list[np.ndarray]:
    """Model inputs as every client makes them (contract.images.model_input at 224 px) from
    each sample photo, and edge cases: noise, a strong cast, grey, black, one channel, tiny."""
    from contract.images import model_input

    inputs = [model_input(path, 224) for path in sorted((REPO / "sample_images").glob("*.jpg"))]
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    cast = np.clip(inputs[0] * np.array([1.3, 0.9, 0.6]), 0, 255).astype(np.uint8)
    grey = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8).repeat(3, axis=-1)
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0], red[0, 0, 1] = np.arange(256).reshape(16, 16), 1
    return [*inputs, noise, cast, grey, np.zeros((8, 8, 3), np.uint8), red, noise[:1, :1]]


def test_colour_constancy_is_pythons_to_the_byte(tmp_path):
    """colour.mjs and contract.colour_constancy: the same gains and the same input bytes,
    exactly (the per-pixel work is in integers on both sides; docs/levers.md, 3b)."""
    from contract.colour_constancy import SHADES_OF_GREY_P6, apply, gains

    inputs = _colour_inputs()
    request = {
        "colour": [
            {"step": step, "pixels": base64.b64encode(image.tobytes()).decode()}
            for image in inputs
            for step in (SHADES_OF_GREY_P6, None)
        ]
    }
    answer = run_harness(tmp_path, request)
    changed = []
    for i, image in enumerate(inputs):
        corrected, unchanged = answer["colour"][2 * i], answer["colour"][2 * i + 1]
        assert corrected["gains"] == gains(image).tolist(), i
        expected = apply(image, SHADES_OF_GREY_P6)
        assert base64.b64decode(corrected["pixels"]) == expected.tobytes(), i
        assert base64.b64decode(unchanged["pixels"]) == image.tobytes(), i
        changed.append(not np.array_equal(expected, image))
    assert all(changed[:-6])  # every sample photo is corrected: the parity is not vacuous


def test_the_cards_colour_step_reads_alike(tmp_path, with_colour_step):
    """The switch in the card (input.colour_constancy) as the server and the page read it:
    absent in the committed files (no step), the step's name where training wrote it."""
    from contract.colour_constancy import SHADES_OF_GREY_P6

    files = [FIXTURES / "tiny_uint8.tflite", with_colour_step(SHADES_OF_GREY_P6)]
    answer = run_harness(tmp_path, {"models": [str(p) for p in files]})
    for path in files:
        meta = Classifier.from_file(path, interpreters=1).metadata
        assert answer["models"][str(path)]["colour_constancy"] == meta.colour_constancy
    assert [answer["models"][str(p)]["colour_constancy"] for p in files] == [
        None,
        SHADES_OF_GREY_P6,
    ]
