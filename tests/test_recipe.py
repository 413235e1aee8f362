"""Recipe files: parsing, refusing what cannot run, and a tiny recipe end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from train.orchestration.recipes import RecipeError, load_recipe, parse_recipe

REPO = Path(__file__).resolve().parent.parent

TINY = """
[split]
data = ["{data}/ham10000", "{data}/pad_ufes20"]
seed = 7

[defaults]
backbone = "tiny_cnn"
epochs = 1
image_size = 64
batch_size = 16
max_images_per_class = 12

[[members]]
name = "a"
seed = 1

[[members]]
name = "b"
seed = 2
dropout = 0.3

[answers]
strengths = [0.5, 1.0]
"""


def test_the_shipped_recipe_names_four_members_on_one_split():
    recipe = load_recipe(REPO / "recipes" / "shipped.toml")
    assert [m.name for m in recipe.members] == ["seed3", "seed4", "seed13", "fb12_seed16"]
    assert [m.hparams.seed for m in recipe.members] == [3, 4, 13, 16]
    assert [m.hparams.finetune_blocks for m in recipe.members] == [8, 8, 8, 12]
    assert {m.hparams.balance for m in recipe.members} == {"sampling"}
    assert recipe.split.seed == 1337 and not recipe.data
    assert recipe.split_from == Path("recipes/shipped_2025_split.csv")  # tests/test_shipped_split
    assert recipe.answer_strengths == (0.25, 0.5, 0.75, 1.0)


def test_the_shipped_recipe_is_the_2025_one_with_levers_3a_and_3d():
    """docs/levers.md: lever 3a's loss term, then 3d's epoch at 288 px; nothing else changed."""
    shipped = load_recipe(REPO / "recipes" / "shipped.toml")
    before = load_recipe(REPO / "recipes" / "experiments" / "shipped_2025.toml")
    for now, then in zip(shipped.members, before.members, strict=True):
        assert now.hparams == replace(then.hparams, malignant_loss_weight=0.5)
        second = (now.then.image_size, now.then.epochs, now.then.head_epochs)
        assert second == (288, 1, 0) and now.then.finetune_learning_rate == 3e-5
        assert now.then.finetune_blocks == now.hparams.finetune_blocks
    assert before.members[0].then is None and shipped.split_from == before.split_from


def test_the_shipped_build_crossfits_its_first_member_and_distils_at_its_input_size():
    """The thresholds come from fold networks of the first member (both stages), and the small
    file's student learns from the recipe's own ensemble at that ensemble's 288 px."""
    from pipeline.recipe import load_build_recipe

    build = load_build_recipe(REPO / "recipes" / "shipped.toml")
    assert build.crossfit.member == build.recipe.members[0]
    assert (build.crossfit.folds, build.crossfit.seed) == (5, 0)
    student = build.student
    assert student.teacher is None  # OUT itself teaches
    assert student.member.hparams.image_size == build.recipe.members[0].then.image_size == 288
    assert student.member.hparams.malignant_loss_weight == 0.5
    assert build.export.float_ops == 28


def test_members_inherit_the_defaults_and_override_them():
    recipe = parse_recipe(TINY.format(data="d"))
    a, b = recipe.members
    assert (a.hparams.backbone, a.hparams.dropout, a.hparams.seed) == ("tiny_cnn", 0.2, 1)
    assert (b.hparams.dropout, b.hparams.seed) == (0.3, 2)
    assert recipe.split.seed == 7 and recipe.split.max_images_per_class == 12


THEN = """
[then]
image_size = 80
learning_rate = 0.0005
"""


def test_then_gives_every_member_a_second_stage_from_its_own_network(tmp_path: Path):
    from train.orchestration.recipes import member_stages

    recipe = parse_recipe(TINY.format(data="d") + THEN)
    a, b = recipe.members
    assert (b.then.image_size, b.then.learning_rate, b.then.dropout, b.then.seed) == (
        80,
        0.0005,
        0.3,  # the member's own fields stay
        2,
    )
    first, second = member_stages(b, tmp_path)
    assert first.folder == tmp_path / "members" / "b" and first.hparams == b.hparams
    assert second.folder == tmp_path / "members" / "b" / "then"
    assert second.hparams.init_from == str(first.folder)
    assert [
        s.folder for s in member_stages(parse_recipe(TINY.format(data="d")).members[0], tmp_path)
    ] == [tmp_path / "members" / "a"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t + THEN.replace("image_size", "image_sise"), "[then]: unknown field(s)"),
        (lambda t: t + THEN + 'init_from = "x"\n', "[then]: init_from is the member's first"),
        (lambda t: t + THEN.replace("80", "20"), "[then] of a: --image-size"),
        (lambda t: t.replace("dropout = 0.3", "droput = 0.3"), "unknown field(s) ['droput']"),
        (lambda t: t.replace('name = "b"', 'name = "a"'), "names must be unique"),
        (lambda t: t.replace("epochs = 1", "epochs = 0"), "--epochs must be at least 1"),
        (lambda t: t.replace('"tiny_cnn"', '"resnet"'), "--backbone must be one of"),
        (lambda t: t.replace("[answers]", "[answer]"), "unknown field(s) ['answer']"),
        (lambda t: t.replace("[0.5, 1.0]", "[0.5, 0]"), "strengths must be positive"),
        (lambda t: t.replace('data = ["d/ham10000", "d/pad_ufes20"]', ""), "either data"),
        (lambda t: t.split("[[members]]")[0], "no [[members]]"),
        (lambda t: t + "\n[oops", "not valid TOML"),
    ],
)
def test_a_recipe_that_cannot_run_is_refused_with_the_field(change, message):
    with pytest.raises(RecipeError) as raised:
        parse_recipe(change(TINY.format(data="d")))
    assert message in str(raised.value)


