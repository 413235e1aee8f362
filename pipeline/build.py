"""Run the steps of a recipe in order, each skipped when its output is complete and current."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.recipe import BuildRecipe
from pipeline.stamps import fingerprint, forget, read_stamp, write_stamp
from pipeline.steps import EXPORT, Step, plan

DONE, STALE, TO_DO = "done", "stale", "to do"


@dataclass(frozen=True)
class Planned:
    step: Step
    status: str  # DONE, STALE (outputs there, made from other inputs) or TO_DO


def status(step: Step, out: Path) -> str:
    """DONE when every output exists and the stamp matches today's section and inputs."""
    complete = all(p.exists() for p in step.outputs)
    stamp = read_stamp(out, step.name)
    if complete and stamp is not None and stamp == fingerprint(step.settings, step.inputs):
        return DONE
    return STALE if complete or stamp is not None else TO_DO


def dry_run(build: BuildRecipe, out: Path) -> list[Planned]:
    """Every step with its status now; nothing is run (later steps' inputs may not exist)."""
    return [Planned(step, status(step, out)) for step in plan(build, out)]


def run_build(build: BuildRecipe, out: Path) -> Path:
    """Run every step that is not done; returns the export folder for `export.ship`."""
    out.mkdir(parents=True, exist_ok=True)
    steps = plan(build, out)
    for number, step in enumerate(steps, 1):
        state = status(step, out)
        print(f"[{number}/{len(steps)}] {step.name}: {state}", flush=True)
        if state == DONE:
            continue
        if state == STALE:
            forget(out, step.name)
            for path in step.cleared:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        step.run()
        missing = [str(p) for p in (*step.inputs, *step.outputs) if not p.exists()]
        if missing:  # a bug of the plan: an output the step does not write, or an input no step
            raise RuntimeError(f"{step.name}: {missing} missing after it ran")
        write_stamp(out, step.name, fingerprint(step.settings, step.inputs), step.outputs)
    return out / EXPORT
