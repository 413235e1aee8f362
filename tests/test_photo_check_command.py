"""python -m train.photo_check on a split made of the committed sample images (no
../shared/data needed), with the shipped segmenter and hand-made predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from contract.records import Record
from contract.run_folder import write_split
from contract.taxonomy import LABELS
from train.photo_check import main

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "sample_images").glob("*.jpg"))
SEGMENTER = REPO / "models" / "lesion_segmenter.tflite"


def run_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A run whose val split is the samples, and predictions naming each one's own label (the
    malignant ones referred), except the first phone photo, called nv and not referred."""
    records = [
        Record(path, path.name.split("_")[0], path.stem, path.name.split("_")[1], "samples")
        for path in SAMPLES
    ]
    run = tmp_path / "run"
    run.mkdir()
    write_split(run / "split.csv", {"train": [], "val": records, "test": []})
    wrong = next(r for r in records if r.domain == "phone")
    predictions = tmp_path / "predictions.csv"
    rows = []
    for r in records:
        said = "nv" if r is wrong else r.label
        probs = {code: 0.9 if code == said else 0.1 / 6 for code in LABELS}
        rows.append([str(r.path), r.group, r.domain, r.label, 0, 0.5, *probs.values()])
    with predictions.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["path", "group", "domain", "label", "cutout", "threshold"]
            + [f"p_{code}" for code in LABELS]
        )
        writer.writerows(rows)
    return run, predictions


@pytest.mark.skipif(
    not SEGMENTER.is_file(),
    reason="models/lesion_segmenter.tflite is not here (python -m export.segmentation writes it)",
)
def test_reports_each_kind_of_photo_its_measures_fires_and_worsened_copies(tmp_path, capsys):
    run, predictions = run_folder(tmp_path)
    out = tmp_path / "out"
    assert (
        main(
            [
                str(run),
                "--predictions",
                str(predictions),
                "--segmenter",
                str(SEGMENTER),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "photo_check.json").read_text())
    phone, dermoscopic = result["domains"]["phone"], result["domains"]["dermoscopic"]
    assert (phone["images"], dermoscopic["images"]) == (5, 9)
    # the samples pass the shipped rule; the accuracy of the rest counts the one wrong photo
    assert phone["fires_any"] == dermoscopic["fires_any"] == 0
    assert phone["rest"]["images"] == 5 and phone["rest"]["accuracy"] == 0.8
    assert phone["rest"]["sensitivity"] == 0.667  # akiec, bcc, mel: akiec called nv
    assert dermoscopic["rest"]["accuracy"] == 1.0
    # the blur and a dark copy are asked to be retaken, every one
    for report in (phone, dermoscopic):
        assert report["degraded"]["gaussian blur radius 12"]["blurry"] == report["images"]
        assert report["degraded"]["brightness x 0.25"]["dark"] == report["images"]
    assert "## phone: 5 photos" in (out / "photo_check.md").read_text()
    assert "Fires on 0 of 5" in capsys.readouterr().out


def test_bad_arguments_get_a_usage_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--predictions", str(tmp_path / "none.csv")])
    assert exit_info.value.code == 2
    assert "usage: python -m train.photo_check" in capsys.readouterr().err


def test_a_missing_segmenter_is_reported(tmp_path, capsys):
    run, predictions = run_folder(tmp_path)
    missing = tmp_path / "none.tflite"
    assert main([str(run), "--predictions", str(predictions), "--segmenter", str(missing)]) == 2
    assert "python -m train.photo_check: error: cannot read segmenter file" in (
        capsys.readouterr().err
    )
