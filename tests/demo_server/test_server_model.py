"""demo_server.model / screening / explain: LiteRT I/O handling, screening, pool, occlusion.

The pure formulas (input quantization, output dequantization, calibration) are tested in
tests/contract/.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.card import ModelCard
from contract.screening import REFER, WATCH
from demo_server.config import DEFAULT_LESION_GATE_PATH
from demo_server.explain import occluded_batch, occlusion_map
from demo_server.extensions import default_classifier
from demo_server.model import Classifier, ModelError
from demo_server.screening import screen

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "models" / "skin_lesion_int8_mixed.tflite"


def test_screen_threshold_and_unsure(app):
    meta = default_classifier(app).metadata  # T = 1.5, threshold 0.3
    raw = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    result = screen(raw, meta, unsure_below=0.5)
    assert result.triage == WATCH and not result.unsure
    assert meta.labels[result.top_index] == "nv"
    raw = np.array([0.2, 0.05, 0.05, 0.05, 0.05, 0.55, 0.05])
    result = screen(raw, meta, unsure_below=0.5)
    assert result.p_malignant == pytest.approx(sum(result.probabilities[i] for i in (0, 1, 4)))
    assert result.triage == (REFER if result.p_malignant >= 0.3 else WATCH)
    assert result.unsure == (max(result.probabilities) < 0.5)
    assert screen(raw, meta, unsure_below=0.99).unsure


def test_uint8_int8_and_float_models_agree(demo_variant_paths):
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 255, (100, 80, 3), dtype=np.uint8))
    results = {}
    for name, path in demo_variant_paths.items():
        classifier = Classifier.from_file(path, interpreters=1)
        assert classifier.metadata.input.dtype == np.dtype(name)
        results[name] = classifier.predict(classifier.to_pixels(image))
        assert results[name].sum() == pytest.approx(1.0, abs=0.03)
    assert results["uint8"] == pytest.approx(results["float32"], abs=0.03)
    assert results["int8"] == pytest.approx(results["float32"], abs=0.03)


def test_to_pixels_stretches_with_bilinear(app):
    classifier = default_classifier(app)
    image = Image.fromarray(np.random.default_rng(4).integers(0, 255, (30, 200, 3), np.uint8))
    pixels = classifier.to_pixels(image)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    expected = np.asarray(image.resize((64, 64), Image.BILINEAR))
    assert np.array_equal(pixels, expected)


def test_model_without_metadata_is_rejected(tmp_path, demo_model_path):
    data = demo_model_path.read_bytes()
    flatbuffer_only = data[: data.index(b"PK\x03\x04")]
    with pytest.raises(ModelError, match="labels.txt"):
        Classifier(flatbuffer_only)


def test_garbage_and_missing_model_files_are_rejected(tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelError):
        Classifier.from_file(garbage)
    with pytest.raises(ModelError, match="cannot read"):
        Classifier.from_file(tmp_path / "missing.tflite")


def test_labels_must_match_outputs(demo_model_path):
    import zipfile

    data = demo_model_path.read_bytes()
    start = data.index(b"PK\x03\x04")
    out = io.BytesIO(data[:start])
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("labels.txt", "a\nb\n")
    with pytest.raises(ModelError, match="2 labels"):
        Classifier(out.getvalue())


def test_pool_serves_concurrent_threads_with_identical_results(demo_model_path):
    classifier = Classifier.from_file(demo_model_path, interpreters=2)
    rng = np.random.default_rng(5)
    inputs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(8)]
    expected = [classifier.predict(pixels) for pixels in inputs]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(40):
                k = (i + offset) % len(inputs)
                assert np.array_equal(classifier.predict(inputs[k]), expected[k])
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_occluded_batch_covers_each_cell_once():
    pixels = np.full((10, 14, 3), 7, dtype=np.uint8)
    batch = occluded_batch(pixels, 3)
    assert batch.shape == (9, 10, 14, 3)
    grey = (batch == 128).all(axis=-1)
    assert grey.sum(axis=0).tolist() == np.ones((10, 14), int).tolist()
    assert grey[0, 0, 0] and grey[8, 9, 13] and not grey[0, 9, 13]


def test_occlusion_batched_equals_one_by_one(demo_model_path):
    classifier = Classifier.from_file(demo_model_path, interpreters=1)
    pixels = np.random.default_rng(6).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    batched = occlusion_map(classifier, pixels, 4)
    assert batched.batched and batched.drops.shape == (4, 4)
    classifier._can_batch, classifier._batch_interpreter = False, None  # as if resize failed
    looped = occlusion_map(classifier, pixels, 4)
    assert not looped.batched
    assert looped.target == batched.target
    assert looped.drops == pytest.approx(batched.drops, abs=1e-6)
    assert np.abs(batched.drops).max() > 0


@pytest.mark.slow
@pytest.mark.skipif(
    not SHIPPED_MODEL.is_file(),
    reason=f"the shipped model {SHIPPED_MODEL.relative_to(REPO)} is not in the repo yet",
)
def test_shipped_model_classifies_and_explains():
    from demo_server import create_app

    app = create_app({"MODEL_PATH": SHIPPED_MODEL, "INTERPRETERS": 1, "LESION_GATE_PATH": None})
    meta = default_classifier(app).metadata
    assert len(meta.labels) == 7 and set(meta.malignant_labels) <= set(meta.labels)
    samples = sorted((REPO / "sample_images").glob("*.jp*g"))
    if samples:
        data = samples[0].read_bytes()
    else:
        out = io.BytesIO()
        Image.new("RGB", (640, 480), (190, 140, 120)).save(out, "JPEG")
        data = out.getvalue()
    client = app.test_client()
    body = client.post("/api/v1/classify", data=data, content_type="image/jpeg").get_json()
    assert {s["code"] for s in body["scores"]} == set(meta.labels)
    assert sum(s["probability"] for s in body["scores"]) == pytest.approx(1.0, abs=1e-3)
    # Explain works on the real model (its time is measured in the README, not asserted here).
    response = client.post("/api/v1/explain", data=data, content_type="image/jpeg")
    assert response.status_code == 200
    assert response.get_json()["target"]["code"] == body["top"]["code"]


@pytest.mark.parametrize("gate", [None, DEFAULT_LESION_GATE_PATH], ids=["no_gate", "gate"])
def test_demo_server_never_imports_tensorflow(demo_model_path, demo_samples_dir, gate):
    if gate is not None and not gate.is_file():
        pytest.skip(f"the shipped lesion gate {gate} is not in the repo")
    gate_path = None if gate is None else str(gate)
    code = (
        "import sys, io\n"
        "import demo_server, demo_server.__main__, demo_server.loadtest\n"
        f"app = demo_server.create_app({{'MODEL_PATH': {str(demo_model_path)!r}, "
        f"'LESION_GATE_PATH': {gate_path!r}}})\n"
        "c = app.test_client()\n"
        "from PIL import Image\n"
        "b = io.BytesIO(); Image.new('RGB', (50, 50)).save(b, 'PNG')\n"
        "assert c.post('/api/v1/classify', data=b.getvalue()).status_code == 200\n"
        "assert c.post('/api/v1/explain', data=b.getvalue()).status_code == 200\n"
        "assert c.get('/model').status_code == 200\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'train', 'export', 'tf_keras'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_model_page_summarises_the_shipped_models_metrics():
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"the shipped model {SHIPPED_MODEL} is not in the repo")
    from demo_server import create_app

    app = create_app({"MODEL_PATH": SHIPPED_MODEL, "INTERPRETERS": 1, "LESION_GATE_PATH": None})
    card = default_classifier(app).metadata.card
    page = app.test_client().get("/model").get_data(as_text=True)
    for split in card.metrics:
        assert f"<h3>{split} split</h3>" in page
        bacc = card.metrics[split]["phone"]["balanced_accuracy"]
        assert f"<td>{bacc:.3f}</td>" in page or f"<td>{bacc:.3f} <span" in page


def test_model_page_says_what_the_shipped_threshold_did_on_test():
    """The shipped card predates the per-domain lower bounds; its test figures still tell a
    person what to expect: malignant spots referred and answers per malignant spot found."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"the shipped model {SHIPPED_MODEL} is not in the repo")
    from demo_server import create_app

    app = create_app({"MODEL_PATH": SHIPPED_MODEL, "INTERPRETERS": 1, "LESION_GATE_PATH": None})
    phone = default_classifier(app).metadata.card.metrics["test"]["phone"]
    page = app.test_client().get("/model").get_data(as_text=True)
    table = page[page.index('class="metrics triage-on-test"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><th>([^<]+)</th><td>Phone camera</td>(.*?)</tr>", table, flags=re.S)
    cells = {label: re.findall(r"<td>(.*?)</td>", row, flags=re.S) for label, row in rows}
    assert set(cells) == {"photo only", "photo plus answers"}
    threshold, sensitivity, malignant, referrals = cells["photo only"]
    assert threshold == f"{100 * phone['malignant']['threshold']:.0f}%"
    assert sensitivity.startswith(f"{phone['malignant']['sensitivity']:.3f} ")
    matrix = phone["confusion_matrix"]
    rows_true = matrix["rows_true_cols_pred"]
    codes = ("mel", "bcc", "akiec")
    assert int(malignant) == sum(sum(rows_true[matrix["labels"].index(c)]) for c in codes)
    assert referrals.startswith("about ") and 1.0 < float(referrals.split()[1]) < 3.0


def test_referrals_on_test_count_the_benign_spots_referred_per_malignant_one_found(demo_card):
    from demo_server.pages import referrals_on_test

    matrix = {"labels": ["mel", "nv"], "rows_true_cols_pred": [[8, 2], [10, 30]]}
    report = {
        "confusion_matrix": matrix,
        "malignant": {"threshold": 0.2, "sensitivity": 0.9, "specificity": 0.75},
        "ci95": {"malignant_sensitivity": [0.7, 1.0]},
    }
    test = {"test": {"phone": report, "overall": report}}
    card = replace(ModelCard.from_json(demo_card), metrics=test)  # the reports as they are
    (row,) = referrals_on_test(card, ("mel",))  # overall is not a kind of photo; no answers section
    # 10 malignant, 9 found; 40 benign, 10 referred: 19 referrals for 9 found
    assert row["malignant"] == 10 and row["referrals"] == pytest.approx(19 / 9)
    assert (row["domain"], row["inputs"], row["interval"]) == (
        "Phone camera",
        "photo only",
        [0.7, 1.0],
    )
    report["malignant"]["sensitivity"] = 0.0
    assert referrals_on_test(card, ("mel",))[0]["referrals"] is None  # none found: a dash
    report.pop("confusion_matrix")
    assert referrals_on_test(card, ("mel",)) == []


def test_metric_summaries_keep_only_standard_reports():
    from demo_server.pages import metric_summaries

    standard = {"n": 3, "balanced_accuracy": 0.5}
    metrics = {"val": {"overall": standard, "notes": "x"}, "balanced_accuracy": 0.51, "odd": {}}
    assert metric_summaries(metrics) == {"val": {"overall": standard}}
    assert metric_summaries(None) == {}
