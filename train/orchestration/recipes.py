"""Recipes as files: the networks of a shipped model, their seeds and settings, in one TOML file.

    [split]                 # the grouped split every member shares
    data = ["../shared/data/ham10000", ...]
    seed = 1337
    keep = "recipes/x.csv"  # optional: an earlier split.csv whose images keep their split
    [defaults]              # HParams fields every member starts from
    backbone = "efficientnet_lite0"
    [[members]]             # one network each: a name and the fields that differ
    name = "seed3"
    seed = 3
    [then]                  # optional: every member then continues from its own network
    image_size = 288        #   with these fields changed (a second stage, e.g. a higher
    epochs = 1              #   resolution or more blocks), into OUT/members/NAME/then
    [answers]               # fit the answers' model on the result (optional)
    strengths = [0.25, 0.5, 0.75, 1.0]
    [gate] [export] ...     # the steps after training: `python -m pipeline` (pipeline/recipe.py)

`run_recipe` trains each member into OUT/members/NAME on OUT/split.csv (with `[then]`, its second
stage into OUT/members/NAME/then, which is the member the average takes), averages them into
OUT (one member is copied), and fits the answers' model: OUT is then a run folder like any other.
Every step checkpoints or is skipped when its output exists, so `resume=True` continues.
"""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from contract.commands import CommandError
from contract.run_folder import SPLIT_CSV, read_split, write_split
from train.model.hparams import HParams, validate

RECIPE_COPY = "recipe.toml"
MEMBERS = "members"
SECOND_STAGE = "then"
_HPARAM_NAMES = {f.name for f in fields(HParams)}
_SPLIT_KEYS = {"data", "split_from", "keep", "seed", "val_fraction", "test_fraction"}
# The sections of the steps after training, read by `python -m pipeline` (pipeline/recipe.py);
# `run_recipe` trains the same networks with or without them.
BUILD_SECTIONS = (
    "crossfit",
    "metrics",
    "gate",
    "export",
    "segmenter",
    "student",
    "bench",
    "evaluation",
)


class RecipeError(CommandError, ValueError):
    """A recipe file that cannot be run as written; the message names the field."""


@dataclass(frozen=True)
class Member:
    name: str
    hparams: HParams
    # [then]: a second stage that starts from the first's network (its init_from is set to the
    # first stage's folder when it trains); the member is the second stage's network
    then: HParams | None = None


@dataclass(frozen=True)
class Stage:
    """One network to train: its name in messages, its folder, its settings (`init_from`
    filled in)."""

    name: str
    folder: Path
    hparams: HParams


def member_stages(member: Member, out: Path) -> list[Stage]:
    """The member's networks in training order; the last is the member."""
    first = Stage(member.name, Path(out) / MEMBERS / member.name, member.hparams)
    if member.then is None:
        return [first]
    second = replace(member.then, init_from=str(first.folder))
    return [first, Stage(f"{member.name}/{SECOND_STAGE}", first.folder / SECOND_STAGE, second)]


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: where the split comes from, the members, the answers' strengths."""

    members: tuple[Member, ...]
    data: tuple[Path, ...] = ()
    split_from: Path | None = None
    keep: Path | None = None  # an earlier split.csv whose images keep their split
    split: HParams = field(default_factory=HParams)  # seed and fractions of the split
    answer_strengths: tuple[float, ...] | None = None  # None: no answers' model
    text: str = ""


