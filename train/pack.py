"""Pack a split's images, decoded and resized, into one file to train elsewhere.

    python -m train.pack runs/NAME --out NAME224.npz              # a run folder's split.csv
    python -m train.pack recipes/shipped.toml --out shipped224.npz  # the split a recipe makes
    python -m train.pack split.csv --out s.npz --image-size 96 --quality 85 --splits train,val

Then, on a machine without the image folders: `python -m train --packed NAME224.npz --out RUN`
(or `python -m train.recipe RECIPE --packed FILE ...`). The format is in `train.data.packed`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract.commands import comma_list, reported
from contract.records import Skipped
from contract.run_folder import SPLIT_CSV, SPLITS, read_split
from train.data.packed import pack


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.pack", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "source", type=Path, help="a split.csv, a run folder (its split.csv) or a recipe .toml"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    parser.add_argument("--image-size", type=int, default=224, help="pixels a side (224)")
    parser.add_argument(
        "--quality", type=int, default=75, help="JPEG quality, 50-100 (75: about 5 KB an image)"
    )
    parser.add_argument(
        "--lossless", action="store_true", help="PNG, not JPEG: exact pixels, far larger"
    )
    parser.add_argument(
        "--splits",
        default=",".join(SPLITS),
        help="which splits to pack, comma-separated (training reads train and val)",
    )
    args = parser.parse_args(argv)
    args.splits = tuple(comma_list(args.splits))
    if not args.splits or set(args.splits) - set(SPLITS):
        parser.error(f"--splits must name some of {', '.join(SPLITS)}")
    if not 32 <= args.image_size <= 1024:
        parser.error("--image-size must be between 32 and 1024")
    if not 50 <= args.quality <= 100:
        parser.error("--quality must be between 50 and 100")
    if args.source.is_dir():
        args.source = args.source / SPLIT_CSV
    if not args.source.is_file():
        parser.error(f"{args.source}: no such file")
    return args


def load_splits(source: Path) -> dict[str, list]:
    """The split of a split.csv, or the one `python -m train.recipe` makes from a recipe."""
    if source.suffix != ".toml":
        return read_split(source)
    from train.model.training import make_split
    from train.orchestration.recipes import load_recipe

    recipe = load_recipe(source)
    if recipe.split_from is not None:
        return read_split(recipe.split_from)
    skipped = Skipped()
    splits = make_split(recipe.data, recipe.split, skipped, recipe.keep)
    skipped.warn()
    return splits


@reported("train.pack")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    splits = load_splits(args.source)
    codec = "png" if args.lossless else "jpeg"
    summary = pack(splits, args.image_size, args.out, codec, args.quality, only=args.splits)
    counts = ", ".join(f"{s} {len(splits[s])}" for s in args.splits)
    print(
        f"wrote {args.out}: {summary['images']} images ({counts}), {args.image_size} px, "
        f"{codec}{'' if args.lossless else f' q{args.quality}'}, "
        f"{summary['bytes'] / 1e6:.1f} MB; {summary['skipped']} unreadable (named in the file)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
