"""Fit the "not a skin lesion" gate of a run and save it in the run folder.

    python -m train.lesion_gate runs/NAME [--image-size 128]
        [--layers block3b_add,block4c_add,block5c_add] [--components 768]

How the gate works and why: `train.gate.fit`. Writes runs/NAME/lesion_gate.keras and
runs/NAME/lesion_gate.json; `python -m export.lesion_gate` converts them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contract.commands import comma_list
from contract.lesion_gate import GATE_JSON, GATE_KERAS
from contract.run_folder import SPLIT_CSV, RunFolderError, check_run_folder
from train.gate.fit import GateConfig, feature_layers, fit_lesion_gate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = GateConfig()
    parser = argparse.ArgumentParser(
        prog="python -m train.lesion_gate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a run folder with split.csv")
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument(
        "--layers",
        default=",".join(defaults.layers),
        help="comma-separated feature layers, shallow to deep, among "
        + ", ".join(feature_layers()),
    )
    parser.add_argument(
        "--components", type=int, default=defaults.components, help="of the head, if used"
    )
    parser.add_argument("--max-images", type=int, default=defaults.max_images)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    try:
        check_run_folder(args.run, (SPLIT_CSV,))
    except RunFolderError as error:
        parser.error(str(error))
    if args.max_images < 1:
        parser.error("--max-images must be positive")
    try:
        args.config = GateConfig(
            args.image_size,
            tuple(comma_list(args.layers)),
            args.components,
            max_images=args.max_images,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, info = fit_lesion_gate(args.run / SPLIT_CSV, args.config)
    model.save(args.run / GATE_KERAS)
    (args.run / GATE_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
