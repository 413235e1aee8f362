"""The steps that turn a recipe into a shippable export folder, in order, each a call of the
stage's own function (the commands named in docs/pipeline.md call the same ones).

OUT holds the classifier's run folder (split.csv, members/, model.keras, model_card.json), the
lesion gate beside it, crossfit/ (fold_K/split.csv and fold_K/members/NAME), segmenter/,
teacher/ and student/, and OUT/export: the folder `python -m export.ship` takes (the small
network's files in export/small).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from contract.commands import CommandError
from contract.lesion_gate import GATE_JSON, GATE_KERAS
from contract.run_folder import MODEL_CARD_JSON, MODEL_KERAS, SPLIT_CSV
from pipeline.recipe import BuildRecipe, CrossfitStep
from train.orchestration.recipes import Member, Recipe

EXPORT = "export"
SMALL = "small"  # the companion export of the small network, inside EXPORT
SEGMENTER = "segmenter"
CROSSFIT = "crossfit"  # the fold splits and networks of the cross-fitted thresholds
TEACHER = "teacher"
STUDENT = "student"
VERIFICATION = ("verification.json", "verification.md", MODEL_CARD_JSON)


class BuildError(CommandError):
    """A check a step's result failed (an accuracy gate); exit status 1, as `python -m export`."""

    status = 1


@dataclass(frozen=True)
class Step:
    """One step: what it writes, what it reads, its recipe settings, and the call."""

    name: str
    outputs: tuple[Path, ...]
    inputs: tuple[Path, ...]
    settings: object
    run: Callable[[], None]
    # removed before a stale step runs again; steps that edit a card in place remove nothing
    clear: tuple[Path, ...] | None = None

    @property
    def cleared(self) -> tuple[Path, ...]:
        return self.outputs if self.clear is None else self.clear


def _classifier_steps(prefix: str, recipe: Recipe, run: Path, out: Path) -> list[Step]:
    """split, each member, their average (calibrated on val), the answers' model, into `run`
    (`out`: the build's folder, where the stamps are)."""
    from train.orchestration.recipes import combine, write_recipe_split

    split = run / SPLIT_CSV
    source = {
        "split_from": recipe.split_from,
        "data": recipe.data,
        "keep": recipe.keep,
        "split": asdict(recipe.split),
    }
    inputs = tuple(p for p in (recipe.split_from, recipe.keep) if p is not None)
    steps = [
        Step(
            f"{prefix}split",
            (split,),
            inputs,
            source,
            lambda: write_recipe_split(recipe, run),
            clear=(split,),
        )
    ]
    member_runs = []
    for member in recipe.members:
        member_steps, folder = _member_steps(f"{prefix}member-{member.name}", member, run, split)
        steps += member_steps
        member_runs.append(folder)
    model, card = run / MODEL_KERAS, run / MODEL_CARD_JSON
    members = tuple(f / MODEL_KERAS for f in member_runs)
    steps.append(
        Step(
            f"{prefix}ensemble",
            (model, card),
            (split, *members),
            len(members),
            lambda: combine(member_runs, run),
        )
    )
    if recipe.answer_strengths is not None:

        def answers() -> None:
            from train.answers.fitting import fit_answers

            fit_answers(run, recipe.answer_strengths)

        steps.append(
            Step(
                f"{prefix}answers",
                (card,),
                (split, model, *_stamp_of(out, steps)),
                recipe.answer_strengths,
                answers,
                clear=(),
            )
        )
    return steps


def _member_steps(name: str, member: Member, out: Path, split: Path) -> tuple[list[Step], Path]:
    """Each stage of one member trained on `split` into OUT/members/NAME (the second stage a
    step NAME-then); the folder of the network it ends with."""
    from train.orchestration.recipes import member_stages, train_stage

    stages = member_stages(member, out)
    steps = []
    for stage in stages:
        inputs = (split,) if stage is stages[0] else (split, stages[0].folder / MODEL_KERAS)
        steps.append(
            Step(
                name + ("" if stage is stages[0] else "-then"),
                (stage.folder / MODEL_KERAS, stage.folder / MODEL_CARD_JSON),
                inputs,
                asdict(stage.hparams),
                lambda s=stage: train_stage(s, split),
                clear=(stage.folder,),
            )
        )
    return steps, stages[-1].folder