def test_the_cli_gives_a_usage_error_for_a_bad_recipe(tmp_path: Path, capsys):
    from train.recipe import main

    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.format(data="d").replace("seed = 2", "seeds = 2"))
    with pytest.raises(SystemExit) as raised:
        main([str(bad), "--out", str(tmp_path / "run")])
    assert raised.value.code == 2
    assert "unknown field(s) ['seeds']" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_recipe_trains_averages_and_fits_answers(data_dir: Path, tmp_path: Path, capsys):
    from train.recipe import main

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY.format(data=data_dir))
    out = tmp_path / "run"
    assert main([str(recipe), "--out", str(out)]) == 0
    for member in ("a", "b"):
        assert (out / "members" / member / "model.keras").is_file()
        split = (out / "members" / member / "split.csv").read_bytes()
        assert split == (out / "split.csv").read_bytes()  # one split for every member
    card = json.loads((out / "model_card.json").read_text())
    assert card["backbone"] == "tiny_cnn-ensemble-of-2"
    assert [m["seed"] for m in card["hparams"]["members"]] == [1, 2]
    assert set(card["answers"]["models"]) == {"dermoscopic", "phone"}
    assert (out / "recipe.toml").read_text() == recipe.read_text()

    # Resuming a finished recipe redoes nothing; another recipe cannot resume it.
    capsys.readouterr()
    assert main([str(recipe), "--out", str(out), "--resume"]) == 0
    assert "member a: done" in capsys.readouterr().out
    other = tmp_path / "other.toml"
    other.write_text(recipe.read_text().replace("seed = 2", "seed = 3"))
    assert main([str(other), "--out", str(out), "--resume"]) == 2
    assert "was not started from this recipe" in capsys.readouterr().err
    assert main([str(recipe), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_a_recipe_with_a_second_stage_averages_the_second_stages(data_dir: Path, tmp_path: Path):
    from train.recipe import main

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        TINY.format(data=data_dir).replace("[answers]\nstrengths = [0.5, 1.0]", "") + THEN
    )
    out = tmp_path / "run"
    assert main([str(recipe), "--out", str(out)]) == 0
    for member in ("a", "b"):
        first = json.loads((out / "members" / member / "hparams.json").read_text())
        second = json.loads((out / "members" / member / "then" / "hparams.json").read_text())
        assert (first["image_size"], second["image_size"]) == (64, 80)
        assert second["init_from"] == str(out / "members" / member)
    card = json.loads((out / "model_card.json").read_text())
    assert card["input"]["height"] == 80  # the average of the second stages
    assert [m["learning_rate"] for m in card["hparams"]["members"]] == [0.0005, 0.0005]


ALL_FOLDERS = ["ham10000", "isic2017", "pad_ufes20", "pad_ufes20_cutouts"]
NO_ISIC2017 = ["ham10000", "pad_ufes20", "pad_ufes20_cutouts"]


@pytest.mark.parametrize(
    ("file", "folders", "kept"),
    [
        ("experiments/more_data.toml", ALL_FOLDERS, "shipped_2025_test_split.csv"),
        ("experiments/no_isic2017.toml", NO_ISIC2017, "shipped_2025_test_split.csv"),
        ("experiments/more_data_kept.toml", ALL_FOLDERS, "shipped_2025_split.csv"),
    ],
)  # fmt: skip
def test_the_retrain_recipes_are_the_shipped_one_on_other_data_keeping_its_images(
    file, folders, kept
):
    """Judged against the 2025 model on its images, a retrain of its recipe differs in data only."""
    shipped = load_recipe(REPO / "recipes" / "experiments" / "shipped_2025.toml")
    recipe = load_recipe(REPO / "recipes" / file)
    assert [Path(d).name for d in recipe.data] == folders
    assert recipe.members == shipped.members and recipe.split == shipped.split
    assert recipe.answer_strengths == shipped.answer_strengths
    assert recipe.keep == Path("recipes") / kept
    assert (REPO / recipe.keep).is_file()
