"""The lesion gate's threshold rule, and re-thresholding an exported gate without its Keras model.

The re-threshold tests run the shipped models/lesion_gate.tflite on a split made of the committed
sample_images/ (no ../shared/data needed) and read the new file back as the demo server does.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.lesion_gate import THRESHOLD_MARGIN, choose_threshold

REPO = Path(__file__).resolve().parents[1]
GATE = REPO / "models" / "lesion_gate.tflite"
SAMPLES = sorted((REPO / "sample_images").glob("*.jpg"))
NOT_A_GATE = REPO / "tests" / "fixtures" / "tiny_float32.tflite"

needs_gate = pytest.mark.skipif(
    not GATE.is_file(),
    reason="models/lesion_gate.tflite is not here (python -m export.lesion_gate writes it)",
)


def test_threshold_is_the_largest_lesion_distance_times_the_margin():
    lesion = np.array([0.3, 1.5, 1.0])
    assert choose_threshold(lesion) == pytest.approx(1.5 * THRESHOLD_MARGIN)
    assert choose_threshold(lesion, np.array([9.0, 2.0]), 1.1) == pytest.approx(1.65)
    assert choose_threshold(lesion, np.array([]), 1.2) == pytest.approx(1.8)


def test_the_nearest_non_skin_picture_caps_the_threshold():
    lesion, non_skin = np.array([0.3, 1.5]), np.array([5.0, 1.76])
    threshold = choose_threshold(lesion, non_skin, 1.1)
    assert threshold == pytest.approx(1.6)
    assert np.all(lesion <= threshold) and np.all(non_skin > threshold)
    # Where the two overlap the cap wins: non-skin pictures stay out, at the lesions' cost.
    assert choose_threshold(lesion, np.array([1.1]), 1.1) == pytest.approx(1.0)


def test_a_new_photo_lies_above_the_largest_of_n_with_probability_1_over_n_plus_1():
    """The reason for the rule: 100 val photos give under 1% expected false refusals."""
    rng = np.random.default_rng(0)
    val, new = rng.lognormal(size=(2000, 100)), rng.lognormal(size=(2000, 500))
    rates = [np.mean(n > choose_threshold(v, margin=1.0)) for v, n in zip(val, new, strict=True)]
    assert np.mean(rates) == pytest.approx(1 / 101, rel=0.1)
    wider = [np.mean(n > choose_threshold(v)) for v, n in zip(val, new, strict=True)]
    assert np.mean(wider) < np.mean(rates)


@pytest.mark.parametrize(
    ("lesion", "margin", "message"),
    [(np.array([]), 1.1, "no val lesion"), (np.array([1.0]), 0.9, "at least 1")],
)
def test_bad_rule_inputs_are_refused(lesion, margin, message):
    with pytest.raises(ValueError, match=message):
        choose_threshold(lesion, margin=margin)


def write_sample_split(path: Path) -> Path:
    """A split whose val and test both hold every sample photo (kind from the file name)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "path", "label", "group", "domain", "source"])
        for split in ("val", "test"):
            for sample in SAMPLES:
                label, domain = sample.stem.split("_")[:2]
                writer.writerow([split, sample, label, sample.stem, domain, "sample_images"])
    return path


@pytest.fixture(scope="module")
def rethresholded(tmp_path_factory) -> Path:
    from export.gate_threshold import main

    folder = tmp_path_factory.mktemp("gate")
    split = write_sample_split(folder / "split.csv")
    assert main([str(GATE), "--split", str(split), "--out", str(folder / "out")]) == 0
    return folder / "out" / "lesion_gate.tflite"


@needs_gate
def test_rethresholding_keeps_the_network_and_packs_the_rule(rethresholded: Path):
    from contract.model_file import gate_json
    from export.metadata import without_files

    old, new = GATE.read_bytes(), rethresholded.read_bytes()
    assert without_files(new) == without_files(old) and new != old
    info = gate_json(new)
    report = json.loads((rethresholded.parent / "lesion_gate_report.json").read_text())
    assert report["threshold"] == info["threshold"]
    m = report["measured"]
    assert info["threshold"] == pytest.approx(
        min(1.1 * m["largest_val_lesion_distance"], m["lowest_development_distance"] / 1.1)
    )
    assert m["val_images"] == {"dermoscopic": 9, "phone": 5} == m["test_images"]
    assert m["val_false_rejection"] == m["test_false_rejection"]
    assert m["development_rejection"] == 1.0 and m["non_skin_rejection"] == 1.0
    assert info["measured"]["variant"] == gate_json(old)["measured"]["variant"]
    assert "re-thresholded from" in info["history"][-1]
    assert "re-thresholded from" in (rethresholded.parent / "lesion_gate_report.md").read_text()


@needs_gate
def test_the_demo_server_reads_the_new_threshold(rethresholded: Path):
    from contract.model_file import gate_json
    from demo_server.lesion_gate import LesionGate

    gate = LesionGate.from_file(rethresholded)
    assert gate.threshold == pytest.approx(gate_json(rethresholded.read_bytes())["threshold"])
    distances = []
    for sample in SAMPLES:
        with Image.open(sample) as image:
            result = gate.check(image.convert("RGB"))
        assert result.is_lesion, f"{sample.name}: {result}"
        distances.append(result.distance)
    report = json.loads((rethresholded.parent / "lesion_gate_report.json").read_text())
    largest = report["measured"]["largest_val_lesion_distance"]
    assert max(distances) == pytest.approx(largest, rel=1e-2)


@needs_gate
def test_the_shipped_gate_follows_its_packed_rule():
    from contract.model_file import gate_json

    info = gate_json(GATE.read_bytes())
    m = info["measured"]
    margin = m["threshold_margin"]
    assert f"{margin:g} x the largest val lesion distance" in info["rule"]
    assert info["threshold"] == pytest.approx(
        min(margin * m["largest_val_lesion_distance"], m["lowest_development_distance"] / margin)
    )
    assert m["non_skin_rejection"] == 1.0 and m["development_rejection"] == 1.0
    assert max(m["test_false_rejection"].values()) < 0.01


@needs_gate
@pytest.mark.parametrize(
    ("gate", "split", "out", "message"),
    [
        ("missing.tflite", "split", "out", "cannot read gate file"),
        ("not_a_gate", "split", "out", "lesion_gate.json"),
        ("unmeasured_gate", "split", "out", "lacks measured"),
        ("gate", "missing.csv", "out", "No such file"),
        ("gate", "no_val", "out", "no val rows"),
        ("gate", "not_a_split", "out", "not a split.csv"),
        ("gate", "split", "models", "export to a new folder"),
    ],
)
def test_usage_errors(tmp_path: Path, capsys, monkeypatch, gate, split, out, message):
    from export.gate_threshold import main
    from export.lesion_gate import pack
    from export.metadata import without_files

    monkeypatch.chdir(tmp_path)
    write_sample_split(tmp_path / "split")
    (tmp_path / "no_val").write_text("split,path,label,group,domain,source\n")
    (tmp_path / "not_a_split").write_text("a,b\n1,2\n")
    (tmp_path / "gate").write_bytes(GATE.read_bytes())
    (tmp_path / "not_a_gate").write_bytes(NOT_A_GATE.read_bytes())
    unmeasured = pack(without_files(GATE.read_bytes()), {"threshold": 1.0, "image_size": 128})
    (tmp_path / "unmeasured_gate").write_bytes(unmeasured)
    with pytest.raises(SystemExit) as exit_info:
        main([gate, "--split", split, "--out", out])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / out / "lesion_gate.tflite").exists()
