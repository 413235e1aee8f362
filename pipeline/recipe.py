"""A recipe's sections for every step after training, typed: what `python -m pipeline` builds.

The training sections (`[split]`, `[defaults]`, `[[members]]`, `[answers]`) are
`train.orchestration.recipes`'s. The rest, each optional (absent: the step is not built):

    [crossfit]      # each kind's threshold cross-fitted over train+val (train.crossfit)
    folds = 5       #   K fold networks, each with one fold of the lesions / patients moved
    seed = 0        #   to test, dealt by this seed; trained as `member` (default: the first,
    member = "seed3"  # with [then]); their out-of-fold scores replace val's thresholds
    [metrics]       # record these splits' metrics in the card, photo only and with answers:
    splits = ["val", "test"]  # each exported file's own (pipeline.file_card), else Keras's
    [gate]          # the "not a skin-lesion photo" gate: train.gate.fit.GateConfig's fields
    variant = "float16"
    [export]        # the classifier's files and their accuracy gate: ExportSettings' fields
    variants = ["int8_mixed"]
    [segmenter]     # the spot's outline: SegmenterConfig's fields and its data
    photos = "../shared/data/pad_ufes20"
    cutouts = "../shared/data/pad_ufes20_cutouts"
    keep_shipped_test_in_val = true  # the default: the build's test phone photos go to its val
    evaluate = "test"
    [student]       # the small-phone network: HParams over [defaults], distilled from a teacher
    teacher = "recipes/experiments/no_isic2017.toml"  # trained into OUT/teacher; absent: OUT itself
    [student.export]
    variants = ["int8"]
    [bench]         # export.bench.BenchConfig's fields
    [evaluation]    # every shipped classifier file on a split (val unless named), with answers
    split = "test"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from contract.bench_report import BenchConfig
from contract.run_folder import SPLITS
from export.exporting import ExportSettings
from export.lesion_gate import DEFAULT_VARIANT as GATE_VARIANT
from train.gate.fit import GateConfig
from train.model.hparams import HParams
from train.orchestration.recipes import (
    Member,
    Recipe,
    RecipeError,
    hparams_section,
    load_recipe,
    parse_member,
    parse_recipe,
    read_recipe_text,
)
from train.segment import CUTOUTS, PHOTOS
from train.segmentation.training import SegmenterConfig


@dataclass(frozen=True)
class SegmenterStep:
    config: SegmenterConfig
    photos: Path
    cutouts: Path
    evaluate: str  # the split its file is scored on


@dataclass(frozen=True)
class CrossfitStep:
    """Each kind's threshold from out-of-fold predictions (docs/pipeline.md#cross-fitted-
    thresholds): `folds` networks trained as `member`, the deal fixed by `seed`."""

    member: Member
    folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class StudentStep:
    member: Member  # distill_from is set to the teacher's folder when it is built
    teacher: Recipe | None  # None: the recipe's own model teaches
    export: ExportSettings


@dataclass(frozen=True)
class BuildRecipe:
    """Everything `python -m pipeline` builds, section by section (None: not built)."""

    recipe: Recipe
    crossfit: CrossfitStep | None = None
    metrics_splits: tuple[str, ...] = ()
    gate: GateConfig | None = None
    gate_variant: str = GATE_VARIANT
    export: ExportSettings | None = None
    segmenter: SegmenterStep | None = None
    student: StudentStep | None = None
    bench: BenchConfig | None = None
    evaluation_split: str | None = None


def _fields(section: str, cls: type, values: dict[str, Any]) -> Any:
    """`cls` from a section's values (lists become tuples); RecipeError naming a bad field."""
    allowed = {f.name for f in fields(cls)}
    extra = sorted(set(values) - allowed)
    if extra:
        raise RecipeError(f"[{section}]: unknown field(s) {extra}; allowed: {sorted(allowed)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"[{section}]: {error}") from None


def _split(section: str, value: Any) -> str:
    if value not in SPLITS:
        raise RecipeError(f"[{section}]: split must be one of {', '.join(SPLITS)}, got {value!r}")
    return value


def _nothing_left(section: str, values: dict[str, Any]) -> None:
    if values:
        raise RecipeError(f"[{section}]: unknown field(s) {sorted(values)}")


def _crossfit(raw: dict[str, Any], members: tuple[Member, ...]) -> CrossfitStep:
    values = dict(raw)
    name = values.pop("member", members[0].name)
    member = next((m for m in members if m.name == name), None)
    if member is None:
        raise RecipeError(f"[crossfit]: member {name!r} is not one of the recipe's [[members]]")
    step = _fields("crossfit", CrossfitStep, {**values, "member": member})
    if not isinstance(step.folds, int) or step.folds < 2:
        raise RecipeError(f"[crossfit]: folds must be a whole number, at least 2: {step.folds!r}")
    if not isinstance(step.seed, int):
        raise RecipeError(f"[crossfit]: seed must be a whole number: {step.seed!r}")
    return step


def _student(raw: dict[str, Any], defaults: dict[str, Any]) -> StudentStep:
    values = dict(raw)
    export = _fields("student.export", ExportSettings, dict(values.pop("export", {})))
    teacher_path = values.pop("teacher", None)
    teacher = load_recipe(teacher_path) if teacher_path is not None else None
    if "distill_from" in values:
        raise RecipeError("[student]: its teacher is `teacher` (a recipe) or the model built")
    base = hparams_section("defaults", defaults, HParams())
    member = parse_member({**values, "name": "student"}, base, "[student]")
    return StudentStep(member, teacher, export)


def parse_build_recipe(text: str) -> BuildRecipe:
    """The whole recipe; RecipeError naming the section and field it cannot build."""
    recipe = parse_recipe(text)
    raw = tomllib.loads(text)
    build: dict[str, Any] = {}
    if "crossfit" in raw:
        build["crossfit"] = _crossfit(raw["crossfit"], recipe.members)
    if "metrics" in raw:
        metrics = dict(raw["metrics"])
        splits = tuple(_split("metrics", s) for s in metrics.pop("splits", ["val"]))
        _nothing_left("metrics", metrics)
        build["metrics_splits"] = splits
    if "gate" in raw:
        gate = dict(raw["gate"])
        build["gate_variant"] = gate.pop("variant", GATE_VARIANT)
        build["gate"] = _fields("gate", GateConfig, gate)
    if "export" in raw:
        build["export"] = _fields("export", ExportSettings, dict(raw["export"]))
    if "segmenter" in raw:
        seg = dict(raw["segmenter"])
        photos = Path(seg.pop("photos", PHOTOS))
        cutouts = Path(seg.pop("cutouts", CUTOUTS))
        split = _split("segmenter", seg.pop("evaluate", "val"))
        config = _fields("segmenter", SegmenterConfig, seg)
        build["segmenter"] = SegmenterStep(config, photos, cutouts, split)
    if "student" in raw:
        build["student"] = _student(raw["student"], raw.get("defaults", {}))
    if "bench" in raw:
        build["bench"] = _fields("bench", BenchConfig, dict(raw["bench"]))
    if "evaluation" in raw:
        evaluation = dict(raw["evaluation"])
        build["evaluation_split"] = _split("evaluation", evaluation.pop("split", "val"))
        _nothing_left("evaluation", evaluation)
    needs_export = ("student", "bench", "evaluation", "segmenter", "gate")
    if "export" not in build and any(name in build for name in needs_export):
        raise RecipeError(
            "[export]: the gate, segmenter, student, bench and evaluation go "
            "into the classifier's export folder; give [export]"
        )
    return BuildRecipe(recipe, **build)


def load_build_recipe(path: str | Path) -> BuildRecipe:
    return parse_build_recipe(read_recipe_text(path))
