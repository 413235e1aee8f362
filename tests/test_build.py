"""The one-command build (python -m pipeline): the shipped recipe's plan, and a tiny recipe end
to end to a folder export.ship accepts, skipping what is current when run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_recipe import TINY  # the tiny training sections, shared with the recipe tests

from pipeline.__main__ import main

REPO = Path(__file__).resolve().parent.parent

# The steps after training, at tiny sizes; an untrained network may lose accuracy to int8, so
# the gates are loose here (they are tested in test_pipeline.py).
TINY_BUILD = TINY + """
[metrics]
splits = ["test"]

[gate]
image_size = 64
components = 16

[export]
variants = ["int8_mixed"]
representative_images = 24
float_ops = 2
max_loss_points = 100

[segmenter]
photos = "{data}/pad_ufes20"
cutouts = "{data}/pad_ufes20_cutouts"
image_size = 64
epochs = 1
batch_size = 8

[student]
seed = 5

[student.export]
variants = ["int8"]
bias_correction = true
representative_images = 24
max_loss_points = 100
file_stem = "skin_lesion_small"

[bench]
runs = 2
warmup = 1

[evaluation]
"""


def test_a_dry_run_of_the_shipped_recipe_lists_every_step_with_its_output(
    tmp_path: Path, capsys
):
    out = tmp_path / "shipped"
    assert main([str(REPO / "recipes" / "shipped.toml"), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = {line.split()[1]: line.split(" -> ")[1] for line in lines}
    members = [f"member-{m}" for m in ("seed3", "seed4", "seed13", "fb12_seed16")]
    expected = [
        "split", *members, "ensemble", "answers", "metrics-test", "metrics-test-answers", "gate",
        "segmenter-masks", "segmenter", "export", "gate-export", "segmenter-export",
        "teacher-split", *("teacher-" + m for m in members), "teacher-ensemble",
        "teacher-answers", "student-split", "student-member-student", "student-ensemble",
        "student-answers", "student-export", "bench", "evaluation", "evaluation-answers",
        "student-evaluation", "student-evaluation-answers",
    ]
    assert list(steps) == expected
    assert all("[to do]" in line for line in lines)
    assert steps["export"].startswith(f"{out / 'export' / 'skin_lesion_int8_mixed.tflite'}")
    small = out / "export" / "small" / "skin_lesion_small_int8.tflite"
    assert str(small) in steps["student-export"]
    assert steps["bench"] == str(out / "export" / "bench" / "bench.json")
    assert not out.exists()  # a dry run writes nothing


def test_a_bad_section_is_a_usage_error(tmp_path: Path, capsys):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(TINY_BUILD.format(data="d").replace("components = 16", "component = 16"))
    with pytest.raises(SystemExit) as raised:
        main([str(recipe), "--out", str(tmp_path / "out"), "--dry-run"])
    assert raised.value.code == 2
    assert "[gate]: unknown field(s) ['component']" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_recipe_builds_a_shippable_folder_and_skips_what_is_current(
    data_dir: Path, tmp_path: Path, capsys
):
    from contract.model_file import model_card, read_model_file
    from export.ship import ship

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_BUILD.format(data=data_dir))
    out = tmp_path / "build"
    assert main([str(recipe), "--out", str(out)]) == 0
    export = out / "export"

    card = json.loads((out / "model_card.json").read_text())
    assert card["backbone"] == "tiny_cnn-ensemble-of-2"
    assert "test" in card["metrics"] and "test" in card["answers"]["metrics"]
    shipped_card = model_card(read_model_file(export / "skin_lesion_int8_mixed.tflite"))
    assert shipped_card["metrics"]["test"] == card["metrics"]["test"]  # recorded before export
    student = json.loads((out / "student" / "model_card.json").read_text())
    assert student["hparams"]["distill_from"] == str(out)
    assert (out / "student" / "split.csv").read_bytes() == (out / "split.csv").read_bytes()
    for name in ("lesion_gate.tflite", "lesion_segmenter.tflite", "small/verification.json",
                 "small/skin_lesion_small_int8.tflite", "bench/bench.json"):
        assert (export / name).is_file(), name
    bench = json.loads((export / "bench" / "bench.json").read_text())
    assert {Path(row["model"]).name for row in bench["rows"]} == {
        "skin_lesion_int8_mixed.tflite", "skin_lesion_small_int8.tflite"
    }
    for folder in ("evaluation", "evaluation_answers", "small/evaluation"):
        metrics = json.loads((export / folder / "metrics.json").read_text())
        assert metrics["split"] == "val", folder  # every evaluation defaults to val

    models = tmp_path / "models"
    shipped = ship(export, models)  # export.ship accepts it
    assert models / "skin_lesion_int8_mixed.tflite" in shipped

    # Run again: every step is current. Change one section: that step alone is stale.
    capsys.readouterr()
    assert main([str(recipe), "--out", str(out)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert progress and all(line.endswith(": done") for line in progress)
    recipe.write_text(recipe.read_text().replace("runs = 2", "runs = 3"))
    assert main([str(recipe), "--out", str(out), "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in listed if "[stale]" in line] == ["bench"]
    assert all("[done]" in line for line in listed if "[stale]" not in line)
