"""The one-command build (python -m pipeline): the shipped recipe's plan, and a tiny recipe end
to end to a folder export.ship accepts, skipping what is current when run again."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from test_recipe import TINY  # the tiny training sections, shared with the recipe tests

from pipeline.__main__ import main

REPO = Path(__file__).resolve().parent.parent

# The steps after training, at tiny sizes; an untrained network may lose accuracy to int8, so
# the gates are loose here (they are tested in test_pipeline.py). Full int8: int8_mixed's 20 float
# operators would be every operator of two tiny CNNs, which export.convert refuses.
TINY_BUILD = (
    TINY
    + """
[metrics]
splits = ["test"]

[gate]
image_size = 64
components = 16

[export]
variants = ["int8"]
representative_images = 24
max_loss_points = 100

[segmenter]
photos = "{phone}/pad_ufes20"
cutouts = "{phone}/pad_ufes20_cutouts"
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
)


def phone_subset(data_dir: Path, out: Path, photos: int = 60) -> Path:
    """The first `photos` PAD-UFES-20 photos with a cut-out, in the data sets' layout (images
    matched by stem): the segmenter's masks and training at a test's size."""
    source = data_dir / "pad_ufes20"
    folders = {
        "pad_ufes20": source / "images",
        "pad_ufes20_cutouts": data_dir / "pad_ufes20_cutouts" / "images",
    }
    files = {name: {p.stem: p for p in folder.iterdir()} for name, folder in folders.items()}
    with (source / "metadata.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        stems = lambda row: Path(row["img_id"]).stem  # noqa: E731
        rows = [r for r in reader if all(stems(r) in found for found in files.values())]
        columns = reader.fieldnames
    rows = rows[:photos]
    for name, found in files.items():
        (out / name / "images").mkdir(parents=True)
        for row in rows:
            path = found[stems(row)]
            shutil.copyfile(path, out / name / "images" / path.name)
    with (out / "pad_ufes20" / "metadata.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_a_dry_run_of_the_shipped_recipe_lists_every_step_with_its_output(tmp_path: Path, capsys):
    from pipeline.recipe import load_build_recipe
    from pipeline.steps import plan

    out = tmp_path / "shipped"
    assert main([str(REPO / "recipes" / "shipped.toml"), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = {line.split()[1]: line.split(" -> ")[1] for line in lines}
    names = ("seed3", "seed4", "seed13", "fb12_seed16")
    members = [step for m in names for step in (f"member-{m}", f"member-{m}-then")]
    folds = [f"crossfit-fold-{k}{stage}" for k in range(1, 6) for stage in ("", "-then")]
    expected = [
        "split",
        *members,
        "ensemble",
        "answers",
        "crossfit-folds",
        *folds,
        "crossfit-thresholds",
        "gate",
        "segmenter-masks",
        "segmenter",
        "export",
        "file-card",
        "gate-export",
        "segmenter-export",
        "student-split",
        "student-member-student",
        "student-ensemble",
        "student-answers",
        "student-export",
        "student-file-card",
        "bench",
        "evaluation",
        "evaluation-answers",
        "student-evaluation",
        "student-evaluation-answers",
    ]
    assert list(steps) == expected
    assert all("[to do]" in line for line in lines)
    assert steps["export"].startswith(f"{out / 'export' / 'skin_lesion_int8_mixed.tflite'}")
    small = out / "export" / "small" / "skin_lesion_small_int8.tflite"
    assert str(small) in steps["student-export"]
    assert steps["bench"] == str(out / "export" / "bench" / "bench.json")
    assert steps["file-card"] == str(out / "file_card" / "model_card.json")
    plans = {s.name: s for s in plan(load_build_recipe(REPO / "recipes" / "shipped.toml"), out)}
    folds = {out / "crossfit" / f"fold_{k}" / "members" / "seed3" / "then" for k in range(1, 6)}
    assert {p.parent for p in plans["file-card"].inputs if p.name == "model.keras"} == folds
    assert plans["student-file-card"].inputs[2] == small
    assert not out.exists()  # a dry run writes nothing


def test_a_student_with_a_teacher_recipe_plans_the_teacher_first(tmp_path: Path, capsys):
    """The 2025 recipe's small file learnt from another recipe's ensemble, trained into
    OUT/teacher before the student."""
    recipe = REPO / "recipes" / "experiments" / "shipped_2025.toml"
    assert main([str(recipe), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    steps = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    members = [f"teacher-member-{m}" for m in ("seed3", "seed4", "seed13", "fb12_seed16")]
    teacher = ["teacher-split", *members, "teacher-ensemble", "teacher-answers"]
    start = steps.index("teacher-split")
    assert steps[start : start + len(teacher) + 1] == [*teacher, "student-split"]


def test_the_tiny_recipe_plans_no_teacher_and_evaluates_on_val(tmp_path: Path, capsys):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_BUILD.format(data="d", phone="p"))
    assert main([str(recipe), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    steps = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert "student-member-student" in steps and not any("teacher" in s for s in steps)
    assert steps[-4:] == [
        "evaluation",
        "evaluation-answers",
        "student-evaluation",
        "student-evaluation-answers",
    ]


def test_a_second_stage_is_a_step_of_its_own_and_the_member_the_average_takes(
    tmp_path: Path, capsys
):
    from test_recipe import THEN

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_BUILD.format(data="d", phone="p") + THEN)
    out = tmp_path / "out"
    assert main([str(recipe), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = {line.split()[1]: line.split(" -> ")[1] for line in lines}
    assert list(steps)[1:6] == [
        "member-a",
        "member-a-then",
        "member-b",
        "member-b-then",
        "ensemble",
    ]
    assert steps["member-a-then"].startswith(str(out / "members" / "a" / "then" / "model.keras"))

    from pipeline.recipe import load_build_recipe
    from pipeline.steps import plan

    ensemble = next(s for s in plan(load_build_recipe(recipe), out) if s.name == "ensemble")
    assert out / "members" / "b" / "then" / "model.keras" in ensemble.inputs
    assert out / "members" / "b" / "model.keras" not in ensemble.inputs


CROSSFIT = """
[crossfit]
folds = 2
seed = 4
member = "b"
"""


def test_cross_fitting_trains_a_network_per_fold_as_the_member_before_the_files_card(
    tmp_path: Path,
):
    """The fold networks train as the named member (both stages), on their fold's split; the
    thresholds step reads every fold network and edits the card before the export reads it, and
    the file's card is fitted again from the same fold networks."""
    from test_recipe import THEN

    from pipeline.recipe import load_build_recipe
    from pipeline.steps import plan

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_BUILD.format(data="d", phone="p") + THEN + CROSSFIT)
    out = tmp_path / "out"
    steps = {s.name: s for s in plan(load_build_recipe(recipe), out)}
    names = list(steps)
    start = names.index("answers") + 1
    assert names[start : start + 6] == [
        "crossfit-folds",
        "crossfit-fold-1",
        "crossfit-fold-1-then",
        "crossfit-fold-2",
        "crossfit-fold-2-then",
        "crossfit-thresholds",
    ]
    assert names.index("export") + 1 == names.index("file-card")
    fold = out / "crossfit" / "fold_2"
    assert steps["crossfit-folds"].outputs == (
        out / "crossfit" / "fold_1" / "split.csv",
        fold / "split.csv",
    )
    member_b = steps["member-b-then"].settings
    trained = steps["crossfit-fold-2-then"].settings
    assert trained == {**member_b, "init_from": str(fold / "members" / "b")}
    assert steps["crossfit-fold-2"].inputs == (fold / "split.csv",)
    thresholds = steps["crossfit-thresholds"]
    assert fold / "members" / "b" / "then" / "model.keras" in thresholds.inputs
    assert thresholds.outputs == (out / "model_card.json",)
    assert out / ".stamps" / "answers.json" in thresholds.inputs
    assert not any(name.startswith("metrics-") for name in names)  # the file's, in file-card
    assert out / "model_card.json" in steps["export"].inputs
    folds = [out / "crossfit" / f"fold_{k}" / "members" / "b" / "then" for k in (1, 2)]
    assert steps["file-card"].inputs[-2:] == tuple(f / "model.keras" for f in folds)
    assert not out.exists()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('member = "c"', "member 'c' is not one of the recipe's [[members]]"),
        ("folds = 1", "folds must be a whole number, at least 2"),
        ("folds = 2.5", "folds must be a whole number, at least 2"),
        ("fold = 3", "unknown field(s) ['fold']"),
    ],
)
def test_a_crossfit_section_it_cannot_build_is_refused(section: str, message: str):
    from pipeline.recipe import parse_build_recipe
    from train.orchestration.recipes import RecipeError

    text = TINY_BUILD.format(data="d", phone="p") + f"\n[crossfit]\n{section}\n"
    with pytest.raises(RecipeError, match=r"\[crossfit\]") as raised:
        parse_build_recipe(text)
    assert message in str(raised.value)


def test_the_segmenter_pins_the_test_photos_of_the_builds_own_split(tmp_path: Path):
    """The segmenter step reads the classifier's split.csv (its test phone photos go to the
    segmenter's val), so a new split makes it stale; without pinning it does not read it."""
    from pipeline.recipe import load_build_recipe, parse_build_recipe
    from pipeline.steps import plan

    out = tmp_path / "out"
    steps = {s.name: s for s in plan(load_build_recipe(REPO / "recipes" / "shipped.toml"), out)}
    assert out / "split.csv" in steps["segmenter"].inputs
    text = TINY_BUILD.format(data="d", phone="p").replace(
        "batch_size = 8", "batch_size = 8\nkeep_shipped_test_in_val = false"
    )
    steps = {s.name: s for s in plan(parse_build_recipe(text), out)}
    assert out / "split.csv" not in steps["segmenter"].inputs


def test_a_bad_section_is_a_usage_error(tmp_path: Path, capsys):
    recipe = tmp_path / "bad.toml"
    text = TINY_BUILD.format(data="d", phone="p")
    recipe.write_text(text.replace("components = 16", "component = 16"))
    with pytest.raises(SystemExit) as raised:
        main([str(recipe), "--out", str(tmp_path / "out"), "--dry-run"])
    assert raised.value.code == 2
    assert "[gate]: unknown field(s) ['component']" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_recipe_builds_a_shippable_folder_and_skips_what_is_current(
    data_dir: Path, tmp_path: Path, capsys
):
    from dataclasses import replace

    from contract.card import read_card_file, read_model_card
    from contract.model_file import model_card, read_model_file
    from contract.questionnaire import QUESTION_NAMES
    from export.ship import ship
    from train.evaluation.split_evaluation import evaluate

    recipe = tmp_path / "tiny.toml"
    phone = phone_subset(data_dir, tmp_path / "phone")
    recipe.write_text(TINY_BUILD.format(data=data_dir, phone=phone))
    out = tmp_path / "build"
    assert main([str(recipe), "--out", str(out)]) == 0
    export = out / "export"

    assert read_model_card(out).backbone == "tiny_cnn-ensemble-of-2"
    # each file carries a card fitted on its own outputs and measured on it, as the commands do
    for run, file in (
        (out, export / "skin_lesion_int8.tflite"),
        (out / "student", export / "small" / "skin_lesion_small_int8.tflite"),
    ):
        packed = model_card(read_model_file(file))
        beside = read_card_file(file.with_name("model_card.json"))
        assert beside == read_model_card(run / "file_card")
        assert packed == replace(beside, export=packed.export)  # the file adds how it was made
        assert packed.calibration.fitted_on == f"val, outputs of {file.name}"
        for asked, metrics in ((None, packed.metrics), (QUESTION_NAMES, packed.answers.metrics)):
            assert metrics["test"] == evaluate(run, file, "test", asked).report, (file, asked)
    student = read_model_card(out / "student")
    assert student.hparams["distill_from"] == str(out)
    assert (out / "student" / "split.csv").read_bytes() == (out / "split.csv").read_bytes()
    for name in (
        "lesion_gate.tflite",
        "lesion_segmenter.tflite",
        "small/verification.json",
        "small/skin_lesion_small_int8.tflite",
        "bench/bench.json",
    ):
        assert (export / name).is_file(), name
    bench = json.loads((export / "bench" / "bench.json").read_text())
    assert {Path(row["model"]).name for row in bench["rows"]} == {
        "skin_lesion_int8.tflite",
        "skin_lesion_small_int8.tflite",
    }
    for folder in ("evaluation", "evaluation_answers", "small/evaluation"):
        metrics = json.loads((export / folder / "metrics.json").read_text())
        assert metrics["split"] == "val", folder  # every evaluation defaults to val

    models = tmp_path / "models"
    shipped = ship(export, models)  # export.ship accepts it
    assert models / "skin_lesion_int8.tflite" in shipped

    # Run again: every step is current. Change one section: that step alone is stale.
    capsys.readouterr()
    assert main([str(recipe), "--out", str(out)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(progress) == 23 and [p for p in progress if not p.endswith(": done")] == []
    recipe.write_text(recipe.read_text().replace("runs = 2", "runs = 3"))
    assert main([str(recipe), "--out", str(out), "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in listed if "[stale]" in line] == ["bench"]
    assert all("[done]" in line for line in listed if "[stale]" not in line)


@pytest.mark.slow
def test_a_cross_fitted_build_writes_the_thresholds_the_command_fits_from_its_folds(
    data_dir: Path, tmp_path: Path, capsys
):
    """One tiny member on part of the shipped split, two folds: the build's card holds what
    `python -m train.crossfit thresholds` writes from the same fold networks into the card the
    ensemble had (the rule itself: tests/test_crossfit.py), and so does the exported file's; a
    new deal makes every fold stale."""
    from test_crossfit import shipped_subset

    from contract.card import read_model_card
    from contract.model_file import model_card, read_model_file
    from contract.run_folder import write_split
    from train.crossfit import main as crossfit

    split = tmp_path / "subset.csv"
    write_split(split, shipped_subset(data_dir))
    recipe = tmp_path / "crossfit.toml"
    recipe.write_text(
        f'[split]\nsplit_from = "{split}"\n\n'
        '[defaults]\nbackbone = "tiny_cnn"\nepochs = 1\nimage_size = 64\nbatch_size = 16\n\n'
        '[[members]]\nname = "a"\nseed = 1\n\n'
        '[export]\nvariants = ["int8"]\nrepresentative_images = 24\nmax_loss_points = 100\n\n'
        "[crossfit]\nfolds = 2\n"
    )
    out = tmp_path / "build"
    assert main([str(recipe), "--out", str(out)]) == 0

    card = read_model_card(out)
    by_domain = card.triage.by_domain
    assert {by_domain[k].fitted_on["folds"] for k in by_domain} == {2}
    assert all("out-of-fold" in t.chosen_on for t in by_domain.values())
    before = tmp_path / "before"
    before.mkdir()
    shutil.copy(out / "split.csv", before)
    shutil.copy(out / "members" / "a" / "model_card.json", before)  # the one member's card
    folds = [str(out / "crossfit" / f"fold_{k}" / "members" / "a") for k in (1, 2)]
    assert crossfit(["thresholds", *folds, "--card", str(before)]) == 0
    assert read_model_card(before).triage == card.triage
    # the file's card is refitted on its outputs, and keeps the cross-fitted thresholds
    packed = model_card(read_model_file(out / "export" / "skin_lesion_int8.tflite"))
    assert packed.triage == card.triage
    assert packed.calibration.fitted_on == "val, outputs of skin_lesion_int8.tflite"

    capsys.readouterr()
    recipe.write_text(recipe.read_text() + "seed = 1\n")
    assert main([str(recipe), "--out", str(out)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [p.split()[1] for p in progress if not p.endswith(": done")] == [
        "crossfit-folds:",
        "crossfit-fold-1:",
        "crossfit-fold-2:",
        "crossfit-thresholds:",
        "export:",
        "file-card:",
    ]
