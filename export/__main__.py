"""Export a trained run to self-describing .tflite files and verify them.

    python -m export runs/NAME [--out runs/NAME/export] [--variants int8_mixed,float32] \
        [--calibration-images 1000]

For each variant: convert, pack the metadata (labels, display names, normalisation, model card),
run it with the LiteRT interpreter exactly as the demo server does (`contract.tensors.invoke`)
on the run's own val and test splits, compare with the Keras model, and fail (exit 1) if it
loses more balanced accuracy than allowed. The files go to a new folder; only
`python -m export.ship` puts a passing export into models/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from export.calibration import representative_records
from export.convert import (
    DEFAULT_VARIANTS,
    FLOAT_OPS_SPLITS,
    VARIANTS,
    QuantizationConfig,
    convert,
)
from export.metadata import ModelInfo, write_metadata
from export.report import write_report
from export.ship import SHIPPED_MODELS
from export.verify import Verification, verify
from train.data.datasets import Skipped
from train.data.images import decode_records
from train.data.pipeline import label_indices
from train.data.split import SPLIT_CSV, read_split
from train.evaluation.predict import predict_keras, predict_tflite
from train.model.card import read_model_card

MODEL_FILE_STEM = "skin_lesion"
VERIFY_SPLITS = ("val", "test")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder written by python -m train")
    parser.add_argument(
        "--out", type=Path, help="a new folder for the files (default: RUN/export)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=1000,
        help="representative images from the train split for int8 calibration (300 cost "
        "EfficientNet-Lite0 1.5-1.8 points of balanced accuracy; 1000 stay within 1 point)",
    )
    parser.add_argument(
        "--max-loss-points",
        type=float,
        default=1.0,
        help="most balanced accuracy (points) a variant may lose in any domain",
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants or set(args.variants) - set(VARIANTS):
        parser.error(f"--variants must be a comma-separated subset of {', '.join(VARIANTS)}")
    for needed in ("model.keras", "model_card.json", SPLIT_CSV):
        if not (args.run / needed).is_file():
            parser.error(f"{args.run / needed} not found; is {args.run} a finished run folder?")
    args.out = args.out or args.run / "export"
    if args.out.resolve() == SHIPPED_MODELS.resolve():
        parser.error(f"--out {args.out}: export to a new folder, then python -m export.ship it")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} exists and is not empty; choose a new folder")
    if args.calibration_images < 1:
        parser.error("--calibration-images must be at least 1")
    if args.float_ops < 1:
        parser.error("--float-ops must be at least 1")
    return args


def model_info(card: dict, config: QuantizationConfig) -> ModelInfo:
    export = {"variant": config.variant}
    if config.needs_calibration:
        export["calibration_images"] = len(config.representative)
    if config.variant == "int8_mixed":
        export["float_ops"] = config.float_ops
        export["float_ops_split"] = config.float_ops_split
    exported = {**card, "export": export}
    return ModelInfo(
        name=card["name"],
        version=card["version"],
        description="Skin-lesion screening aid (not a diagnosis): seven-class classifier of "
        "dermoscopic and smartphone photos. " + card["disclaimer"],
        author="skinlesion-ondevice contributors",
        license=card["license"],
        labels=tuple(card["labels"]),
        display_names=tuple(card["display_names"]),
        input_height=card["input"]["height"],
        input_width=card["input"]["width"],
        model_card=exported,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    card = read_model_card(args.run)
    size = card["input"]["height"]
    splits = read_split(args.run / SPLIT_CSV)
    model = keras.models.load_model(args.run / "model.keras")
    skipped = Skipped()
    calibration, _ = decode_records(
        representative_records(splits["train"], args.calibration_images, args.seed), size, skipped
    )
    evaluation = {}
    for split in VERIFY_SPLITS:
        pixels, records = decode_records(splits[split], size, skipped)
        if records:
            evaluation[split] = (
                pixels,
                label_indices(records),
                np.array([r.domain for r in records]),
                predict_keras(model, pixels),
            )
    skipped.warn()

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Verification]] = {split: [] for split in evaluation}
    failures = []
    for variant in args.variants:
        config = QuantizationConfig(
            variant,
            calibration if variant.startswith("int8") else None,
            args.float_ops,
            args.float_ops_split,
        )
        flatbuffer = write_metadata(convert(model, config), model_info(card, config))
        path = args.out / f"{MODEL_FILE_STEM}_{variant}.tflite"
        path.write_bytes(flatbuffer)
        print(f"wrote {path} ({len(flatbuffer) / 1024:.0f} KB)")
        for split, (pixels, y, domains, keras_probs) in evaluation.items():
            result = verify(
                variant, len(flatbuffer), predict_tflite(path, pixels), keras_probs, y, domains
            )
            results[split].append(result)
            bacc = ", ".join(f"{d} {v:.4f}" for d, v in result.balanced_accuracy.items())
            print(
                f"  {split}: top-1 agreement with Keras {result.top1_agreement:.4f}; "
                f"balanced accuracy {bacc}"
            )
            for domain, loss in result.balanced_accuracy_loss().items():
                if loss > args.max_loss_points:
                    failures.append(
                        f"{variant} loses {loss:.2f} points of balanced accuracy on "
                        f"{split}/{domain} (allowed {args.max_loss_points})"
                    )
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    json_path, md_path = write_report(args.out, args.run, results, args.max_loss_points, failures)
    print(f"wrote {json_path} and {md_path}")
    if failures:
        print(
            "python -m export: accuracy gate failed:\n  " + "\n  ".join(failures), file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