def _unknown(section: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise RecipeError(f"[{section}]: unknown field(s) {extra}; allowed: {sorted(allowed)}")


def hparams_section(section: str, values: Mapping[str, Any], base: HParams) -> HParams:
    """`base` with a section's HParams fields; RecipeError naming an unknown or bad one."""
    _unknown(section, values, _HPARAM_NAMES)
    try:
        return replace(base, **values)
    except TypeError as error:
        raise RecipeError(f"[{section}]: {error}") from None


def parse_member(spec: Mapping[str, Any], defaults: HParams, where: str) -> Member:
    """One network: a plain name and the HParams fields that differ from `defaults`."""
    spec = dict(spec)
    name = str(spec.pop("name", ""))
    if not name or "/" in name or name.startswith("."):
        raise RecipeError(f"{where}: needs a plain name")
    hparams = hparams_section(f"members.{name}", spec, defaults)
    try:
        validate(hparams)
    except ValueError as error:
        raise RecipeError(f"[[members]] {name}: {error}") from None
    return Member(name, hparams)


def parse_recipe(text: str) -> Recipe:
    """A recipe from TOML text; RecipeError for anything it cannot run."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"not valid TOML: {error}") from None
    _unknown(
        "recipe",
        raw,
        {"description", "split", "defaults", "members", "then", "answers", *BUILD_SECTIONS},
    )
    split = dict(raw.get("split", {}))
    _unknown("split", split, _SPLIT_KEYS)
    data = tuple(Path(p) for p in split.pop("data", ()))
    split_from = Path(split.pop("split_from")) if "split_from" in split else None
    keep = Path(split.pop("keep")) if "keep" in split else None
    if bool(data) == (split_from is not None):
        raise RecipeError("[split]: give either data (folders) or split_from (a split.csv)")
    if keep is not None and not data:
        raise RecipeError("[split]: keep adds data around an earlier split; give data")
    defaults = hparams_section("defaults", raw.get("defaults", {}), HParams())
    members = [
        parse_member(spec, defaults, f"[[members]] #{index + 1}")
        for index, spec in enumerate(raw.get("members", []))
    ]
    if not members:
        raise RecipeError("no [[members]]")
    if "then" in raw:
        members = [_with_second_stage(m, raw["then"]) for m in members]
    if len({m.name for m in members}) != len(members):
        raise RecipeError("[[members]]: names must be unique")
    answers = raw.get("answers")
    strengths = None
    if answers is not None:
        _unknown("answers", answers, {"strengths"})
        strengths = tuple(float(s) for s in answers.get("strengths", (0.25, 0.5, 0.75, 1.0)))
        if not strengths or min(strengths) <= 0:
            raise RecipeError("[answers]: strengths must be positive")
    return Recipe(
        members=tuple(members),
        data=data,
        split_from=split_from,
        keep=keep,
        split=hparams_section("split", split, defaults),
        answer_strengths=strengths,
        text=text,
    )


def _with_second_stage(member: Member, then: Mapping[str, Any]) -> Member:
    """`member` with `[then]`'s fields over its own as a second stage. `init_from` is refused:
    the second stage starts from the first, whose folder exists only once it has trained."""
    if "init_from" in then:
        raise RecipeError("[then]: init_from is the member's first stage; leave it out")
    hparams = hparams_section("then", then, replace(member.hparams, init_from=""))
    try:
        validate(hparams)
    except ValueError as error:
        raise RecipeError(f"[then] of {member.name}: {error}") from None
    return replace(member, then=hparams)


def read_recipe_text(path: str | Path) -> str:
    """A recipe file's text; RecipeError naming a file that cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise RecipeError(f"cannot read {path}: {error.strerror}") from None


def load_recipe(path: str | Path) -> Recipe:
    return parse_recipe(read_recipe_text(path))


def run_recipe(
    recipe: Recipe,
    out: str | Path,
    resume: bool = False,
    packed: str | Path | None = None,
    devices: int = 0,
) -> dict | None:
    """Train, average and fit the answers of a recipe into the run folder `out`; its card.

    With `packed` (a file of `python -m train.pack`, e.g. on a machine without the image
    folders) the split and the images come from that file and only the members are trained
    (None is returned): averaging and the answers need the folders, so `resume=True` where they
    are finishes the run. `devices`: `train.model.devices.placement`.
    """
    from contract.card import read_model_card

    out = Path(out)
    copy = out / RECIPE_COPY
    if resume:
        if not copy.is_file() or copy.read_text(encoding="utf-8") != recipe.text:
            raise RecipeError(f"--resume: {out} was not started from this recipe ({copy})")
    else:
        if out.exists() and any(out.iterdir()):
            raise RecipeError(f"{out} exists and is not empty; resume it or choose another")
        out.mkdir(parents=True, exist_ok=True)
        copy.write_text(recipe.text, encoding="utf-8")
    split_csv = write_recipe_split(recipe, out, packed)
    runs = [train_member(m, out, split_csv, packed, devices) for m in recipe.members]
    if packed is not None:
        print(
            f"members trained; to average them and fit the answers, bring {out} to the image "
            "folders and run the recipe there with --resume",
            flush=True,
        )
        return None

    if not (out / "model.keras").is_file():
        combine(runs, out)
    card = read_model_card(out)
    if recipe.answer_strengths is not None and card.answers is None:
        from train.answers.fitting import fit_answers

        card = fit_answers(out, recipe.answer_strengths)
    return card


def write_recipe_split(recipe: Recipe, out: Path, packed: str | Path | None = None) -> Path:
    """OUT/split.csv, unless it is there: the packed file's, `split_from`'s, or dealt anew."""
    split_csv = out / SPLIT_CSV
    if not split_csv.is_file() and packed is not None:
        from train.data.packed import PackedImages

        write_split(split_csv, PackedImages(packed).splits())
    if not split_csv.is_file():
        from contract.records import Skipped
        from train.model.training import make_split

        skipped = Skipped()
        splits = (
            read_split(recipe.split_from)
            if recipe.split_from is not None
            else make_split(recipe.data, recipe.split, skipped, recipe.keep)
        )
        skipped.warn()
        out.mkdir(parents=True, exist_ok=True)
        write_split(split_csv, splits)
    return split_csv


def train_member(
    member: Member,
    out: Path,
    split_csv: Path,
    packed: str | Path | None = None,
    devices: int = 0,
) -> Path:
    """Train (or resume, or skip when finished) each stage of one member; the member's folder."""
    stages = member_stages(member, out)
    for stage in stages:
        train_stage(stage, split_csv, packed, devices)
    return stages[-1].folder


def train_stage(
    stage: Stage, split_csv: Path, packed: str | Path | None = None, devices: int = 0
) -> None:
    """Train, resume, or skip when finished, one network on the recipe's split."""
    from train.model.training import create

    run = stage.folder
    if (run / "model.keras").is_file():
        print(f"member {stage.name}: done", flush=True)
        return
    started = (run / "hparams.json").is_file()
    print(f"member {stage.name}: {'resuming' if started else 'training'}", flush=True)
    create(
        run,
        stage.hparams,
        split_from=None if started else split_csv,
        resume=started,
        packed=packed,
        devices=devices,
    )


def combine(runs: Sequence[Path], out: Path) -> None:
    """The members' average as the recipe's model (a single member is copied)."""
    if len(runs) == 1:
        for name in ("model.keras", "model_card.json"):
            shutil.copyfile(runs[0] / name, out / name)
        return
    from train.model.averaging import ensemble_runs

    ensemble_runs(runs, out)
