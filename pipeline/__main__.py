"""Build what ships from one recipe: every step, each skipped when its output is current.

    python -m pipeline recipes/shipped.toml --out runs/shipped [--dry-run]
    python -m export.ship runs/shipped/export     # then: replace models/ with it

The steps, their outputs and the recipe sections: docs/pipeline.md. An interrupted or failed
build continues where it stopped when run again; a step whose recipe section or inputs changed
runs again, and so does every step after it that reads its outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract.commands import reported
from export.ship import check_export
from pipeline.build import dry_run, run_build
from pipeline.recipe import load_build_recipe
from train.orchestration.recipes import RecipeError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("recipe", type=Path, help="a recipe .toml (e.g. recipes/shipped.toml)")
    parser.add_argument("--out", type=Path, required=True, help="the build folder (created)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list every step, its outputs and status; run none"
    )
    args = parser.parse_args(argv)
    try:
        args.build = load_build_recipe(args.recipe)
    except RecipeError as error:
        parser.error(f"{args.recipe}: {error}")
    return args


@reported("pipeline")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        for number, planned in enumerate(dry_run(args.build, args.out), 1):
            outputs = ", ".join(str(p) for p in planned.step.outputs)
            print(f"{number:2d}. {planned.step.name} [{planned.status}] -> {outputs}")
        return 0
    export = run_build(args.build, args.out)  # a step's CommandError: its message, status
    if args.build.export is None:
        print(f"built {args.out}; the recipe has no [export] section, so nothing to ship")
        return 0
    check_export(export)
    print(f"built {export}; ship it with: python -m export.ship {export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
