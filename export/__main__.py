"""Export a trained run to self-describing .tflite files and verify them.

    python -m export runs/NAME [--out runs/NAME/export] [--variants int8_mixed,float32] \
        [--representative-images 1000] [--flips 8]

For each variant: convert, pack the metadata (labels, display names, normalisation, model card),
run it with the LiteRT interpreter exactly as the demo server does (`contract.tensors.invoke`)
on the run's own val and test splits, compare with the Keras model, and fail (exit 1) if it
loses more balanced accuracy than allowed beyond noise (`export.verify`). The files go to a
new folder; only `python -m export.ship` puts a passing export into models/.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from contract.commands import comma_list, reported
from contract.flips import add_flips_option
from contract.run_folder import check_run_folder
from export.convert import DEFAULT_VARIANTS, FLOAT_OPS_SPLITS, VARIANTS, QuantizationConfig
from export.exporting import MODEL_FILE_STEM, ExportSettings, export_model
from export.ship import export_folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder written by python -m train")
    parser.add_argument("--out", type=Path, help="a new folder for the files (default: RUN/export)")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: the shipped one)",
    )
    parser.add_argument(
        "--representative-images",
        type=int,
        default=1000,
        help="representative images from the train split that set the int8 ranges (300 cost "
        "EfficientNet-Lite0 1.5-1.8 points of balanced accuracy; 1000 stay within 1 point)",
    )
    parser.add_argument(
        "--max-loss-points",
        type=float,
        default=1.0,
        help="most balanced accuracy (points) a variant may lose in any domain; a bigger loss "
        "fails only if beyond noise (its 95%% interval over lesions / patients above zero)",
    )
    parser.add_argument(
        "--float-ops",
        type=int,
        default=QuantizationConfig.float_ops,
        help="int8_mixed: how many of the operators int8 damages most stay in float",
    )
    parser.add_argument(
        "--float-ops-split",
        choices=FLOAT_OPS_SPLITS,
        default=QuantizationConfig.float_ops_split,
        help="int8_mixed: rank the operators over the whole file, or give each network of an "
        "ensemble an equal share of --float-ops",
    )
    parser.add_argument(
        "--bias-correction",
        action="store_true",
        help="int8 variants: round the weights to the int8 grid first and move the mean shift "
        "this causes into the biases (export.bias_correction); measured to help full int8 "
        "and to hurt int8_mixed (docs/history/more_data.md)",
    )
    add_flips_option(parser, "inside the file's graph, at about that many times the inference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--file-stem",
        default=MODEL_FILE_STEM,
        help="files are named STEM_VARIANT.tflite (skin_lesion_small for the small-phone "
        "network); export.ship wants names that start with skin_lesion_",
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r"skin_lesion(_[a-z0-9]+)*", args.file_stem):
        parser.error("--file-stem must be skin_lesion, or it followed by _word parts (a-z, 0-9)")
    args.variants = comma_list(args.variants)
    if not args.variants or set(args.variants) - set(VARIANTS):
        parser.error(f"--variants must be a comma-separated subset of {', '.join(VARIANTS)}")
    try:
        check_run_folder(args.run)
        args.out = export_folder(args.run, args.out)
    except ValueError as error:  # contract.run_folder.RunFolderError is one
        parser.error(str(error))
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} exists and is not empty; choose a new folder")
    if args.representative_images < 1:
        parser.error("--representative-images must be at least 1")
    if args.float_ops < 1:
        parser.error("--float-ops must be at least 1")
    return args


@reported("export")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = ExportSettings(
        variants=tuple(args.variants),
        representative_images=args.representative_images,
        max_loss_points=args.max_loss_points,
        float_ops=args.float_ops,
        float_ops_split=args.float_ops_split,
        seed=args.seed,
        file_stem=args.file_stem,
        bias_correction=args.bias_correction,
        flips=args.flips,
    )
    failures = export_model(args.run, args.out, settings)
    if failures:
        print(
            "python -m export: accuracy gate failed:\n  " + "\n  ".join(failures), file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