def _crossfit_steps(
    spec: CrossfitStep, out: Path, before: list[Step]
) -> tuple[list[Step], list[Path]]:
    """The fold splits in OUT/crossfit/fold_K, a network per fold trained as the recipe's
    member, then each kind's threshold fitted on their out-of-fold scores into OUT's card; the
    steps and the fold networks' folders."""
    from train.crossfit import FOLD, fit_thresholds, write_folds

    folder, split = out / CROSSFIT, out / SPLIT_CSV
    folds = [folder / FOLD.format(k) for k in range(1, spec.folds + 1)]
    deal = {"folds": spec.folds, "seed": spec.seed}
    steps = [
        Step(
            "crossfit-folds",
            tuple(f / SPLIT_CSV for f in folds),
            (split,),
            deal,
            lambda: write_folds(split, spec.folds, spec.seed, folder),
        )
    ]
    runs = []
    for k, fold in enumerate(folds, start=1):
        fold_steps, run = _member_steps(f"crossfit-fold-{k}", spec.member, fold, fold / SPLIT_CSV)
        steps += fold_steps
        runs.append(run)
    steps.append(
        Step(
            "crossfit-thresholds",
            (out / MODEL_CARD_JSON,),
            (split, out / MODEL_KERAS, *(r / MODEL_KERAS for r in runs), *_stamp_of(out, before)),
            deal,
            lambda: fit_thresholds(out, runs),
            clear=(),
        )
    )
    return steps, runs


def _file_card_step(
    name: str, run: Path, model: Path, crossfit_runs: list[Path], metrics_splits: tuple[str, ...]
) -> Step:
    """The run's card refitted on the exported file's outputs, measured, and packed into it in
    place (pipeline.file_card); the file is the step's input, rewritten with the card only."""
    from pipeline.file_card import FILE_CARD, fit_card_on_file

    folder = run / FILE_CARD
    return Step(
        name,
        (folder / MODEL_CARD_JSON,),
        (run / SPLIT_CSV, run / MODEL_CARD_JSON, model, *(r / MODEL_KERAS for r in crossfit_runs)),
        {"metrics": metrics_splits},  # the fold networks, if any, are among the inputs
        lambda: fit_card_on_file(run, model, folder, crossfit_runs, metrics_splits),
        clear=(folder,),
    )


def _stamp_of(out: Path, steps: list[Step]) -> tuple[Path]:
    """The stamp of the step before: a step that edits the card it edited reruns after it."""
    from pipeline.stamps import stamp_path

    return (stamp_path(out, steps[-1].name),)


def _export_step(name: str, run: Path, out: Path, settings, student: bool) -> Step:
    from export.exporting import export_model

    def export() -> None:
        failures = export_model(run, out, settings)
        if failures:
            raise BuildError(f"{name}: accuracy gate failed:\n  " + "\n  ".join(failures))

    files = tuple(out / f"{settings.file_stem}_{v}.tflite" for v in settings.variants)
    outputs = (*files, *(out / f for f in VERIFICATION))
    inputs = (run / SPLIT_CSV, run / MODEL_KERAS, run / MODEL_CARD_JSON)
    return Step(
        name, outputs, inputs, asdict(settings), export, clear=(out,) if student else outputs
    )


