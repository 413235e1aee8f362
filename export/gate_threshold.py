"""Re-choose an exported lesion gate's threshold by today's rule: the same network, a new threshold.

    python -m export.gate_threshold models/lesion_gate.tflite \
        --split recipes/shipped_2025_split.csv --out runs/gate_rethreshold [--margin 1.1]

For a gate whose Keras model is gone (run folders are not kept): the network's bytes are copied
as they are, the threshold is chosen by `contract.lesion_gate.choose_threshold` on the file's own
distances of the split's val lesion photos and of the development non-skin set, and OUT gets
lesion_gate.tflite with the new `lesion_gate.json` packed in, and lesion_gate_report.{md,json}
(`export.lesion_gate`'s: val and test false rejections per domain, both non-skin sets). Ship it
by copying the three files into models/.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from contract.lesion_gate import THRESHOLD_MARGIN
from contract.model_file import (
    GATE_FILE,
    ModelFileError,
    gate_json,
    read_gate_info,
    read_model_file,
)
from contract.run_folder import read_split
from export.lesion_gate import REPORT_STEM, measure_gate, rule_text, write_gate
from export.metadata import without_files
from export.ship import export_folder


def carried_over(old: dict) -> dict:
    """What the new report keeps of the old file's: the variant, and the speed of the same
    network; ModelFileError if a gate's JSON lacks them."""
    try:
        return {k: old["measured"][k] for k in ("variant", "ms_per_image_litert_2_threads")}
    except (KeyError, TypeError) as error:
        raise ModelFileError(f"its {GATE_FILE} lacks measured {error}") from None


def rethreshold(gate: Path, split_csv: Path, out: Path, margin: float = THRESHOLD_MARGIN) -> Path:
    """Write OUT/lesion_gate.tflite: `gate`'s network with the threshold the rule gives on
    `split_csv`, and its report; ModelFileError if `gate` is not a gate file."""
    packed = read_model_file(gate, "gate")
    old = gate_json(packed)
    kept = carried_over(old)
    network = without_files(packed)
    size = read_gate_info(packed).image_size
    threshold, measured = measure_gate(network, read_split(split_csv), size, margin)
    history = [
        *old.get("history", []),
        f"re-thresholded from {old['threshold']:.4g} (file sha256 "
        f"{hashlib.sha256(packed).hexdigest()[:12]}) on {split_csv} by "
        "python -m export.gate_threshold; the network's bytes, and so its speed, are unchanged",
    ]
    info = {
        **{k: v for k, v in old.items() if k != "measured"},
        "threshold": threshold,
        "rule": rule_text(margin),
        "history": history,
    }
    # The same network runs as fast as measured at its export.
    return write_gate(network, info, {**measured, **kept}, out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.gate_threshold", description=__doc__.split("\n")[0]
    )
    parser.add_argument("gate", type=Path, help="an exported lesion_gate.tflite")
    parser.add_argument(
        "--split", type=Path, required=True, help="the split.csv whose val photos choose"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the new file")
    parser.add_argument("--margin", type=float, default=THRESHOLD_MARGIN)
    args = parser.parse_args(argv)
    if args.margin < 1:
        parser.error(f"--margin must be at least 1, got {args.margin}")
    try:
        args.out = export_folder(args.gate.parent, args.out)
        packed = read_model_file(args.gate, "gate")
        read_gate_info(packed)
        carried_over(gate_json(packed))
    except ValueError as error:  # ModelFileError too
        parser.error(f"{args.gate}: {error}")
    try:
        if not read_split(args.split)["val"]:
            parser.error(f"--split {args.split}: no val rows to choose the threshold on")
    except OSError as error:
        parser.error(f"--split {args.split}: {error.strerror}")
    except (KeyError, ValueError) as error:
        parser.error(f"--split {args.split}: not a split.csv ({error!r})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = rethreshold(args.gate, args.split, args.out, args.margin)
    print((path.parent / f"{REPORT_STEM}.md").read_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
