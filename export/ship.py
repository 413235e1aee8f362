"""Replace the contents of models/ with an export folder, all at once, only if it passed.

    python -m export.ship runs/NAME/export [--models models]

A companion export (another classifier served beside the main one, e.g. the single network for
small phones) ships as a subfolder of the export folder, written there by
`python -m export RUN --file-stem skin_lesion_small --out runs/NAME/export/small`; it must pass
its own accuracy gate too.

`python -m export` writes into a new folder and records its accuracy gate in verification.json;
`python -m export.lesion_gate`, `python -m export.bench`, `python -m export.arm` and
`python -m train.evaluate` add their files beside it (an ARM report must describe the files it
ships with). Shipping copies that folder next to models/ and swaps the two by renaming, so
the demo server and the phone apps never see half an old and half a new model: the folder is
the old one or the new one (absent only for the instant between two renames). The replaced
contents are deleted once the swap succeeded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from contract.commands import CommandError, reported
from contract.model_file import ModelFileError, model_card, read_gate_info, read_model_file
from contract.segmentation import read_segmenter_info
from export.arm_report import stale_entries

SHIPPED_MODELS = Path("models")  # what the demo server and the apps load; only ship() writes it
VERIFICATION_JSON = "verification.json"
CLASSIFIER_GLOB = "skin_lesion_*.tflite"
GATE_FILE = "lesion_gate.tflite"
SEGMENTER_FILE = "lesion_segmenter.tflite"  # python -m export.segmentation RUN --out EXPORT


class ShipError(CommandError):
    """The export folder must not replace models/; the message says why."""

    status = 1  # a check the input failed, not a usage error


def export_folder(run: Path, out: Path | None) -> Path:
    """Where an export command writes: `out`, else RUN/export; ValueError for models/ itself,
    which only `ship` replaces."""
    folder = out or run / "export"
    if folder.resolve() == SHIPPED_MODELS.resolve():
        raise ValueError(f"--out {folder}: export to a new folder, then python -m export.ship it")
    return folder


def check_export(folder: Path) -> list[Path]:
    """The classifier files of a shippable export folder and of its companion exports (the
    subfolders with a verification.json), or ShipError saying what is missing or failed."""
    report = folder / VERIFICATION_JSON
    if not report.is_file():
        raise ShipError(f"{report} not found; ship a folder written by python -m export")
    try:
        passed = json.loads(report.read_text(encoding="utf-8"))["passed"]
    except (ValueError, KeyError, TypeError) as error:
        raise ShipError(f"{report} is not an export report: {error!r}") from None
    if passed is not True:
        raise ShipError(f"{report}: the accuracy gate failed; this export cannot be shipped")
    classifiers = sorted(folder.glob(CLASSIFIER_GLOB))
    if not classifiers:
        raise ShipError(f"{folder} holds no {CLASSIFIER_GLOB}")
    try:
        for path in classifiers:
            model_card(read_model_file(path))
        if (folder / GATE_FILE).is_file():
            read_gate_info(read_model_file(folder / GATE_FILE, "gate"))
        if (folder / SEGMENTER_FILE).is_file():
            read_segmenter_info(read_model_file(folder / SEGMENTER_FILE, "segmenter"))
    except ModelFileError as error:
        raise ShipError(str(error)) from None
    stale = stale_entries(folder)
    if stale:
        raise ShipError(
            f"{folder}: stale ARM report: {'; '.join(stale)}; rerun python -m export.arm"
        )
    for companion in sorted(p.parent for p in folder.glob(f"*/{VERIFICATION_JSON}")):
        classifiers += check_export(companion)
    return classifiers


def ship(export_dir: Path, models_dir: Path) -> list[Path]:
    """Swap `models_dir` for a copy of `export_dir`; returns the shipped files."""
    check_export(export_dir)
    models_dir = models_dir.resolve()
    staged = models_dir.with_name(models_dir.name + ".incoming")
    retired = models_dir.with_name(models_dir.name + ".replaced")
    for leftover in (staged, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(export_dir, staged)
    if models_dir.exists():
        models_dir.rename(retired)
    staged.rename(models_dir)
    if retired.exists():
        shutil.rmtree(retired)
    return sorted(p for p in models_dir.rglob("*") if p.is_file())


@reported("export.ship")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.ship", description=__doc__.split("\n")[0]
    )
    parser.add_argument("export_dir", type=Path, help="a folder written by python -m export")
    parser.add_argument(
        "--models", type=Path, default=SHIPPED_MODELS, help="the folder to replace (models/)"
    )
    args = parser.parse_args(argv)
    if not args.export_dir.is_dir():
        parser.error(f"{args.export_dir}: no such folder")
    if args.export_dir.resolve() == args.models.resolve():
        parser.error("the export folder is the models folder itself")
    shipped = ship(args.export_dir, args.models)
    size = sum(p.stat().st_size for p in shipped)
    print(f"shipped {len(shipped)} files ({size / 1e6:.1f} MB) into {args.models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