def _evaluation_steps(
    name: str, run: Path, model: Path, out: Path, split: str, answers: bool
) -> list[Step]:
    """`train.evaluate RUN --model FILE --split SPLIT` (and `--answers`) into OUT/evaluation."""
    from contract.questionnaire import QUESTION_NAMES

    def evaluation(asked: list[str] | None, folder: Path) -> Callable[[], None]:
        def run_it() -> None:
            from train.evaluation.split_evaluation import evaluate, write_evaluation

            write_evaluation(evaluate(run, model, split, asked), folder, model, split, asked)

        return run_it

    variants = [("", None, out / "evaluation")]
    if answers:
        variants.append(("-answers", list(QUESTION_NAMES), out / "evaluation_answers"))
    return [
        Step(
            f"{name}{suffix}",
            (folder / "metrics.json", folder / "predictions.csv"),
            (run / SPLIT_CSV, model),
            split,
            evaluation(asked, folder),
            clear=(folder,),
        )
        for suffix, asked, folder in variants
    ]


def plan(build: BuildRecipe, out: Path) -> list[Step]:
    """Every step of the recipe, in the order they run."""
    recipe = build.recipe
    export = out / EXPORT
    steps = _classifier_steps("", recipe, out, out)
    folds: list[Path] = []  # the cross-fitted thresholds' fold networks
    if build.crossfit is not None:
        crossfit_steps, folds = _crossfit_steps(build.crossfit, out, steps)
        steps += crossfit_steps
    card, model, split = out / MODEL_CARD_JSON, out / MODEL_KERAS, out / SPLIT_CSV
    with_answers = recipe.answer_strengths is not None

    # with a file built, the metrics are the file's, measured after its card is fitted on it
    for name in build.metrics_splits if build.export is None else ():
        for answers in (False, True)[: 1 + with_answers]:

            def metrics(split_name: str = name, answers: bool = answers) -> None:
                from train.evaluation.split_evaluation import measure_in_card

                measure_in_card(out, None, split_name, answers)

            suffix = "-answers" if answers else ""
            steps.append(
                Step(
                    f"metrics-{name}{suffix}",
                    (card,),
                    (split, model, *_stamp_of(out, steps)),
                    name,
                    metrics,
                    clear=(),
                )
            )

    if build.gate is not None:
        gate = build.gate

        def fit_gate() -> None:
            from train.gate.fit import fit_lesion_gate

            network, info = fit_lesion_gate(split, gate)
            network.save(out / GATE_KERAS)
            (out / GATE_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

        steps.append(
            Step("gate", (out / GATE_KERAS, out / GATE_JSON), (split,), asdict(gate), fit_gate)
        )

    if build.segmenter is not None:
        steps += _segmenter_steps(build, out)

    if build.export is not None:
        steps.append(_export_step("export", out, export, build.export, student=False))
        classifier = export / f"{build.export.file_stem}_{build.export.variants[0]}.tflite"
        steps.append(_file_card_step("file-card", out, classifier, folds, build.metrics_splits))
    if build.gate is not None:
        from export.lesion_gate import GATE_TFLITE, REPORT_STEM, export_lesion_gate

        written = (export / GATE_TFLITE, *(export / f"{REPORT_STEM}.{x}" for x in ("json", "md")))
        steps.append(
            Step(
                "gate-export",
                written,
                (split, out / GATE_KERAS, out / GATE_JSON),
                build.gate_variant,
                lambda: export_lesion_gate(out, export, build.gate_variant),
            )
        )
    if build.segmenter is not None:
        steps += _segmenter_export_steps(build, out)

    files = [classifier] if build.export is not None else []
    if build.student is not None:
        student = out / STUDENT
        steps += _student_steps(build, out, student)
        settings = build.student.export
        small = export / SMALL
        steps.append(_export_step("student-export", student, small, settings, student=True))
        files.append(small / f"{settings.file_stem}_{settings.variants[0]}.tflite")
        steps.append(
            _file_card_step("student-file-card", student, files[-1], [], build.metrics_splits)
        )
    if build.bench is not None:
        from export.bench import benchmark, write_report

        bench = build.bench

        def run_bench() -> None:
            write_report(benchmark(files, bench), bench, export / "bench")

        steps.append(
            Step(
                "bench",
                (export / "bench" / "bench.json",),
                tuple(files),
                asdict(bench),
                run_bench,
                clear=(export / "bench",),
            )
        )
    if build.evaluation_split is not None:
        split_name = build.evaluation_split
        steps += _evaluation_steps("evaluation", out, classifier, export, split_name, with_answers)
        if build.student is not None:
            steps += _evaluation_steps(
                "student-evaluation",
                out / STUDENT,
                files[-1],
                export / SMALL,
                split_name,
                with_answers,
            )
    return steps


def _segmenter_steps(build: BuildRecipe, out: Path) -> list[Step]:
    """Masks from the cut-outs, then the segmenter (split by patient) in OUT/segmenter."""
    seg = build.segmenter
    run = out / SEGMENTER
    masks = run / "masks"

    def make_masks() -> None:
        from train.segmentation.masks import build_masks

        build_masks(seg.photos / "images", seg.cutouts / "images", masks)

    # the build's own classifier split: its test phone photos are pinned to the segmenter's val
    pin = out / SPLIT_CSV if seg.config.keep_shipped_test_in_val else None

    def train() -> None:
        from train.segmentation.training import train_segmenter

        resume = (run / "config.json").is_file()
        train_segmenter(run, seg.config, seg.photos, masks, pin, resume, seg.cutouts)

    photos = {"photos": seg.photos, "cutouts": seg.cutouts}
    return [
        Step("segmenter-masks", (masks / "masks.csv",), (), photos, make_masks, clear=(masks,)),
        Step(
            "segmenter",
            (run / MODEL_KERAS,),
            (masks / "masks.csv", *([pin] if pin else [])),
            {**asdict(seg.config), **photos},
            train,
            clear=tuple(p for p in run.glob("*") if p.name != "masks"),
        ),
    ]


def _segmenter_export_steps(build: BuildRecipe, out: Path) -> list[Step]:
    """The int8 file in OUT/export, its evaluation on a split, the result packed into it."""
    from export.segmentation import REPORT_STEM, SEGMENTER_TFLITE, add_measurements

    seg = build.segmenter
    run, export = out / SEGMENTER, out / EXPORT
    file = export / SEGMENTER_TFLITE
    evaluation = export / "segmentation_evaluation"

    def export_and_measure() -> None:
        from export.segmentation import export_segmenter
        from train.segmentation.evaluation import evaluate_run

        export_segmenter(run, export)
        evaluate_run(run, file, seg.evaluate, run / "masks", evaluation)
        add_measurements(export, evaluation, None)

    outputs = (file, export / f"{REPORT_STEM}.json", evaluation / "report.json")
    return [
        Step(
            "segmenter-export",
            outputs,
            (run / MODEL_KERAS,),
            seg.evaluate,
            export_and_measure,
            clear=(*outputs[:2], evaluation),
        )
    ]


def _student_steps(build: BuildRecipe, out: Path, student: Path) -> list[Step]:
    """The teacher (its recipe in OUT/teacher, or OUT itself), then the student distilled from
    it on the teacher's split, calibrated and with its answers' model."""
    spec = build.student
    steps: list[Step] = []
    teacher = out
    if spec.teacher is not None:
        teacher = out / TEACHER
        steps += _classifier_steps("teacher-", spec.teacher, teacher, out)
    member = Member(spec.member.name, replace(spec.member.hparams, distill_from=str(teacher)))
    recipe = Recipe(
        members=(member,),
        split_from=teacher / SPLIT_CSV,
        answer_strengths=build.recipe.answer_strengths,
    )
    steps += _classifier_steps("student-", recipe, student, out)
    # the student learns from the teacher's model: a new teacher makes it stale
    first_member = next(i for i, s in enumerate(steps) if s.name == "student-member-student")
    trained = steps[first_member]
    steps[first_member] = replace(
        trained, inputs=(*trained.inputs, teacher / MODEL_KERAS, teacher / MODEL_CARD_JSON)
    )
    return steps
