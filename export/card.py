"""Pack a new model card into an exported classifier file: the same network, a new calibration.

    python -m export.card FILE.tflite --card RUN/model_card.json --out DIR

After `python -m train.calibrate RUN --model FILE` has refitted a file's temperature and
thresholds on val, this writes DIR/FILE's name with that card in its metadata (the file's own
`export` entry kept) and DIR/model_card.json beside it. The card must name the same model as the
file (`contract.card.MODEL_IDENTITY`); the network is copied as it is.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from contract.card import CardError, ModelCard, read_card_file, write_model_card
from contract.commands import reported
from contract.model_file import model_card, read_model_file
from export.exporting import model_info
from export.metadata import write_metadata
from export.ship import export_folder


def repack_with_card(model: Path, card: ModelCard, out: Path) -> Path:
    """Write `out`/`model`'s name: `model` with `card` as its metadata's model card."""
    tflite = read_model_file(model)
    packed = model_card(tflite)
    differing = card.identity_differences(packed)
    if differing:
        raise CardError(f"the card is not {model.name}'s model (it differs in {differing})")
    out.mkdir(parents=True, exist_ok=True)
    path = out / model.name
    path.write_bytes(write_metadata(tflite, model_info(replace(card, export=packed.export))))
    write_model_card(out, card)
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export.card", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", type=Path, help="an exported classifier .tflite")
    parser.add_argument("--card", type=Path, required=True, help="the model_card.json to pack")
    parser.add_argument("--out", type=Path, required=True, help="folder for the new file")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"{args.model}: no such file")
    try:
        args.model_card = read_card_file(args.card)
    except OSError as error:
        parser.error(f"--card {args.card}: {error.strerror}")
    except CardError as error:
        parser.error(f"--card {error}")
    try:
        args.out = export_folder(args.model.parent, args.out)
    except ValueError as error:
        parser.error(str(error))
    return args


@reported("export.card")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = repack_with_card(args.model, args.model_card, args.out)
    print(f"wrote {path} and {args.out / 'model_card.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
