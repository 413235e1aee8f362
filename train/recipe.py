"""Run a recipe file: its split, every member network, their average and the answers' model.

    python -m train.recipe recipes/shipped.toml --out runs/shipped [--resume]

The recipe format is in `train.orchestration.recipes`. OUT becomes a run folder (model.keras,
model_card.json, split.csv) that `train.evaluate` and `python -m export` take, with the members
in OUT/members/ and the recipe copied to OUT/recipe.toml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract.commands import reported
from train.cli import add_cluster_arguments, parse_cluster
from train.model.devices import join
from train.orchestration.recipes import RecipeError, load_recipe, run_recipe


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.recipe", description=__doc__.split("\n")[0]
    )
    parser.add_argument("recipe", type=Path, help="a recipe .toml file (e.g. recipes/shipped.toml)")
    parser.add_argument("--out", type=Path, required=True, help="the run folder to write")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run of the same recipe"
    )
    parser.add_argument(
        "--packed",
        type=Path,
        metavar="FILE",
        help="train the members on a packed file's split and images (python -m train.pack); "
        "average and fit the answers later, with --resume, where the image folders are",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=0,
        metavar="N",
        help="data parallel over N devices of the Keras backend (0: all it sees; with several "
        "processes, each's)",
    )
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    args.cluster = parse_cluster(parser, args)
    if args.packed is not None and not args.packed.is_file():
        parser.error(f"--packed {args.packed}: no such file")
    try:
        args.parsed = load_recipe(args.recipe)
    except RecipeError as error:
        parser.error(f"{args.recipe}: {error}")
    return args


@reported("train.recipe")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    join(args.cluster)
    card = run_recipe(args.parsed, args.out, args.resume, args.packed, args.devices)
    if card is not None:  # None: members only (--packed)
        print(f"wrote {args.out / 'model.keras'} and {args.out / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
